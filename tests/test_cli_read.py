"""The read commands as a user runs them: ps, inspect, node, events, logs, why, graph — JSON
shapes, filters, exit codes — against real runs made by the real CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Project
from waiting import wait_until

from smithers.queries import plan_tree
from smithers.storage.frames import rebuild

HELLO = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class HelloInput(BaseModel):
    name: str = "world"

class Greeting(BaseModel):
    message: str
    tags: list[str]
    meta: dict[str, int]
    note: str

class Shout(BaseModel):
    message: str
    length: int

@workflow(input=HelloInput)
def hello(ctx):
    greeting = ctx.output("greet")
    return Sequence(
        Task("greet", output=Greeting,
             value={"message": f"Hello, {ctx.input.name}!", "tags": ["a", "b"], "meta": {"x": 1}, "note": "[not json"}),
        greeting and Task("shout", output=Shout, run=lambda: {"message": greeting.message.upper(), "length": len(greeting.message)}),
    )
"""

FAILING = """
from pydantic import BaseModel
from smithers import Retry, Sequence, Task, workflow

class Out(BaseModel):
    n: int

def boom():
    raise ValueError("kaboom")

@workflow
def failing(ctx):
    return Sequence(
        Task("ok", output=Out, value={"n": 1}),
        Task("bad", output=Out, run=boom, retries=1, retry=Retry(initial="10ms", jitter=0)),
    )
"""

LOOP = """
from pydantic import BaseModel
from smithers import Loop, Task, workflow

class Pass(BaseModel):
    n: int

@workflow
def looping(ctx):
    done = ctx.iteration_count("body") >= 3
    return Loop(Task("body", output=Pass, run=lambda tc: {"n": tc.iteration}), id="lp", until=done, max_iterations=5)
"""

PLAN = """
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow

class V(BaseModel):
    v: int

@workflow
def plan(ctx):
    return Sequence(
        Task("a", output=V, value={"v": 1}),
        Parallel(Task("b", output=V, value={"v": 2}), Task("c", output=V, value={"v": 3}), max_concurrency=1),
        Task("d", output=V, value={"v": 4}),
    )
"""

LIVE = """
import time
from pydantic import BaseModel
from smithers import Parallel, Retry, Task, workflow

class Out(BaseModel):
    n: int

def sleeper():
    time.sleep(60)
    return {"n": 1}

def flaky(tc):
    if tc.attempt == 1:
        raise RuntimeError("first try fails")
    return {"n": 2}

@workflow
def live(ctx):
    return Parallel(
        Task("sleeper", output=Out, run=sleeper),
        Task("flaky", output=Out, run=flaky, retries=2, retry=Retry(initial="60s", jitter=0)),
    )
"""

SLOW = """
import time
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Out(BaseModel):
    n: int

def slow():
    time.sleep(1.0)
    return {"n": 1}

@workflow
def slow_wf(ctx):
    return Sequence(Task("slow", output=Out, run=slow), Task("after", output=Out, value={"n": 2}))
"""

MANY = """
from pydantic import BaseModel
from smithers import Loop, Task, workflow

class Step(BaseModel):
    n: int

@workflow
def many(ctx):
    done = ctx.iteration_count("step") >= 60
    return Loop(Task("step", output=Step, value={"n": ctx.iteration("lp")}), id="lp", until=done, max_iterations=100)
"""

RUN_KEYS = {"run_id", "workflow", "status", "created_at_ms", "updated_at_ms", "triggered_by"}
INSPECT_KEYS = {"run_id", "workflow", "status", "input", "created_at_ms", "error", "triggered_by", "nodes"}
NODE_KEYS = {"id", "iteration", "status", "attempts", "output"}
ATTEMPT_KEYS = {"attempt", "status", "started_at_ms", "finished_at_ms", "error"}


