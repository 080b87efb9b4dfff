"""`smithers up` as a user sees it: the live view on a terminal, plain lines in a pipe,
--detach, the NDJSON event log, --help and the package's public names."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

from waiting import wait_until

import smithers

WORKFLOW = """
import time
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow

class Item(BaseModel):
    name: str

def slow(name):
    def run():
        time.sleep(0.3)
        return {"name": name}
    return run

@workflow
def wf(ctx):
    return Sequence(
        Task("first", output=Item, value={"name": "first"}),
        Parallel(*[Task(f"work-{i}", output=Item, run=slow(f"w{i}")) for i in range(3)]),
    )
"""


def test_plain_lines_when_not_a_terminal(project, run_id_of):
    project.write("wf.py", WORKFLOW)
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("NodeStarted" in line and "work-1[0]" in line and "attempt 1" in line for line in lines)
    assert any("RunFinished" in line for line in lines)
    assert lines[-1].endswith("finished")


def test_live_table_on_a_terminal(project):
    project.write("wf.py", WORKFLOW)
    leader, follower = pty.openpty()
    env = project.env(COLUMNS="100", LINES="30", TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "smithers", "up", "wf.py"], cwd=project.root, env=env, stdin=subprocess.DEVNULL,
        stdout=follower, stderr=follower,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    # a table with the node column headers and every node, not event lines
    for text in ("node", "status", "attempt", "elapsed", "work-2", "finished"):
        assert text in screen
    assert "NodeStarted" not in screen


def test_quiet_prints_only_the_outcome(project, run_id_of):
    project.write("wf.py", WORKFLOW)
    result = project.cli("up", "wf.py", "--quiet")
    assert result.returncode == 0
    assert len(result.stdout.strip().splitlines()) == 1
    run_id = run_id_of(result.stdout)
    assert project.query("select status from _smithers_runs where run_id = ?", (run_id,)) == [("finished",)]


def test_events_also_go_to_an_ndjson_log(project, run_id_of):
    project.write("wf.py", WORKFLOW)
    result = project.cli("up", "wf.py", "--quiet")
    run_id = run_id_of(result.stdout)
    log = project.root / ".smithers" / "runs" / run_id / "events.ndjson"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "gapless, in order, starting at RunStarted"
    assert events[0]["type"] == "RunStarted" and events[-1]["type"] == "RunFinished"
    stored = project.query("select count(*) from _smithers_events where run_id = ?", (run_id,))[0][0]
    assert stored == len(events)
    assert {"seq", "type", "run_id", "ts_ms"} <= set(events[0])


def test_detach_returns_at_once_and_the_run_finishes(project):
    project.write("wf.py", WORKFLOW)
    result = project.cli("up", "wf.py", "--detach", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    run_id = info["run_id"]
    wait_until(lambda: project.query("select status from _smithers_runs where run_id = ?", (run_id,)), 30,
               f"the detached run {run_id} to finish", until=lambda rows: rows == [("finished",)])
    assert project.query("select count(*) from item where run_id = ?", (run_id,)) == [(4,)]


def test_detach_still_validates_in_the_foreground(project):
    project.write("wf.py", WORKFLOW.replace('"first", output=Item', '"first", output=None'))
    result = project.cli("up", "wf.py", "--detach")
    assert result.returncode == 4
    assert "first" in result.stderr and "output model" in result.stderr
    assert project.query("select count(*) from _smithers_runs") == [(0,)]


def test_help_lists_every_command(project):
    result = project.cli("--help")
    assert result.returncode == 0
    for command in ("init", "up", "resume", "ps", "inspect", "logs", "events", "node", "why", "graph", "cancel"):
        assert command in result.stdout


def test_usage_errors_exit_4(project):
    assert project.cli("up").returncode == 4
    assert project.cli("no-such-command").returncode == 4
    assert project.cli("up", "wf.py", "--max-concurrency", "many").returncode == 4


def test_public_names_are_frozen():
    assert smithers.__all__ == [
        "AgentEvent", "AgentRequest", "AgentResult", "Approval", "ApprovalDecision", "ApprovalRequest", "Branch",
        "Cache", "ContinueAsNew", "Ctx", "ErrorCode", "HumanTask", "Loop", "Parallel", "RenderError", "Retry", "RunError", "Sequence",
        "Signal", "SmithersError", "Subflow", "Task", "TaskContext", "Timer", "TimerFired", "UserError", "WaitForEvent",
        "Workflow", "Worktree", "workflow",
    ]
    for name in smithers.__all__:
        assert getattr(smithers, name) is not None
