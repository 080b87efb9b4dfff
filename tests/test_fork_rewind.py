"""Time travel over frames (DESIGN §10.3): fork, replay, retry-task, rewind, the timeline — through
the real CLI, real git repositories, a real live owner, the HTTP API and the dashboard in Chromium."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from waiting import wait_until

# a static task then three compute tasks; each compute task logs its name and writes <name>.txt in the run's folder
STEPS = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow

class Input(BaseModel):
    word: str = "hello"

class Out(BaseModel):
    text: str

def step(name):
    def run(ctx):
        (Path(ctx.cwd) / ".smithers").mkdir(exist_ok=True)
        with open(Path(ctx.cwd) / ".smithers" / "ran.log", "a") as log:
            log.write(name + "\\n")
        (Path(ctx.cwd) / f"{name}.txt").write_text(f"made by {name}\\n")
        return {"text": name}
    return run

@workflow(input=Input)
def steps(ctx):
    return Sequence(
        Task("a", output=Out, value={"text": ctx.input.word}),
        Task("b", output=Out, run=step("b")),
        Task("c", output=Out, run=step("c")),
        Task("d", output=Out, run=step("d")),
    )
"""

# a fan-out in the middle: retry-task of one branch re-runs what comes after, not its sibling
FANOUT = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow

class Out(BaseModel):
    text: str

def step(name):
    def run(ctx):
        (Path(ctx.cwd) / ".smithers").mkdir(exist_ok=True)
        with open(Path(ctx.cwd) / ".smithers" / "ran.log", "a") as log:
            log.write(name + "\\n")
        return {"text": name}
    return run

@workflow
def fanout(ctx):
    return Sequence(
        Task("a", output=Out, run=step("a")),
        Parallel(Task("b", output=Out, run=step("b")), Task("c", output=Out, run=step("c"))),
        Task("d", output=Out, run=step("d")),
    )
"""

# waits for a signal: `up --wait` keeps a live owner until the signal arrives
WAITS = """
from pydantic import BaseModel
from smithers import Sequence, Signal, Task, workflow

class Out(BaseModel):
    text: str

class Go(BaseModel):
    ok: bool = True

@workflow
def waits(ctx):
    return Sequence(Task("a", output=Out, value={"text": "a"}), Signal("go", schema=Go), Task("b", output=Out, value={"text": "b"}))