class Runs:
    """One project with a finished, a failed and a looping run, shared by the read-only tests."""

    def __init__(self, project: Project, run_id_of: Callable[[str], str]) -> None:
        self.project = project
        project.write("hello.py", HELLO)
        project.write("failing.py", FAILING)
        project.write("loop.py", LOOP)
        project.write("plan.py", PLAN)
        self.hello = self._up(run_id_of, 0, "hello.py", "--input", '{"name": "Ada"}')
        self.failed = self._up(run_id_of, 1, "failing.py")
        self.loop = self._up(run_id_of, 0, "loop.py")

    def _up(self, run_id_of: Callable[[str], str], code: int, *args: str) -> str:
        result = self.project.cli("up", *args)
        assert result.returncode == code, result.stdout + result.stderr
        return run_id_of(result.stdout)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, run_id_of: Callable[[str], str]) -> Runs:
    """The same finished, failed and looping runs on each backend: every read command is checked
    on a SQLite file and on a PostgreSQL database (``SMITHERS_DB`` is the URL)."""
    folder = tmp_path_factory.mktemp("read")
    if request.param == "sqlite":
        return Runs(Project(folder), run_id_of)
    return Runs(Project(folder, url=request.getfixturevalue("pg_server").new_database()), run_id_of)


@pytest.fixture(scope="module")
def run_id_of() -> Callable[[str], str]:  # module-scoped twin of the conftest fixture
    def parse(stdout: str) -> str:
        for line in reversed(stdout.strip().splitlines()):
            if line.startswith("run "):
                return line.split()[1]
        raise AssertionError(f"no run id in output:\n{stdout}")

    return parse


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def reap(proc: subprocess.Popen[str]) -> None:
    """Kill a background `smithers up` if it still runs, and close its pipes."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)


# -- ps --------------------------------------------------------------------------------------


def test_ps_lists_newest_first_with_the_documented_shape(runs: Runs) -> None:
    listed = runs.project.json("ps")
    assert isinstance(listed, list)
    assert [r["run_id"] for r in listed] == [runs.loop, runs.failed, runs.hello]
    assert all(set(r) == RUN_KEYS for r in listed)
    assert [r["workflow"] for r in listed] == ["looping", "failing", "hello"]
    assert [r["status"] for r in listed] == ["finished", "failed", "finished"]
    assert listed[0]["created_at_ms"] >= listed[1]["created_at_ms"] >= listed[2]["created_at_ms"]
    assert all(r["updated_at_ms"] >= r["created_at_ms"] for r in listed)

    failed = runs.project.json("ps", "--status", "failed")
    assert [r["run_id"] for r in failed] == [runs.failed]

    human = runs.project.cli("ps")
    assert human.returncode == 0
    header, *rows = human.stdout.splitlines()
    assert header.split()[:4] == ["RUN", "ID", "WORKFLOW", "STATUS"]
    assert rows[0].split()[:3] == [runs.loop, "looping", "finished"]
    assert rows[1].split()[:3] == [runs.failed, "failing", "failed"]

    bad = runs.project.cli("ps", "--status", "runing")
    assert bad.returncode == 4
    assert "runing" in bad.stderr


def test_ps_shows_twenty_unless_all(project: Project, run_id_of: Callable[[str], str]) -> None:
    project.write("plan.py", PLAN)
    first = run_id_of(project.cli("up", "plan.py").stdout)
    conn = sqlite3.connect(project.db)
    with conn:
        for i in range(24):
            conn.execute(
                "INSERT INTO _smithers_runs (run_id, workflow, workflow_spec, status, input_json, source_json, cwd, "
                "max_concurrency, created_at_ms, updated_at_ms, finished_at_ms) "
                "SELECT ?, workflow, workflow_spec, status, input_json, source_json, cwd, "
                "max_concurrency, created_at_ms + ?, updated_at_ms + ?, finished_at_ms "
                "FROM _smithers_runs WHERE run_id = ?",
                (f"copy-{i:02d}", i + 1, i + 1, first),
            )
    conn.close()
    newest = project.json("ps")
    assert len(newest) == 20
    assert [r["run_id"] for r in newest[:3]] == ["copy-23", "copy-22", "copy-21"]
    everything = project.json("ps", "--all")
    assert len(everything) == 25
    assert everything[-1]["run_id"] == first
    human = project.cli("ps")
    assert "--all" in human.stdout
    assert len([line for line in human.stdout.splitlines() if line.startswith("copy-")]) == 20


def test_reads_never_create_a_database(project: Project) -> None:
    listed = project.cli("ps")
    assert listed.returncode == 0
    assert "no runs" in listed.stdout
    assert project.json("ps") == []
    missing = project.cli("inspect", "nope")
    assert missing.returncode == 4
    assert "nope" in missing.stderr
    assert not project.db.exists()


# -- inspect ---------------------------------------------------------------------------------


def test_inspect_json_shape_and_outputs(runs: Runs) -> None:
    detail = runs.project.json("inspect", runs.hello)
    assert set(detail) == INSPECT_KEYS
    assert detail["run_id"] == runs.hello
    assert detail["workflow"] == "hello"
    assert detail["status"] == "finished"
    assert detail["input"] == {"name": "Ada"}
    assert detail["error"] is None
    assert isinstance(detail["created_at_ms"], int)
    assert [(n["id"], n["iteration"], n["status"]) for n in detail["nodes"]] == [("greet", 0, "finished"), ("shout", 0, "finished")]
    for node in detail["nodes"]:
        assert set(node) == NODE_KEYS
        assert len(node["attempts"]) == 1
        attempt = node["attempts"][0]
        assert set(attempt) == ATTEMPT_KEYS
        assert attempt["attempt"] == 1 and attempt["status"] == "finished" and attempt["error"] is None
        assert attempt["finished_at_ms"] >= attempt["started_at_ms"]
    greet, shout = detail["nodes"]
    # JSON columns come back decoded; text that merely looks like JSON stays text
    assert greet["output"] == {"message": "Hello, Ada!", "tags": ["a", "b"], "meta": {"x": 1}, "note": "[not json"}
    assert shout["output"] == {"message": "HELLO, ADA!", "length": 11}

    human = runs.project.cli("inspect", runs.hello)
    assert human.returncode == 0
    assert f"run {runs.hello}" in human.stdout
    assert "HELLO, ADA!" in human.stdout
    assert any(line.split()[:3] == ["shout", "0", "finished"] for line in human.stdout.splitlines())


def test_inspect_failed_run_has_errors(runs: Runs) -> None:
    detail = runs.project.json("inspect", runs.failed)
    assert detail["status"] == "failed"
    assert "kaboom" in detail["error"]["message"]
    nodes = {n["id"]: n for n in detail["nodes"]}
    assert nodes["ok"]["output"] == {"n": 1}
    bad = nodes["bad"]
    assert bad["status"] == "failed" and bad["output"] is None
    assert [(a["attempt"], a["status"]) for a in bad["attempts"]] == [(1, "failed"), (2, "failed")]
    for attempt in bad["attempts"]:
        assert attempt["error"]["type"] == "ValueError"
        assert attempt["error"]["message"] == "kaboom"
    human = runs.project.cli("inspect", runs.failed)
    assert "kaboom" in human.stdout and "failed" in human.stdout


# -- node ------------------------------------------------------------------------------------


def test_node_holds_every_iteration(runs: Runs) -> None:
    body = runs.project.json("node", runs.loop, "body")
    assert body["id"] == "body"
    assert [it["iteration"] for it in body["iterations"]] == [0, 1, 2]
    assert [it["output"] for it in body["iterations"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(it["status"] == "finished" and len(it["attempts"]) == 1 for it in body["iterations"])


def test_node_shows_errors_with_tracebacks(runs: Runs) -> None:
    bad = runs.project.json("node", runs.failed, "bad")
    (only,) = bad["iterations"]
    assert only["status"] == "failed" and only["output"] is None
    assert only["error"]["message"] == "kaboom"
    assert [a["attempt"] for a in only["attempts"]] == [1, 2]
    for attempt in only["attempts"]:
        assert set(attempt) >= ATTEMPT_KEYS
        assert attempt["error"]["message"] == "kaboom"
        assert 'raise ValueError("kaboom")' in attempt["error"]["traceback"]
    human = runs.project.cli("node", runs.failed, "bad")
    assert human.returncode == 0
    assert "attempt 2" in human.stdout and 'raise ValueError("kaboom")' in human.stdout

    missing = runs.project.cli("node", runs.failed, "nope")
    assert missing.returncode == 4
    assert "'nope'" in missing.stderr and "bad" in missing.stderr


# -- events and logs -------------------------------------------------------------------------


def test_events_ndjson_and_filters(runs: Runs) -> None:
    project, run_id = runs.project, runs.hello
    everything = project.cli("events", run_id, "--json")
    assert everything.returncode == 0
    events = ndjson(everything.stdout)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "RunStarted" and events[-1]["type"] == "RunFinished"
    assert all(e["run_id"] == run_id and isinstance(e["ts_ms"], int) for e in events)
    finished = [e for e in events if e["type"] == "NodeFinished"]
    assert all({"node_id", "iteration", "attempt"} <= set(e) for e in finished)

    exact = ndjson(project.cli("events", run_id, "--type", "NodeFinished", "--json").stdout)
    assert [(e["type"], e["node_id"]) for e in exact] == [("NodeFinished", "greet"), ("NodeFinished", "shout")]

    prefix = ndjson(project.cli("events", run_id, "--type", "Node", "--json").stdout)
    assert prefix == [e for e in events if e["type"].startswith("Node")]
    assert {"NodePending", "NodeStarted", "NodeFinished"} <= {e["type"] for e in prefix}

    shout = ndjson(project.cli("events", run_id, "--node", "shout", "--json").stdout)
    assert shout and all(e["node_id"] == "shout" for e in shout)
    assert [e["type"] for e in shout] == ["NodePending", "NodeStarted", "NodeFinished"]

    middle = events[len(events) // 2]["seq"]
    after = ndjson(project.cli("events", run_id, "--after", str(middle), "--json").stdout)
    assert after == [e for e in events if e["seq"] > middle]

    human = project.cli("events", run_id)
    assert len(human.stdout.splitlines()) == len(events)
    assert "RunFinished" in human.stdout.splitlines()[-1]


def test_logs_prints_lines_and_follow_returns_on_a_finished_run(runs: Runs) -> None:
    plain = runs.project.cli("logs", runs.failed)
    assert plain.returncode == 0
    lines = plain.stdout.splitlines()
    assert "RunStarted" in lines[0] and "RunFailed" in lines[-1]
    assert any("NodeFailed" in line and "bad[0]" in line and "kaboom" in line for line in lines)

    followed = runs.project.cli("logs", runs.failed, "-f", timeout=30)  # returns by itself: the run is over
    assert followed.returncode == 0
    assert followed.stdout == plain.stdout

    as_json = ndjson(runs.project.cli("logs", runs.failed, "--json").stdout)
    assert as_json[-1]["type"] == "RunFailed"


def test_logs_follow_streams_a_live_run_to_its_end(project: Project) -> None:
    project.write("slow.py", SLOW)
    proc = project.popen("up", "slow.py", "--run-id", "slow-run")
    try:
        wait_until(lambda: project.db.exists() and bool(project.query("SELECT 1 FROM _smithers_runs WHERE run_id = 'slow-run'")),
                   what="the run row of slow-run")
        assert project.query("SELECT status FROM _smithers_runs WHERE run_id = 'slow-run'") == [("running",)]
        followed = project.cli("logs", "slow-run", "--follow", timeout=20)
        assert followed.returncode == 0, followed.stderr
        lines = followed.stdout.splitlines()
        assert "RunFinished" in lines[-1]
        assert any("NodeFinished" in line and "after[0]" in line for line in lines)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
    finally:
        reap(proc)


# -- why -------------------------------------------------------------------------------------


def test_why_finished_and_failed(runs: Runs) -> None:
    done = runs.project.json("why", runs.hello)
    assert done == {
        "run_id": runs.hello, "status": "finished", "reason": done["reason"], "blocked_on": [], "commands": [],
    }
    assert "finished" in done["reason"]

    failed = runs.project.json("why", runs.failed)
    assert set(failed) == {"run_id", "status", "reason", "blocked_on", "commands"}
    assert failed["status"] == "failed"
    assert "'bad'" in failed["reason"] and "kaboom" in failed["reason"]
    assert [(b["node_id"], b["status"], b["error"]) for b in failed["blocked_on"]] == [("bad", "failed", "kaboom")]
    assert failed["commands"] == [f"smithers resume {runs.failed}"]
    human = runs.project.cli("why", runs.failed)
    assert human.returncode == 0
    assert "bad" in human.stdout and "kaboom" in human.stdout
    assert f"smithers resume {runs.failed}" in human.stdout


def test_why_live_then_dead_owner_then_cancelled(project: Project) -> None:
    project.write("live.py", LIVE)
    proc = project.popen("up", "live.py", "--run-id", "live-run")
    try:
        def blocked() -> bool:
            if not project.db.exists():
                return False
            rows = dict(project.query(
                "SELECT node_id, status || ':' || COALESCE(retry_at_ms, '') FROM _smithers_nodes WHERE run_id = 'live-run'"
            ))
            return rows.get("sleeper") == "running:" and rows.get("flaky", "").startswith("pending:1")

        wait_until(blocked, what="sleeper running and flaky pending a retry")
        live = project.json("why", "live-run")
        assert live["status"] == "running" and live["commands"] == []
        assert "in flight" in live["reason"] and "sleeper" in live["reason"]
        blocked_on = {b["node_id"]: b for b in live["blocked_on"]}
        assert blocked_on["sleeper"]["status"] == "running"
        assert blocked_on["flaky"]["retry_at_ms"] > time.time() * 1000
        assert blocked_on["flaky"]["error"] == "first try fails"

        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)  # reaped: a zombie would still look alive
        dead = project.json("why", "live-run")
        assert dead["status"] == "running"
        assert "died" in dead["reason"]
        assert dead["commands"] == ["smithers resume live-run"]
        assert "sleeper" in {b["node_id"] for b in dead["blocked_on"]}
        human = project.cli("why", "live-run")
        assert "died" in human.stdout and "smithers resume live-run" in human.stdout

        # following a run whose owner died does not hang
        followed = project.cli("logs", "live-run", "-f", timeout=15)
        assert followed.returncode == 1
        assert "smithers resume live-run" in followed.stderr

        assert project.cli("cancel", "live-run").returncode == 0
        cancelled = project.json("why", "live-run")
        assert cancelled["status"] == "cancelled"
        assert cancelled["commands"] == ["smithers resume live-run"]
        assert "cancelled" in cancelled["reason"]
    finally:
        reap(proc)


# -- graph -----------------------------------------------------------------------------------


def test_graph_preview_in_three_formats(runs: Runs) -> None:
    project = runs.project
    tree = project.cli("graph", "plan.py")
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert "no run" in lines[0]
    assert lines[1:] == [
        "workflow",
        "└── sequence",
        "    ├── a  static → v",
        "    ├── parallel (max 1 at once)",
        "    │   ├── b  static → v",
        "    │   └── c  static → v",
        "    └── d  static → v",
    ]

    nested = project.json("graph", "plan.py", "--format", "json")
    assert nested == project.json("graph", "plan.py")  # --json is --format json
    assert nested["t"] == "workflow"
    (seq,) = nested["children"]
    assert seq["t"] == "sequence"
    assert [c.get("id", c["t"]) for c in seq["children"]] == ["a", "parallel", "d"]
    assert [c["id"] for c in seq["children"][1]["children"]] == ["b", "c"]
    a = seq["children"][0]
    assert (a["t"], a["it"], a["mode"], a["out"]) == ("task", 0, "static", "v")
    assert "status" not in a

    chart = project.cli("graph", "plan.py", "--format", "mermaid").stdout
    assert chart.splitlines()[0] == "flowchart TD"
    ids = {name: line.split("[")[0].strip() for line in chart.splitlines() for name in "abcd" if f'["{name}<br/>' in line}
    parallel = next(line.split()[1].split("[")[0] for line in chart.splitlines() if "parallel" in line)
    edges = {line.strip() for line in chart.splitlines() if "-->" in line}
    assert edges == {f"{ids['a']} --> {parallel}", f"{parallel} --> {ids['d']}"}

    # conditional mounting: only what the first render mounts; the input is validated
    hello = project.json("graph", "hello.py", "--input", '{"name": "Bo"}', "--format", "json")
    assert [c["id"] for c in hello["children"][0]["children"]] == ["greet"]
    assert project.cli("graph", "hello.py", "--input", '{"name": 3}').returncode == 4
    assert project.cli("graph", "hello.py", "--input", "{not json").returncode == 4
    assert project.cli("graph").returncode == 4
    assert project.cli("graph", "plan.py", "--format", "dot").returncode == 4
    assert project.cli("graph", "plan.py", "--frame", "0").returncode == 4


def _tasks(tree: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    stack = [tree]
    while stack:
        node = stack.pop()
        if node["t"] == "task":
            found[f"{node['id']}#{node['it']}"] = node["status"]
        stack.extend(node.get("children", ()))
    return found


def test_graph_of_a_run_by_frame(runs: Runs) -> None:
    project, run_id = runs.project, runs.hello
    frames = project.query("SELECT COUNT(*) FROM _smithers_frames WHERE run_id = ?", (run_id,))[0][0]
    assert frames >= 2

    first = project.json("graph", "--run", run_id, "--frame", "0")
    assert _tasks(first) == {"greet#0": "pending"}
    last = project.json("graph", "--run", run_id)
    assert _tasks(last) == {"greet#0": "finished", "shout#0": "finished"}
    assert project.json("graph", "--run", run_id, "--frame", str(frames - 1)) == last
    assert project.json("graph", "hello.py", "--run", run_id, "--frame", "0") == first  # FILE is ignored with --run

    tree = project.cli("graph", "--run", run_id, "--frame", "0").stdout
    assert f"run {run_id}" in tree and "frame 0" in tree
    assert "greet  static → greeting  [pending]" in tree and "shout" not in tree
    chart = project.cli("graph", "--run", run_id, "--format", "mermaid").stdout
    assert chart.startswith("flowchart TD")
    assert any(line.strip().startswith("class ") and line.strip().endswith(" finished") for line in chart.splitlines())

    past = project.cli("graph", "--run", run_id, "--frame", str(frames))
    assert past.returncode == 4
    assert f"{frames} frames" in past.stderr
    assert project.cli("graph", "--run", run_id, "--frame", "-1").returncode == 4

    loop = project.json("graph", "--run", runs.loop)
    (lp,) = loop["children"]
    assert (lp["t"], lp["id"], lp["it"], lp["done"]) == ("loop", "lp", 2, True)
    assert _tasks(loop) == {"body#2": "finished"}


def test_graph_frames_past_a_keyframe(project: Project) -> None:
    project.write("many.py", MANY)
    assert project.cli("up", "many.py", "--run-id", "many").returncode == 0
    store = project.store()
    try:
        rows = store.frames("many")
        assert any(r["is_keyframe"] and r["frame_no"] > 0 for r in rows)  # deltas after a later keyframe
        for n in (len(rows) // 2, len(rows) - 2):
            expected = plan_tree(rebuild(rows, n, json.loads))
            shown = project.json("graph", "--run", "many", "--frame", str(n))
            for node in (shown, expected):
                loop = node["children"][0]
                assert loop["children"][0]["it"] == loop["it"]
                loop["children"][0].pop("status", None)
            assert shown == expected
    finally:
        store.close()


# -- unknown runs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("inspect", "no-such-run"),
        ("node", "no-such-run", "greet"),
        ("events", "no-such-run"),
        ("logs", "no-such-run"),
        ("logs", "no-such-run", "-f"),
        ("why", "no-such-run"),
        ("graph", "--run", "no-such-run"),
    ],
)
def test_unknown_run_exits_4(runs: Runs, args: tuple[str, ...]) -> None:
    result = runs.project.cli(*args)
    assert result.returncode == 4
    assert "no-such-run" in result.stderr
    json_result = runs.project.cli(*args, "--json")
    assert json_result.returncode == 4 and json_result.stdout == ""
