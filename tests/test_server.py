"""The HTTP API over real HTTP: uvicorn on a free loopback port (in a thread, or `smithers serve`
and `smithers up --serve` as subprocesses), httpx2 as the client, a real SQLite store."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from waiting import wait_until

from smithers.server.app import ServerThread, bind, create_app

TOKEN = "s3cret-token"

WORKFLOWS = {
    "simple.py": """
        from pydantic import BaseModel
        from smithers import Sequence, Task, workflow

        class In(BaseModel):
            name: str = "world"

        class Greeting(BaseModel):
            text: str

        @workflow(input=In)
        def simple(ctx):
            return Sequence(
                Task("greet", output=Greeting, value={"text": f"hello {ctx.input.name}"}),
                Task("shout", output=Greeting, value={"text": f"HELLO {ctx.input.name.upper()}"}),
            )
    """,
    "slow.py": """
        import time
        from pydantic import BaseModel
        from smithers import Sequence, Task, workflow

        class Step(BaseModel):
            n: int

        def step(n):
            def run():
                time.sleep(0.15)
                return {"n": n}
            return run

        @workflow
        def slow(ctx):
            return Sequence(*[Task(f"s{n}", output=Step, run=step(n)) for n in range(8)])
    """,
    "sleepy.py": """
        import time
        from pydantic import BaseModel
        from smithers import Task, workflow

        class Nap(BaseModel):
            n: int

        def forever():
            time.sleep(60)
            return {"n": 1}

        @workflow
        def sleepy(ctx):
            return Task("nap", output=Nap, run=forever)
    """,
    "approval.py": """
        from pydantic import BaseModel
        from smithers import Approval, Sequence, Task, workflow

        class Shipped(BaseModel):
            text: str

        @workflow
        def gated(ctx):
            decision = ctx.output("ship")
            return Sequence(
                Task("build", output=Shipped, value={"text": "built"}),
                Approval("ship", request={"title": "Ship it?", "summary": "v2"}, on_deny="continue"),
                Task("after", output=Shipped, value={"text": "approved" if decision and decision.approved else "denied"}),
            )
    """,
    "signal_wait.py": """
        from pydantic import BaseModel
        from smithers import Sequence, Signal, Task, workflow

        class Built(BaseModel):
            sha: str

        class Deployed(BaseModel):
            text: str

        @workflow
        def waits(ctx):
            built = ctx.output("built")
            return Sequence(
                Signal("built", schema=Built),
                Task("deploy", output=Deployed, value={"text": f"deployed {built.sha if built else '?'}"}),
            )
    """,
    "human.py": """
        from pydantic import BaseModel
        from smithers import HumanTask, Sequence, Task, workflow

        class Name(BaseModel):
            name: str

        class Tagged(BaseModel):
            text: str

        @workflow
        def asks(ctx):
            answer = ctx.output("name")
            return Sequence(
                HumanTask("name", output=Name, prompt="Name the release"),
                Task("tag", output=Tagged, value={"text": f"tagged {answer.name if answer else '?'}"}),
            )
    """,
    "flaky.py": """
        from pathlib import Path
        from pydantic import BaseModel
        from smithers import Task, workflow

        class Attempted(BaseModel):
            ok: bool

        def once():
            marker = Path(__file__).with_name("flaky.marker")
            if not marker.exists():
                marker.write_text("failed once")
                raise RuntimeError("first attempt fails")
            return {"ok": True}

        @workflow
        def flaky(ctx):
            return Task("try", output=Attempted, run=once)
    """,
}


# -- fixtures and helpers ------------------------------------------------------------------------


class Api:
    def __init__(self, url: str, root: Path, db: Path) -> None:
        self.url = url
        self.root = root
        self.db = db
        self.client = httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def wait_status(self, run_id: str, statuses: set[str], timeout: float = 20.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            run = self.client.get(f"/v1/runs/{run_id}").json()
            return run if run.get("status") in statuses else None

        return wait_until(reached, timeout, f"run {run_id} to reach {sorted(statuses)}")

    def start(self, workflow: str, **body: Any) -> str:
        response = self.client.post("/v1/runs", json={"workflow": workflow, **body})
        assert response.status_code == 201, response.text
        return response.json()["run_id"]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SMITHERS_DB": str(self.db)}
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args], cwd=self.root, env=env, capture_output=True, text=True, check=False,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def up_waiting(self, workflow: str) -> str:
        """`smithers up` a workflow that stops waiting (exit 3); returns its run id."""
        result = self.cli("up", workflow, "--quiet")
        assert result.returncode == 3, result.stdout + result.stderr
        return next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("run "))

    def seqs(self, run_id: str) -> list[int]:
        conn = sqlite3.connect(self.db)
        try:
            return [r[0] for r in conn.execute("SELECT seq FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,))]
        finally:
            conn.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("project")
    for name, source in WORKFLOWS.items():
        (root / name).write_text(textwrap.dedent(source), encoding="utf-8")
    db = root / "smithers.db"
    app = create_app(db, root, TOKEN, ping_interval=0.3, poll_interval=0.05)
    server = ServerThread(app, bind("127.0.0.1", 0)).start()
    client = Api(server.url, root, db)
    yield client
    client.client.close()
    server.stop()


def sse(response: httpx2.Response) -> Iterator[dict[str, str]]:
    """Parse a text/event-stream into dicts of its fields (a comment becomes {"comment": ...})."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def error_of(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