"""


def ran(project) -> list[str]:
    """The tasks that ran since the last call (their log is under .smithers/, which snapshots never hold)."""
    log = project.root / ".smithers" / "ran.log"
    lines = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def outputs(project, run_id: str) -> dict[str, str]:
    return dict(project.query("SELECT node_id, text FROM out WHERE run_id = ?", (run_id,)))


def first_event(project, run_id: str) -> tuple[str, dict]:
    type_, payload = project.query("SELECT type, payload_json FROM _smithers_events WHERE run_id = ? ORDER BY seq LIMIT 1", (run_id,))[0]
    return type_, json.loads(payload or "{}")


def snapshot_of_db(project, run_id: str) -> tuple:
    """Everything of a run that time travel must not change when it only reads it."""
    q = project.query
    return (
        q("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,)),
        q("SELECT COUNT(*) FROM _smithers_events WHERE run_id = ?", (run_id,)),
        q("SELECT node_id, iteration, status, attempts FROM _smithers_nodes WHERE run_id = ? ORDER BY node_id", (run_id,)),
        q("SELECT COUNT(*) FROM _smithers_frames WHERE run_id = ?", (run_id,)),
        q("SELECT COUNT(*) FROM _smithers_attempts WHERE run_id = ?", (run_id,)),
        sorted(q("SELECT node_id, text FROM out WHERE run_id = ?", (run_id,))),
    )


@pytest.fixture
def steps_run(project):
    project.write("steps.py", STEPS)
    result = project.cli("up", "steps.py", "--run-id", "base", "--input", '{"word": "hi"}')
    assert result.returncode == 0, result.stderr
    assert ran(project) == ["b", "c", "d"]
    return project


def frame_after(project, run_id: str, node_id: str) -> int:
    """The frame committed when ``node_id`` finished."""
    for frame in project.json("timeline", run_id)["frames"]:
        if any(s["node_id"] == node_id and s["step"] == "finished" for s in frame["steps"]):
            return frame["frame_no"]
    raise AssertionError(f"no frame for {node_id}")


# -- fork ----------------------------------------------------------------------------------------


def test_fork_in_the_middle_reuses_what_finished_and_reruns_the_rest(steps_run) -> None:
    project = steps_run
    before = snapshot_of_db(project, "base")
    at = frame_after(project, "base", "b")  # a and b had finished; c and d had not
    forked = project.json("fork", "base", "--frame", str(at), "--label", "try again")
    new = forked["run_id"]
    assert forked == {"run_id": new, "forked_from": "base", "frame_no": at}
    assert snapshot_of_db(project, "base") == before  # the original run is unchanged
    assert first_event(project, new) == ("RunForked", {
        "forked_from": "base", "frame_no": at, "label": "try again", "reset_nodes": [], "input_changed": False, "carried": 2,
    })
    assert project.json("inspect", new)["status"] == "queued"
    assert outputs(project, new) == {"a": "hi", "b": "b"}

    listed = {r["run_id"]: r for r in project.json("ps")}
    assert listed[new]["forked_from"] == "base" and listed[new]["fork_frame"] == at and "forked_from" not in listed["base"]
    assert f"base@{at}" in project.cli("ps").stdout

    done = project.cli("resume", new)
    assert done.returncode == 0, done.stderr
    assert ran(project) == ["c", "d"]  # the earlier outputs were reused, the later tasks re-ran
    assert outputs(project, new) == {"a": "hi", "b": "b", "c": "c", "d": "d"}
    assert snapshot_of_db(project, "base") == before


def test_fork_reset_node_input_and_refusals(steps_run) -> None:
    project = steps_run
    last = len(project.json("timeline", "base")["frames"]) - 1
    forked = project.json("fork", "base", "--frame", str(last), "--reset-node", "b")
    assert outputs(project, forked["run_id"]) == {"a": "hi"}  # b and what comes after it run again
    assert project.cli("resume", forked["run_id"]).returncode == 0
    assert ran(project) == ["b", "c", "d"]

    changed = project.json("fork", "base", "--frame", "0", "--input", '{"word": "bye"}', "--run")
    assert changed["status"] == "finished" and changed["forked_from"] == "base"
    assert outputs(project, changed["run_id"])["a"] == "bye"
    (stored,) = project.query("SELECT input_json FROM _smithers_runs WHERE run_id = ?", (changed["run_id"],))
    assert json.loads(stored[0]) == {"word": "bye"}
    assert ran(project) == ["b", "c", "d"]  # frame 0: nothing had finished

    for args, words in [
        (["--frame", str(last + 1)], [f"frame {last + 1} does not exist"]),
        (["--frame", "1", "--reset-node", "nope"], ["no node 'nope'"]),
        (["--frame", "1", "--input", '{"word": 5}'], ["word"]),
    ]:
        result = project.cli("fork", "base", *args)
        assert result.returncode == 4, result.stderr
        assert all(w in result.stderr for w in words), result.stderr
    assert project.cli("fork", "nope", "--frame", "0").returncode == 4


def test_fork_of_a_fork_and_timeline_tree(steps_run) -> None:
    project = steps_run
    first = project.json("fork", "base", "--frame", "2", "--label", "one")["run_id"]
    assert project.cli("resume", first).returncode == 0
    second = project.json("fork", first, "--frame", "1", "--label", "two")["run_id"]

    flat = project.json("timeline", "base")
    assert [(f["run_id"], f["frame_no"], f["label"]) for f in flat["forks"]] == [(first, 2, "one")]
    assert "forks" not in flat["forks"][0]
    tree = project.json("timeline", "base", "--tree")
    (child,) = tree["forks"]
    (grandchild,) = child["forks"]
    assert (grandchild["run_id"], grandchild["frame_no"], grandchild["label"], grandchild["forks"]) == (second, 1, "two", [])
    text = project.cli("timeline", "base", "--tree").stdout
    assert f"fork {first} 'one' at frame 2" in text and f"fork {second} 'two' at frame 1" in text


def test_replay_restore_files_puts_the_tree_back_then_runs_the_fork(steps_run) -> None:
    project = steps_run
    at = frame_after(project, "base", "b")
    (project.root / "b.txt").write_text("edited by hand\n")
    refused = project.cli("replay", "base", "--frame", str(at), "--restore-files")
    assert refused.returncode == 4 and "no snapshot of run base holds (b.txt)" in refused.stderr  # the edit is unsaved work
    assert (project.root / "b.txt").read_text() == "edited by hand\n" and ran(project) == []
    (project.root / "b.txt").write_text("made by b\n")

    replayed = project.cli("replay", "base", "--frame", str(at), "--restore-files", "--json")
    assert replayed.returncode == 0, replayed.stderr
    result = json.loads(replayed.stdout)
    assert sorted(result["restored"]["files"]) == ["c.txt", "d.txt"]  # they did not exist at that frame
    assert result["status"] == "finished" and result["forked_from"] == "base"
    assert ran(project) == ["c", "d"]
    assert all((project.root / f"{n}.txt").exists() for n in "bcd")
    assert [r[0] for r in project.query("SELECT action FROM _smithers_audit WHERE run_id = 'base'")] == ["replay-restore-files"]


# -- retry-task ----------------------------------------------------------------------------------


def test_retry_task_with_and_without_deps(project) -> None:
    project.write("fanout.py", FANOUT)
    assert project.cli("up", "fanout.py", "--run-id", "f").returncode == 0
    assert sorted(ran(project)) == ["a", "b", "c", "d"]
    files_before = sorted(p.name for p in project.root.iterdir())

    reset = project.json("retry-task", "f", "--node", "b")
    assert [(r["node_id"], r["iteration"]) for r in reset["reset"]] == [("b", 0), ("d", 0)]  # c, b's sibling, is kept
    assert reset["status"] == "queued"
    statuses = dict(project.query("SELECT node_id, status FROM _smithers_nodes WHERE run_id = 'f'"))
    assert statuses == {"a": "finished", "b": "pending", "c": "finished", "d": "pending"}
    assert outputs(project, "f") == {"a": "a", "c": "c"}  # the output rows left the live table
    pending = project.query("SELECT payload_json FROM _smithers_events WHERE run_id = 'f' AND type = 'NodePending' AND node_id = 'b' "
                            "ORDER BY seq DESC LIMIT 1")
    assert json.loads(pending[0][0]) == {"reason": "retry-task", "removed_output": {"text": "b"}}  # history stays in events
    assert project.json("inspect", "f")["status"] == "queued"
    assert sorted(p.name for p in project.root.iterdir()) == files_before  # files are not touched

    assert project.cli("resume", "f").returncode == 0
    assert sorted(ran(project)) == ["b", "d"]
    attempts = dict(project.query("SELECT node_id, MAX(attempt) FROM _smithers_attempts WHERE run_id = 'f' GROUP BY node_id"))
    assert attempts == {"a": 1, "b": 2, "c": 1, "d": 2}

    only = project.cli("retry-task", "f", "--node", "b", "--no-deps", "--resume")
    assert only.returncode == 0, only.stderr
    assert ran(project) == ["b"]
    assert project.json("inspect", "f")["status"] == "finished"
    frames = project.json("timeline", "f")["frames"]
    assert any(s["step"] == "reset" and s["node_id"] == "b" for f in frames for s in f["steps"])

    assert project.cli("retry-task", "f", "--node", "nope").returncode == 4
    assert project.cli("retry-task", "f", "--node", "b", "--iteration", "3").returncode == 4


# -- rewind --------------------------------------------------------------------------------------


def test_rewind_refuses_without_yes_and_while_the_run_has_a_live_owner(project) -> None:
    project.write("waits.py", WAITS)
    proc = project.popen("up", "waits.py", "--run-id", "w", "--wait")
    try:
        wait_until(lambda: project.query("SELECT status FROM _smithers_runs WHERE run_id = 'w'") == [("waiting-event",)], 30, 0.1)
        before = snapshot_of_db(project, "w")
        no_yes = project.cli("rewind", "w", "--frame", "0")
        assert no_yes.returncode == 4 and "--yes" in no_yes.stderr
        owned = project.cli("rewind", "w", "--frame", "0", "--yes")
        assert owned.returncode == 4 and f"pid {proc.pid}" in owned.stderr
        retry = project.cli("retry-task", "w", "--node", "a")
        assert retry.returncode == 4 and "being run by" in retry.stderr
        assert snapshot_of_db(project, "w") == before  # nothing changed
        assert project.cli("signal", "w", "go", "--data", "{}").returncode == 0
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + err
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)  # reaps it and closes its pipes
    rewound = project.json("rewind", "w", "--frame", "1", "--yes")  # the owner is gone: now it may
    assert rewound["status"] == "queued" and {r["node_id"] for r in rewound["reset"]} >= {"b"}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def test_rewind_restores_the_files_in_a_git_repository(project) -> None:
    root = project.root
    _git(root, "init", "-q")
    (root / ".gitignore").write_text("__pycache__/\n")
    project.write("steps.py", STEPS)
    _git(root, "add", ".")
    _git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "start")
    head, branch = _git(root, "rev-parse", "HEAD"), _git(root, "branch", "--show-current")
    assert project.cli("up", "steps.py", "--run-id", "g").returncode == 0
    assert ran(project) == ["b", "c", "d"]
    at = frame_after(project, "g", "b")

    (root / "mine.txt").write_text("work of my own\n")
    before = snapshot_of_db(project, "g")
    unsaved = project.cli("rewind", "g", "--frame", str(at), "--yes")
    assert unsaved.returncode == 4 and "mine.txt" in unsaved.stderr and "--force" in unsaved.stderr
    assert snapshot_of_db(project, "g") == before and (root / "c.txt").exists()
    (root / "mine.txt").unlink()

    rewound = project.json("rewind", "g", "--frame", str(at), "--yes")
    assert sorted(rewound["restored"]["files"]) == ["c.txt", "d.txt"]
    assert not (root / "c.txt").exists() and not (root / "d.txt").exists() and (root / "b.txt").exists()
    assert (_git(root, "rev-parse", "HEAD"), _git(root, "branch", "--show-current")) == (head, branch)
    assert _git(root, "diff", "--cached", "--name-only") == ""  # the index is untouched
    assert project.query("SELECT COUNT(*) FROM _smithers_frames WHERE run_id = 'g'") == [(at + 1,)]
    assert project.query("SELECT node_id FROM _smithers_attempts WHERE run_id = 'g' ORDER BY node_id") == [("a",), ("b",)]
    assert outputs(project, "g") == {"a": "hello", "b": "b"}
    assert project.json("inspect", "g")["status"] == "queued"
    (action, detail), = project.query("SELECT action, detail_json FROM _smithers_audit WHERE run_id = 'g'")
    assert action == "rewind" and json.loads(detail)["frame_no"] == at
    rewound_event = project.query("SELECT payload_json FROM _smithers_events WHERE run_id = 'g' AND type = 'RunRewound'")
    frames_before = before[3][0][0]
    assert json.loads(rewound_event[0][0])["dropped_frames"] == frames_before - (at + 1) == rewound["dropped_frames"]

    assert project.cli("resume", "g").returncode == 0
    assert ran(project) == ["c", "d"]
    assert (root / "c.txt").exists() and (root / "d.txt").exists()

    # --force over unsaved work: it is saved as one more snapshot of the run first
    (root / "mine.txt").write_text("work of my own\n")
    forced = project.json("rewind", "g", "--frame", str(at), "--yes", "--force")
    (folder,) = forced["restored"]["folders"]
    assert folder["saved"] and "mine.txt" in folder["files"]
    assert not (root / "mine.txt").exists()
    assert "mine.txt" in _git(root, "show", "--name-only", "--format=", folder["saved"])  # nothing was lost


# -- HTTP and the dashboard ----------------------------------------------------------------------


@pytest.fixture
def http(steps_run):
    import httpx2

    from smithers.server.app import ServerThread, bind, create_app

    app = create_app(steps_run.db, steps_run.root, None, ping_interval=0.3, poll_interval=0.05)
    server = ServerThread(app, bind("127.0.0.1", 0)).start()
    client = httpx2.Client(base_url=server.url, timeout=30)
    try:
        yield client, steps_run
    finally:
        client.close()
        server.stop()


def test_http_timeline_and_fork(http) -> None:
    client, project = http
    timeline = client.get("/v1/runs/base/timeline").json()
    assert timeline == project.json("timeline", "base")
    at = frame_after(project, "base", "b")

    made = client.post("/v1/runs/base/fork", json={"frame_no": at, "label": "api"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["forked_from"] == "base" and body["frame_no"] == at and body["status"] == "queued"
    run = client.get(f"/v1/runs/{body['run_id']}").json()
    assert run["forked_from"] == "base" and run["fork_frame"] == at
    assert client.get("/v1/runs/base/timeline", params={"tree": True}).json()["forks"][0]["label"] == "api"

    running = client.post("/v1/runs/base/fork", json={"frame_no": at, "run": True}).json()
    wait_until(lambda: client.get(f"/v1/runs/{running['run_id']}").json()["status"] == "finished", 30, 0.1)
    assert sorted(ran(project)) == ["c", "d"]

    for request, status, code in [
        ({"frame_no": 999}, 404, "UNKNOWN_FRAME"),
        ({"frame_no": 1, "reset_nodes": ["nope"]}, 404, "UNKNOWN_NODE"),
        ({"frame_no": 1, "input": {"word": 5}}, 400, "INVALID_INPUT"),
    ]:
        response = client.post("/v1/runs/base/fork", json=request)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
    assert client.get("/v1/runs/nope/timeline").status_code == 404


@pytest.mark.slow
@pytest.mark.browser
def test_dashboard_timeline_tab_forks_a_run(http, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    client, project = http
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail(f"{chromium} is missing: install Debian's chromium package to run the dashboard tests")
    url = str(client.base_url).rstrip("/")
    frames = project.json("timeline", "base")["frames"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(20_000)
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(f"{url}/#/runs/base")
            page.locator('[data-tab="timeline"]').click()
            rows = page.locator("#timeline-frames .tl-frame")
            expect(rows).to_have_count(len(frames))
            expect(page.locator('.tl-frame[data-frame="0"]')).to_have_attribute("data-kind", "plan")
            at = frame_after(project, "base", "c")
            expect(page.locator(f'.tl-frame[data-frame="{at}"] .tl-what')).to_contain_text("c finished (attempt 1)")
            (tmp_path / "artifacts").mkdir()
            page.screenshot(path=str(tmp_path / "artifacts" / "timeline.png"), full_page=True)

            page.locator(f'.tl-frame[data-frame="{at}"] .tl-fork').click()
            page.wait_for_url(lambda u: "#/runs/" in u and not u.endswith("/base"))
            new = page.url.rsplit("/", 1)[-1]
            expect(page.locator("#run-id")).to_have_text(new)
            page.locator('[data-tab="timeline"]').click()
            expect(page.locator("#timeline-lineage")).to_contain_text(f"Forked from base at frame {at}")
            assert project.query("SELECT forked_from, fork_frame, status FROM _smithers_runs WHERE run_id = ?", (new,)) == [
                ("base", at, "queued")]
            page.goto(f"{url}/#/runs/base")
            page.locator('[data-tab="timeline"]').click()
            expect(page.locator(f'#timeline-forks .tl-fork-row[data-run="{new}"]')).to_be_visible()
            assert not errors, errors
        finally:
            browser.close()
