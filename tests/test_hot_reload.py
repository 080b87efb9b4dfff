"""Hot reload (DESIGN §10.5, `up --hot`, `resume --hot`): a real `smithers` process runs a workflow
whose tasks wait for a file, while the test edits the workflow file and the local module it
imports on disk. Each task's output records which code produced it (the workflow's MARK and the
helper's VERSION), so the outputs show which code ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path

from waiting import wait_until

from smithers.authoring.loader import source_fingerprint
from smithers.engine.hot import SourceWatcher

HELPER = 'VERSION = "h1"\n'

# gateN waits for the file goN (so the run stays alive while the test edits), then stepN runs:
# a task that starts after an edit shows the code it was started with
WORKFLOW = """\
import asyncio, time
from pathlib import Path
from pydantic import BaseModel
from smithers import workflow, Task, Sequence
import helper

HERE = Path(__file__).parent
MARK = "w1"

class Out(BaseModel):
    mark: str
    helper: str

def gate(name):
    async def fn():
        deadline = time.monotonic() + 120
        while not (HERE / name).exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return {"mark": MARK, "helper": helper.VERSION}
    return fn

def now():
    return {"mark": MARK, "helper": helper.VERSION}

@workflow
def hot(ctx):
    steps = [Task("first", output=Out, run=now)]
    for n in range(1, GATES + 1):
        steps += [Task(f"gate{n}", output=Out, run=gate(f"go{n}")), Task(f"step{n}", output=Out, run=now)]
    return Sequence(*steps)
"""


def write_project(root: Path, gates: int) -> tuple[Path, Path]:
    (root / "helper.py").write_text(HELPER)
    wf = root / "wf.py"
    wf.write_text(WORKFLOW.replace("GATES", str(gates)))
    return wf, root / "helper.py"


def edit(path: Path, old: str, new: str) -> None:
    """Save as editors do: write a new file, rename it over the old one (never a half-written file)."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    fresh = path.with_name(path.name + ".swp")
    fresh.write_text(text.replace(old, new))
    fresh.replace(path)


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def events(project, run_id: str, kind: str) -> list[dict]:
    rows = project.query("SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = ? ORDER BY seq", (run_id, kind))
    return [json.loads(r[0]) for r in rows]


def status(project, run_id: str, node_id: str) -> str | None:
    rows = project.query("SELECT status FROM _smithers_nodes WHERE run_id = ? AND node_id = ?", (run_id, node_id))
    return rows[0][0] if rows else None


def output(project, run_id: str, node_id: str) -> tuple[str, str]:
    rows = project.query("SELECT mark, helper FROM out WHERE run_id = ? AND node_id = ?", (run_id, node_id))
    assert rows, f"no output row for {node_id}"
    return rows[0][0], rows[0][1]


def wait_running(project, run_id: str, node_id: str) -> None:
    wait_until(lambda: status(project, run_id, node_id), what=f"{node_id} running", until=lambda s: s == "running", ignoring=(Exception,))


def wait_events(project, run_id: str, kind: str, count: int) -> list[dict]:
    return wait_until(lambda: events(project, run_id, kind), what=f"{count} {kind} events", until=lambda e: len(e) >= count)


def release(project, run_id: str, n: int) -> tuple[str, str]:
    """Let gateN finish, and return stepN's output (mark, helper)."""
    (project.root / f"go{n}").touch()
    wait_until(lambda: status(project, run_id, f"step{n}"), what=f"step{n} finished", until=lambda s: s == "finished")
    return output(project, run_id, f"step{n}")


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the run did not end:\n{out}\n{err}") from None
    return proc.returncode, out, err


def test_up_hot_reloads_edits_of_the_workflow_and_its_local_module(project):
    wf, helper = write_project(project.root, gates=4)
    unrelated = project.write("unrelated.py", 'X = 1\n')
    proc = project.popen("up", "wf.py", "--hot", "--run-id", "r1")
    try:
        wait_running(project, "r1", "gate1")
        assert output(project, "r1", "first") == ("w1", "h1")

        # a file the workflow does not import changes, then the workflow file: one reload, naming only wf.py
        unrelated.write_text("X = 2\n")
        (project.root / "notes.txt").write_text("not code")
        edit(wf, 'MARK = "w1"', 'MARK = "w2"')
        reloaded = wait_events(project, "r1", "WorkflowReloaded", 1)
        assert [e["files"] for e in reloaded] == [[str(wf)]]
        assert release(project, "r1", 1) == ("w2", "h1")  # a task started after the edit runs the new code
        assert output(project, "r1", "gate1") == ("w1", "h1")  # the attempt running during the edit went on with the old
        assert output(project, "r1", "first") == ("w1", "h1")  # finished outputs stay, and did not run again
        assert project.query("SELECT count(*) FROM _smithers_attempts WHERE run_id = 'r1' AND node_id = 'first'") == [(1,)]

        # the local module it imports
        wait_running(project, "r1", "gate2")
        edit(helper, '"h1"', '"h2"')
        assert wait_events(project, "r1", "WorkflowReloaded", 2)[1]["files"] == [str(helper)]

        # a syntax error: the reload fails, says where, and the run goes on with the code it had
        edit(wf, 'MARK = "w2"', 'MARK = "w2"\ndef broken(:\n')
        failed = wait_events(project, "r1", "WorkflowReloadFailed", 1)
        assert f"{wf}:{line_of(wf, 'def broken(:')}" in failed[0]["error"]["message"] and "syntax" in failed[0]["error"]["message"], failed
        assert failed[0]["files"] == [str(wf)]
        assert release(project, "r1", 2) == ("w2", "h2")

        # fixed: it reloads
        wait_running(project, "r1", "gate3")
        edit(wf, 'MARK = "w2"\ndef broken(:\n', 'MARK = "w3"\n')
        assert wait_events(project, "r1", "WorkflowReloaded", 3)[2]["files"] == [str(wf)]
        assert release(project, "r1", 3) == ("w3", "h2")

        # the local module raises while importing: the failure names that file and line; fixed, it reloads
        wait_running(project, "r1", "gate4")
        edit(helper, 'VERSION = "h2"', 'VERSION = "h3"\nraise RuntimeError("half-written helper")')
        failed = wait_events(project, "r1", "WorkflowReloadFailed", 2)
        assert f"{helper}:2" in failed[1]["error"]["message"] and "half-written helper" in failed[1]["error"]["message"], failed
        edit(helper, '\nraise RuntimeError("half-written helper")', "")
        assert wait_events(project, "r1", "WorkflowReloaded", 4)[3]["files"] == [str(helper)]
        assert release(project, "r1", 4) == ("w3", "h3")
    finally:
        for n in range(1, 5):
            (project.root / f"go{n}").touch()
    code, out, err = finish(proc)
    assert code == 0, err
    assert "run r1 finished" in out
    assert len(events(project, "r1", "WorkflowReloaded")) == 4  # the unrelated files never triggered one
    assert len(events(project, "r1", "WorkflowReloadFailed")) == 2
    # the run now records the code it ran last: a later resume compares against that
    source = json.loads(project.query("SELECT source_json FROM _smithers_runs WHERE run_id = 'r1'")[0][0])
    assert source == source_fingerprint(wf.resolve())