# -- auth ----------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/runs"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs/r1"),
    ("GET", "/v1/runs/r1/why"),
    ("POST", "/v1/runs/r1/resume"),
    ("POST", "/v1/runs/r1/cancel"),
    ("GET", "/v1/runs/r1/events"),
    ("GET", "/v1/runs/r1/nodes/n1"),
    ("GET", "/v1/runs/r1/frames"),
    ("GET", "/v1/inbox"),
    ("POST", "/v1/runs/r1/nodes/n1/approve"),
    ("POST", "/v1/runs/r1/nodes/n1/deny"),
    ("POST", "/v1/runs/r1/signals/go"),
    ("POST", "/v1/human/h1/answer"),
]


def test_health_needs_no_token(api: Api) -> None:
    response = httpx2.get(api.url + "/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_meta_lists_the_states_of_smithers_states_without_a_token(api: Api) -> None:
    from smithers import states

    response = httpx2.get(api.url + "/v1/meta")
    assert response.status_code == 200, response.text
    meta = response.json()
    assert meta["run_statuses"] == [s.value for s in states.RunStatus]
    assert meta["node_statuses"] == [s.value for s in states.NodeStatus]
    assert meta["attempt_statuses"] == [s.value for s in states.AttemptStatus]
    assert meta["event_types"] == [t.value for t in states.EventType]
    assert set(meta["waiting_run_statuses"]) == states.WAITING_RUN_STATUSES
    assert set(meta["ended_run_statuses"]) == states.ENDED_RUN_STATUSES
    assert set(meta["waiting_node_statuses"]) == states.WAITING_NODE_STATUSES
    assert set(meta["terminal_node_statuses"]) == states.TERMINAL_NODE_STATUSES
    assert set(meta["ended_attempt_statuses"]) == states.ENDED_ATTEMPT_STATUSES
    # subsets keep the declaration order of their enum, so a client can show them as they are
    assert meta["ended_run_statuses"] == [s for s in meta["run_statuses"] if s in states.ENDED_RUN_STATUSES]
    assert "meta" in {route.split("/")[-1] for route in api.client.get("/openapi.json").json()["paths"]}


def test_dashboard_modules_are_served_as_javascript_and_revalidated(api: Api) -> None:
    from smithers.server.app import STATIC_DIR

    page = httpx2.get(api.url + "/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/static/main.js">' in page.text
    modules = sorted(p.name for p in STATIC_DIR.glob("*.js"))
    assert "main.js" in modules and "sse.js" in modules
    for name in [*modules, "app.css"]:
        response = httpx2.get(f"{api.url}/static/{name}")  # no token: the files are public, the data is not
        assert response.status_code == 200, name
        expected = "text/css; charset=utf-8" if name.endswith(".css") else "text/javascript; charset=utf-8"
        assert response.headers["content-type"] == expected, name
        assert response.headers["cache-control"] == "no-cache", name
        assert response.headers["x-content-type-options"] == "nosniff", name
        again = httpx2.get(f"{api.url}/static/{name}", headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304 and again.headers["cache-control"] == "no-cache", name


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_other_route_needs_the_token(api: Api, method: str, path: str) -> None:
    body = {"json": {"workflow": "simple.py", "value": {}}} if method == "POST" else {}
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}, {"Cookie": "smithers_token=wrong"}):
        response = httpx2.request(method, api.url + path, headers=headers, **body)
        assert error_of(response, 401)["code"] == "UNAUTHORIZED"
        assert response.headers["www-authenticate"] == "Bearer"


def test_cookie_sign_in_for_the_dashboard(api: Api) -> None:
    with httpx2.Client(base_url=api.url) as browser:
        assert browser.get("/v1/session").json() == {"auth_required": True, "authenticated": False}
        assert error_of(browser.post("/v1/session", json={"token": "nope"}), 401)["code"] == "UNAUTHORIZED"
        signed = browser.post("/v1/session", json={"token": TOKEN})
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("smithers_token=") and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert browser.get("/v1/runs").status_code == 200
        assert browser.get("/v1/session").json()["authenticated"] is True
        assert browser.delete("/v1/session").status_code == 200
        browser.cookies.clear()
        assert browser.get("/v1/runs").status_code == 401


# -- request errors ------------------------------------------------------------------------------


def test_request_errors_use_the_envelope(api: Api, tmp_path: Path) -> None:
    c = api.client
    as_json = {"Content-Type": "application/json"}
    assert error_of(c.post("/v1/runs", content=b"x" * ((1 << 20) + 1), headers=as_json), 413)["code"] == "PAYLOAD_TOO_LARGE"
    assert error_of(c.post("/v1/runs", content=b'{"workflow": ', headers=as_json), 400)["code"] == "INVALID_JSON"
    as_text = {"Content-Type": "text/plain"}
    assert error_of(c.post("/v1/runs", content=b'{"workflow": "simple.py"}', headers=as_text), 400)["code"] == "INVALID_JSON"
    assert error_of(c.post("/v1/runs", json={"input": {}}), 400)["code"] == "INVALID_REQUEST"
    for method, path in [("GET", "/v1/runs/nope"), ("GET", "/v1/runs/nope/events"), ("GET", "/v1/runs/nope/frames"),
                         ("POST", "/v1/runs/nope/cancel"), ("POST", "/v1/runs/nope/resume"), ("GET", "/v1/runs/nope/nodes/x"),
                         ("POST", "/v1/runs/nope/nodes/x/approve"), ("POST", "/v1/runs/nope/signals/go")]:
        assert error_of(c.request(method, path), 404)["code"] == "UNKNOWN_RUN", path
    assert error_of(c.get("/no/such/route"), 404)["code"] == "NOT_FOUND"
    assert error_of(c.post("/v1/human/nope/answer", json={"value": {}}), 404)["code"] == "UNKNOWN_REQUEST"
    # workflows outside the root: relative, absolute, and through a symlink
    outside = tmp_path / "outside.py"
    outside.write_text(textwrap.dedent(WORKFLOWS["simple.py"]))
    (api.root / "link.py").symlink_to(outside)
    for workflow in ("../outside.py", str(outside), "link.py", f"{outside}:simple"):
        assert error_of(c.post("/v1/runs", json={"workflow": workflow}), 403)["code"] == "FORBIDDEN_PATH", workflow
    # a browser page on another origin cannot write
    cross_site = c.post("/v1/runs", json={"workflow": "simple.py"}, headers={"Origin": "http://evil.example"})
    assert error_of(cross_site, 403)["code"] == "CROSS_ORIGIN"


def test_a_server_without_token_answers_only_loopback_host_names(tmp_path: Path) -> None:
    server = ServerThread(create_app(tmp_path / "smithers.db", tmp_path, None), bind("127.0.0.1", 0)).start()
    try:
        assert httpx2.get(server.url + "/v1/runs").status_code == 200
        assert error_of(httpx2.get(server.url + "/v1/runs", headers={"Host": "rebound.example"}), 403)["code"] == "FORBIDDEN_HOST"
    finally:
        server.stop()


# -- runs ----------------------------------------------------------------------------------------


def test_start_a_run_and_read_it(api: Api) -> None:
    c = api.client
    # bad input is refused up front, with the validation message, and creates nothing
    bad = error_of(c.post("/v1/runs", json={"workflow": "simple.py", "input": {"name": 5}, "run_id": "bad-input"}), 400)
    assert bad["code"] == "INVALID_INPUT" and "name" in bad["message"]
    assert c.get("/v1/runs/bad-input").status_code == 404
    assert error_of(c.post("/v1/runs", json={"workflow": "missing.py"}), 400)["code"] == "WORKFLOW_LOAD"

    run_id = api.start("simple.py", input={"name": "api"}, run_id="api-run-1")
    assert run_id == "api-run-1"
    run = api.wait_status(run_id, {"finished"})
    assert [(n["id"], n["status"], n["output"]) for n in run["nodes"]] == [
        ("greet", "finished", {"text": "hello api"}), ("shout", "finished", {"text": "HELLO API"}),
    ]
    assert run["input"] == {"name": "api"} and run["nodes"][0]["attempts"][0]["status"] == "finished"
    assert run["owner_alive"] is False and run["frames"] >= 1

    assert error_of(c.post("/v1/runs", json={"workflow": "simple.py", "run_id": run_id}), 409)["code"] == "RUN_EXISTS"
    assert error_of(c.post(f"/v1/runs/{run_id}/cancel"), 409)["code"] == "RUN_NOT_ACTIVE"
    assert error_of(c.post(f"/v1/runs/{run_id}/resume"), 409)["code"] == "RUN_NOT_RESUMABLE"

    listed = c.get("/v1/runs", params={"status": "finished", "limit": 100}).json()
    assert run_id in [r["run_id"] for r in listed["runs"]] and listed["total"] >= 1
    assert set(listed["runs"][0]) == {"run_id", "workflow", "status", "created_at_ms", "updated_at_ms", "triggered_by"}
    assert c.get("/v1/runs", params={"limit": 1, "offset": 10_000}).json()["runs"] == []
    assert error_of(c.get("/v1/runs", params={"status": "bogus"}), 400)["code"] == "USAGE"

    node = c.get(f"/v1/runs/{run_id}/nodes/greet").json()
    assert node["id"] == "greet" and node["iterations"][0]["output"] == {"text": "hello api"} and node["transcript"] == []
    assert error_of(c.get(f"/v1/runs/{run_id}/nodes/nope"), 404)["code"] == "UNKNOWN_NODE"

    frames = c.get(f"/v1/runs/{run_id}/frames").json()
    assert frames["frames"][0]["frame"] == 0 and set(frames["frames"][0]) == {"frame", "keyframe", "event_seq", "created_at_ms"}
    frame = c.get(f"/v1/runs/{run_id}/frames", params={"frame": 0}).json()
    assert frame["frame"] == 0 and frame["tree"]["t"] == "workflow"
    assert {(s["node_id"], s["status"]) for s in frame["statuses"]} == {("greet", "finished"), ("shout", "finished")}
    assert error_of(c.get(f"/v1/runs/{run_id}/frames", params={"frame": 99}), 404)["code"] == "UNKNOWN_FRAME"
    assert c.get(f"/v1/runs/{run_id}/why").json()["status"] == "finished"


def test_resume_a_failed_run_and_cancel_a_running_one(api: Api) -> None:
    c = api.client
    failed = api.start("flaky.py")
    api.wait_status(failed, {"failed"})
    response = c.post(f"/v1/runs/{failed}/resume", json={})
    assert response.status_code == 202, response.text
    assert api.wait_status(failed, {"finished"})["nodes"][0]["output"] == {"ok": True}

    running = api.start("sleepy.py")
    api.wait_status(running, {"running"})
    assert error_of(c.post(f"/v1/runs/{running}/resume"), 409)["code"] == "RUN_OWNED"
    cancelled = c.post(f"/v1/runs/{running}/cancel")
    assert cancelled.status_code == 200 and cancelled.json() == {"run_id": running, "status": "cancelled"}
    assert error_of(c.post(f"/v1/runs/{running}/cancel"), 409)["code"] == "RUN_NOT_ACTIVE"


# -- events --------------------------------------------------------------------------------------


def test_events_resume_after_a_disconnect_without_loss_or_duplicates(api: Api) -> None:
    run_id = api.start("slow.py")
    seen: list[int] = []
    with api.client.stream("GET", f"/v1/runs/{run_id}/events") as first:
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
        for event in sse(first):
            if "id" in event:
                data = json.loads(event["data"])
                assert event["event"] == data["type"] and int(event["id"]) == data["seq"] and data["run_id"] == run_id
                seen.append(data["seq"])
            if len(seen) == 5:
                break  # disconnect mid-run
    assert api.client.get(f"/v1/runs/{run_id}").json()["status"] == "running"
    end = None
    with api.client.stream("GET", f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(seen[-1])}) as second:
        for event in sse(second):
            if event.get("event") == "end":
                end = json.loads(event["data"])
            elif "id" in event:
                seen.append(int(event["id"]))
    assert end is not None and end["status"] == "finished"
    assert seen == api.seqs(run_id)  # every event once, in order
    assert seen[-1] == end["last_seq"]

    with api.client.stream("GET", f"/v1/runs/{run_id}/events", params={"after_seq": 10}) as tail:
        ids = [int(e["id"]) for e in sse(tail) if "id" in e]
    assert ids == [s for s in api.seqs(run_id) if s > 10]
    assert error_of(api.client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": "x"}), 400)["code"] == "INVALID_REQUEST"


# -- people in the loop --------------------------------------------------------------------------


def test_approve_through_the_api_continues_the_run(api: Api) -> None:
    c = api.client
    run_id = api.up_waiting("approval.py")
    items = [i for i in c.get("/v1/inbox").json()["items"] if i["run_id"] == run_id]
    assert [(i["kind"], i["node_id"], i["title"]) for i in items] == [("approval", "ship", "Ship it?")]
    assert c.get("/v1/inbox", params={"run_id": "other"}).json() == {"items": []}
    # a waiting run's stream stays open with keep-alive pings
    with c.stream("GET", f"/v1/runs/{run_id}/events", params={"after_seq": 10_000}) as waiting:
        assert next(iter(sse(waiting))) == {"comment": "ping"}
    assert error_of(c.post(f"/v1/runs/{run_id}/nodes/build/approve"), 409)["code"] == "NOT_WAITING"
    assert error_of(c.post(f"/v1/runs/{run_id}/nodes/nope/approve"), 404)["code"] == "UNKNOWN_NODE"
    decided = c.post(f"/v1/runs/{run_id}/nodes/ship/approve", json={"note": "ship it", "by": "ana"})
    assert decided.status_code == 200, decided.text
    assert decided.json() == {"run_id": run_id, "node_id": "ship", "iteration": 0, "approved": True, "note": "ship it", "resumed": True}
    run = api.wait_status(run_id, {"finished"})
    outputs = {n["id"]: n["output"] for n in run["nodes"]}
    assert outputs["after"] == {"text": "approved"} and outputs["ship"]["approved"] is True and outputs["ship"]["decided_by"] == "ana"

    denied = api.up_waiting("approval.py")
    assert c.post(f"/v1/runs/{denied}/nodes/ship/deny", json={"note": "not now"}).json()["approved"] is False
    assert {n["id"]: n["output"] for n in api.wait_status(denied, {"finished"})["nodes"]}["after"] == {"text": "denied"}


def test_signal_through_the_api_continues_the_run(api: Api) -> None:
    c = api.client
    run_id = api.up_waiting("signal_wait.py")
    assert run_id in [i["run_id"] for i in c.get("/v1/inbox").json()["items"] if i["kind"] == "signal"]
    assert error_of(c.post(f"/v1/runs/{run_id}/signals/built", json={"data": {"sha": 7}}), 400)["code"] == "INVALID_INPUT"
    sent = c.post(f"/v1/runs/{run_id}/signals/built", json={"data": {"sha": "abc123"}, "by": "ci"})
    assert sent.status_code == 200 and sent.json()["duplicate"] is False and sent.json()["resumed"] is True
    run = api.wait_status(run_id, {"finished"})
    assert {n["id"]: n["output"] for n in run["nodes"]}["deploy"] == {"text": "deployed abc123"}


def test_answer_a_human_task_through_the_api(api: Api) -> None:
    c = api.client
    run_id = api.up_waiting("human.py")
    [item] = [i for i in c.get("/v1/inbox").json()["items"] if i["run_id"] == run_id]
    assert item["kind"] == "human" and item["title"] == "Name the release"
    assert error_of(c.post(f"/v1/human/{item['request_id']}/answer", json={"value": {"nom": 1}}), 400)["code"] == "INVALID_INPUT"
    answered = c.post(f"/v1/human/{item['request_id']}/answer", json={"value": {"name": "v2"}, "by": "bo"})
    assert answered.status_code == 200 and answered.json()["resumed"] is True
    assert error_of(c.post(f"/v1/human/{item['request_id']}/answer", json={"value": {"name": "v3"}}), 409)["code"] == "ALREADY_ANSWERED"
    run = api.wait_status(run_id, {"finished"})
    assert {n["id"]: n["output"] for n in run["nodes"]}["tag"] == {"text": "tagged v2"}


# -- server --------------------------------------------------------------------------------------


def test_openapi_lists_the_routes_and_metrics_answer(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for method, path in ROUTES:
        if path in ("/metrics", "/openapi.json"):
            continue
        template = path.replace("r1", "{run_id}").replace("n1", "{node_id}").replace("/go", "/{name}").replace("h1", "{request_id}")
        assert method.lower() in paths[template], template
    assert "text/event-stream" in paths["/v1/runs/{run_id}/events"]["get"]["responses"]["200"]["content"]
    run_id = api.start("simple.py")
    api.wait_status(run_id, {"finished"})
    metrics = api.client.get("/metrics")  # prometheus-client is in the test extras: the real exposition, never a 503
    assert metrics.status_code == 200, metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")
    samples = {s.name: s.value for family in text_string_to_metric_families(metrics.text) for s in family.samples if not s.labels}
    assert samples["smithers_runs_started_total"] >= 1 and samples["smithers_runs_finished_total"] >= 1, samples
    assert "smithers_runs_active" in samples and "smithers_node_attempts_started_total" in samples, sorted(samples)


def _popen(root: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "smithers", *args], cwd=root, env={**os.environ, "SMITHERS_DB": str(root / "smithers.db"), **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
    )


def test_smithers_serve_refuses_other_addresses_without_a_token_and_serves_with_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_API_KEY"}
    refused = subprocess.run([sys.executable, "-m", "smithers", "serve", "--host", "0.0.0.0", "--db", str(tmp_path / "s.db")],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode == 4 and "without a token" in refused.stderr

    server = _popen(tmp_path, "serve", "--port", "0", "--root", str(tmp_path), SMITHERS_API_KEY=TOKEN)
    try:
        line = server.stdout.readline()
        assert line.startswith("serving ") and TOKEN not in line, line + server.stderr.read()
        url = line.split(" on ", 1)[1].split()[0]
        assert httpx2.get(url + "/health").status_code == 200
        assert httpx2.get(url + "/v1/runs").status_code == 401
        assert httpx2.get(url + "/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"}).json()["runs"] == []
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=15)
    assert TOKEN not in out + err


def test_up_serve_serves_while_the_run_goes(tmp_path: Path) -> None:
    (tmp_path / "approval.py").write_text(textwrap.dedent(WORKFLOWS["approval.py"]))
    up = _popen(tmp_path, "up", "approval.py", "--serve", "--port", "0", "--quiet")
    try:
        line = up.stderr.readline()
        assert line.startswith("serving on "), line + up.stderr.read()
        with httpx2.Client(base_url=line.split()[-1], timeout=30) as client:
            [item] = wait_until(lambda: client.get("/v1/inbox").json()["items"], what="the approval in the inbox")
            run_id = item["run_id"]
            assert client.get(f"/v1/runs/{run_id}").json()["owner_alive"] is True  # --serve implies --wait
            assert error_of(client.post(f"/v1/runs/{run_id}/resume"), 409)["code"] == "RUN_OWNED"
            decided = client.post(f"/v1/runs/{run_id}/nodes/ship/approve", json={})
            assert decided.status_code == 200 and decided.json()["resumed"] is False  # its owner continues it
        out, err = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    assert up.returncode == 0, out + err
    assert out.strip() == f"run {run_id} finished"