def test_resume_hot_reloads_and_a_failed_render_keeps_the_old_code(project):
    wf, _ = write_project(project.root, gates=2)
    first = project.popen("up", "wf.py", "--run-id", "r2")
    wait_running(project, "r2", "gate1")
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()

    proc = project.popen("resume", "r2", "--hot")
    try:
        wait_until(
            lambda: project.query("SELECT count(*) FROM _smithers_attempts WHERE run_id = 'r2' AND node_id = 'gate1'")[0][0],
            what="the resumed gate1 attempt", until=lambda n: n == 2,
        )
        wait_running(project, "r2", "gate1")
        # the new render raises: the reload fails naming the line, the old code goes on
        edit(wf, "    steps = [", '    raise ValueError("render bug")\n    steps = [')
        failed = wait_events(project, "r2", "WorkflowReloadFailed", 1)
        message = failed[0]["error"]["message"]
        assert "render bug" in message and f"{wf}:{line_of(wf, 'render bug')}" in message, message
        assert release(project, "r2", 1) == ("w1", "h1")

        wait_running(project, "r2", "gate2")
        edit(wf, '    raise ValueError("render bug")\n', "")
        edit(wf, 'MARK = "w1"', 'MARK = "w2"')
        wait_events(project, "r2", "WorkflowReloaded", 1)
        assert release(project, "r2", 2) == ("w2", "h1")
    finally:
        for n in (1, 2):
            (project.root / f"go{n}").touch()
    code, out, err = finish(proc)
    assert code == 0, err
    assert "run r2 finished" in out


def test_up_detach_passes_hot_on(project):
    wf, _ = write_project(project.root, gates=1)
    started = project.cli("up", "wf.py", "--hot", "--detach", "--run-id", "r3", "--json")
    assert started.returncode == 0, started.stderr
    try:
        wait_running(project, "r3", "gate1")
        edit(wf, 'MARK = "w1"', 'MARK = "w2"')
        assert wait_events(project, "r3", "WorkflowReloaded", 1)[0]["files"] == [str(wf)]
        assert release(project, "r3", 1) == ("w2", "h1")
    finally:
        (project.root / "go1").touch()
    wait_until(
        lambda: project.query("SELECT status, owner_pid FROM _smithers_runs WHERE run_id = 'r3'")[0],
        what="the background run to end", until=lambda row: row == ("finished", None),
    )


def test_the_watcher_reports_only_its_files_and_leaves_no_thread(tmp_path):
    def threads() -> int:
        return len(os.listdir("/proc/self/task"))  # the Rust side's threads too, not only Python's

    watched = tmp_path / "wf.py"
    watched.write_text("A = 1\n")
    other = tmp_path / "other.py"
    before_python, before_os = set(threading.enumerate()), threads()
    seen: list[set[str]] = []
    watcher = SourceWatcher(seen.append)
    watcher.watch([str(watched)])
    try:
        other.write_text("B = 1\n")
        (tmp_path / "smithers.db").write_bytes(b"x")
        watched.write_text("A = 2\n")
        wait_until(lambda: seen, what="a change to wf.py")
        renamed = tmp_path / "wf.py.tmp"  # an editor that saves by renaming a new file over the old one
        renamed.write_text("A = 3\n")
        renamed.replace(watched)
        wait_until(lambda: len(seen) >= 2, what="the renamed-over save")
    finally:
        watcher.stop()
    assert all(paths == {str(watched)} for paths in seen), seen
    assert watcher.error is None
    assert set(threading.enumerate()) == before_python
    wait_until(threads, what="the watcher's OS threads to end", until=lambda n: n == before_os)


def test_a_watch_that_cannot_start_says_why(tmp_path):
    seen: list[set[str]] = []
    watcher = SourceWatcher(seen.append)
    missing = tmp_path / "gone" / "wf.py"
    watcher.watch([str(missing)])
    watcher.stop()
    assert seen == [set()]  # the loop is woken to report it (as WorkflowReloadFailed)
    assert watcher.error is not None and str(missing.parent) in watcher.error, watcher.error
