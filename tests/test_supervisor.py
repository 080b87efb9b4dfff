"""`smithers supervise`: real `smithers` processes, real SIGKILL, a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import waiting

HEADER = """
import asyncio, time
from pathlib import Path
from pydantic import BaseModel
from smithers import workflow, Task, Sequence, Timer, Approval

HERE = Path(__file__).parent
LOG = HERE / "starts.log"
RELEASE = HERE / "release"

def started(name, attempt):
    with LOG.open("a") as f:
        f.write(f"{name} {attempt}\\n")

class Out(BaseModel):
    name: str
    attempt: int = 1

def work(name, slow=False):
    async def fn(tc):
        started(name, tc.attempt)
        if slow:  # runs until the test creates the file `release` (at most 20 s)
            deadline = time.monotonic() + 20
            while not RELEASE.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return {"name": name, "attempt": tc.attempt}
    return fn
"""

SLOW = HEADER + """
@workflow
def slow(ctx):
    return Sequence(
        Task("a", output=Out, run=work("a")),
        Task("b", output=Out, run=work("b", slow=True)),
        Task("c", output=Out, run=work("c")),
    )
"""

TIMER = HEADER + """
class Inp(BaseModel):
    secs: float = 1.0

@workflow(input=Inp)
def nap(ctx):
    return Sequence(
        Task("a", output=Out, run=work("a")),
        Timer("nap", duration=ctx.input.secs),
        Task("b", output=Out, run=work("b")),
    )
"""

APPROVAL = HEADER + """
@workflow
def gated(ctx):
    return Sequence(
        Task("a", output=Out, run=work("a")),
        Approval("ship", request="Ship it?"),
        Task("b", output=Out, run=work("b")),
    )
"""


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    return waiting.wait_until(predicate, timeout, what, ignoring=(sqlite3.Error,))  # the database may be being created


def run_row(project, run_id: str) -> dict:
    rows = project.query("SELECT status, owner_id, owner_pid, heartbeat_at_ms FROM _smithers_runs WHERE run_id = ?", (run_id,))
    return dict(zip(("status", "owner_id", "owner_pid", "heartbeat_at_ms"), rows[0], strict=True))


def node_status(project, run_id: str, node_id: str) -> str | None:
    rows = project.query("SELECT status FROM _smithers_nodes WHERE run_id = ? AND node_id = ?", (run_id, node_id))
    return rows[0][0] if rows else None


def events(project, run_id: str, type_: str) -> list[dict]:
    rows = project.query("SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = ? ORDER BY seq", (run_id, type_))
    return [json.loads(r[0] or "{}") for r in rows]


def starts(project) -> dict[str, int]:
    log = project.root / "starts.log"
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        counts[line.split()[0]] = counts.get(line.split()[0], 0) + 1
    return counts


def crashed_run(project, run_id: str) -> None:
    """`up` a slow workflow, SIGKILL it while `b` runs: a `running` run whose owner is dead."""
    project.write("wf.py", SLOW)
    proc = project.popen("up", "wf.py", "--run-id", run_id)
    try:
        wait_until(lambda: node_status(project, run_id, "b") == "running" and starts(project).get("b"), what="task b running")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    assert run_row(project, run_id)["status"] == "running"  # nobody wrote an ending
    (project.root / "release").touch()  # the resumed attempt of b finishes at once


def assert_ran_once_after_crash(project, run_id: str) -> None:
    """a finished before the crash, b was in flight (abandoned, then one more attempt), c ran once."""
    attempts = project.query(
        "SELECT node_id, status FROM _smithers_attempts WHERE run_id = ? ORDER BY node_id, attempt", (run_id,)
    )
    assert attempts == [("a", "finished"), ("b", "abandoned"), ("b", "finished"), ("c", "finished")]
    assert starts(project) == {"a": 1, "b": 2, "c": 1}
    rows = project.query("SELECT node_id, attempt FROM out WHERE run_id = ? ORDER BY node_id", (run_id,))
    assert rows == [("a", 1), ("b", 2), ("c", 1)]


@pytest.mark.slow
def test_a_sigkilled_run_is_resumed_and_finishes(project):
    crashed_run(project, "crashed")
    result = project.cli("supervise", "--once", "--interval", "0.2s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resumed crashed: owner process gone" in result.stdout
    assert run_row(project, "crashed")["status"] == "finished"
    assert run_row(project, "crashed")["owner_id"] is None  # released by the resumed process
    resumed = events(project, "crashed", "RunAutoResumed")
    assert len(resumed) == 1 and resumed[0]["reason"] == "owner process gone" and resumed[0]["pid"] > 0
    assert resumed[0]["lease"].startswith("supervisor:")
    assert_ran_once_after_crash(project, "crashed")
    # a finished run is left alone
    again = project.cli("supervise", "--once")
    assert again.returncode == 0 and "crashed" not in again.stdout
    assert len(events(project, "crashed", "RunAutoResumed")) == 1


# `smithers supervise` with a barrier: each process, once it has judged a run crashed and is about to claim
# it, waits until the other one has judged the same, so both go for the claim with the same stale view.
RACING_SUPERVISOR = """
import os, runpy, sys, time
from pathlib import Path
from smithers import supervisor

barrier = Path(sys.argv[1])
sys.argv = ["smithers", *sys.argv[2:]]
judge = supervisor.Supervisor.assess

def assess_then_wait_for_the_other(self, run, now):
    verdict = judge(self, run, now)
    if verdict is not None and verdict[0] == "resume":
        (barrier / str(os.getpid())).touch()
        deadline = time.monotonic() + 30
        while len(list(barrier.iterdir())) < 2:
            if time.monotonic() > deadline:
                sys.exit("the other supervisor never judged the run crashed")
            time.sleep(0.01)
    return verdict

supervisor.Supervisor.assess = assess_then_wait_for_the_other
runpy.run_module("smithers", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_two_supervisors_racing_resume_the_run_once(project):
    crashed_run(project, "raced")
    racer = project.write("racing_supervisor.py", RACING_SUPERVISOR)
    barrier = project.root / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen([sys.executable, str(racer), str(barrier), "supervise", "--once", "--interval", "0.2s"],
                         cwd=project.root, env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, start_new_session=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(list(barrier.iterdir())) == 2, "both supervisors judged the run crashed before either claimed it"
    assert run_row(project, "raced")["status"] == "finished"
    assert len(events(project, "raced", "RunAutoResumed")) == 1, outs
    assert sum("resumed raced" in out for out, _ in outs) == 1, outs
    assert_ran_once_after_crash(project, "raced")


@pytest.mark.slow
def test_a_live_owner_is_never_touched(project):
    project.write("wf.py", SLOW)
    proc = project.popen("up", "wf.py", "--run-id", "alive")
    try:
        wait_until(lambda: node_status(project, "alive", "b") == "running", what="task b running")
        before = run_row(project, "alive")
        for _ in range(2):  # the skip is recorded once, not on every poll
            result = project.cli("supervise", "--once")
            assert result.returncode == 0, result.stderr
        assert "skipped alive: owner alive" in result.stdout
        after = run_row(project, "alive")
        assert (after["status"], after["owner_id"], after["owner_pid"]) == ("running", before["owner_id"], proc.pid)
        assert events(project, "alive", "RunAutoResumed") == []
        skips = events(project, "alive", "RunAutoResumeSkipped")
        assert [s["reason"] for s in skips] == ["owner alive"]
    finally:
        (project.root / "release").touch()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err  # the owner was not disturbed
    assert run_row(project, "alive")["status"] == "finished"
    assert starts(project) == {"a": 1, "b": 1, "c": 1}


@pytest.mark.slow
def test_a_timer_that_fires_after_the_process_exited(project):
    project.write("wf.py", TIMER)
    for run_id, secs in (("later", 3600), ("soon", 1)):
        up = project.cli("up", "wf.py", "--run-id", run_id, "--input", json.dumps({"secs": secs}))
        assert up.returncode == 3, up.stdout + up.stderr
        assert run_row(project, run_id)["status"] == "waiting-timer"
    fires_at = project.query("SELECT fires_at_ms FROM _smithers_timers WHERE run_id = 'soon'")[0][0]

    time.sleep(max(0.0, fires_at / 1000 - time.time()) + 0.05)
    for _ in range(2):  # the second poll records nothing new
        result = project.cli("supervise", "--once")
        assert result.returncode == 0, result.stderr
    # the due one was resumed and finished; the other one is left waiting, its skip recorded once
    assert run_row(project, "soon")["status"] == "finished"
    assert [e["reason"] for e in events(project, "soon", "RunAutoResumed")] == ["timer due"]
    assert project.query("SELECT node_id FROM out WHERE run_id = 'soon' ORDER BY node_id") == [("a",), ("b",)]
    assert "skipped later: timer not due" in result.stdout
    row = run_row(project, "later")
    assert (row["status"], row["owner_id"]) == ("waiting-timer", None)
    assert [s["reason"] for s in events(project, "later", "RunAutoResumeSkipped")] == ["timer not due"]
    assert events(project, "later", "RunAutoResumed") == []
    assert project.query("SELECT node_id FROM out WHERE run_id = 'later'") == [("a",)]


@pytest.mark.slow
def test_dry_run_changes_nothing(project):
    crashed_run(project, "dry")
    before = run_row(project, "dry")
    attempts_before = project.query("SELECT * FROM _smithers_attempts WHERE run_id = 'dry'")
    result = project.cli("supervise", "--once", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "skipped dry: dry run (would_resume=owner process gone)" in result.stdout
    assert run_row(project, "dry") == before  # same status, same (dead) owner: no lease taken
    assert project.query("SELECT * FROM _smithers_attempts WHERE run_id = 'dry'") == attempts_before
    assert events(project, "dry", "RunAutoResumed") == []
    assert events(project, "dry", "RunAutoResumeSkipped") == []  # not even an event
    # and the real thing still works afterwards
    result = project.cli("supervise", "--once")
    assert result.returncode == 0 and run_row(project, "dry")["status"] == "finished", result.stdout + result.stderr


@pytest.mark.slow
def test_an_approval_decided_while_nobody_owned_the_run(project):
    project.write("wf.py", APPROVAL)
    up = project.cli("up", "wf.py", "--run-id", "gated")
    assert up.returncode == 3, up.stdout + up.stderr
    assert run_row(project, "gated")["status"] == "waiting-approval"

    undecided = project.cli("supervise", "--once")
    assert undecided.returncode == 0 and "gated" not in undecided.stdout  # nothing arrived: nothing to do
    assert run_row(project, "gated")["status"] == "waiting-approval"

    approved = project.cli("approve", "gated", "--node", "ship")
    assert approved.returncode == 0, approved.stderr
    result = project.cli("supervise", "--once")
    assert result.returncode == 0, result.stderr
    assert "resumed gated: approval decided" in result.stdout
    assert run_row(project, "gated")["status"] == "finished"
    assert starts(project) == {"a": 1, "b": 1}
    assert events(project, "gated", "RunAutoResumed")[0]["node"] == "ship"


def test_a_handoff_lease_is_taken_over_only_by_its_token(project):
    """In-process: the lease a supervisor takes is alive while fresh, refused to others, and
    handed to exactly the owner that presents its token."""
    from smithers.errors import RunOwnedError
    from smithers.storage.lease import Owner, claim_run, owner_alive

    store = project.store()
    try:
        with store.tx("r1") as tx:
            tx.create_run(workflow="w", workflow_spec="w.py", input_json="{}", source_json="{}", cwd=".", max_concurrency=1)
        handoff = Owner.handoff()
        assert handoff.id.startswith("supervisor:")
        claim_run(store, "r1", handoff)
        run = store.get_run("r1")
        assert owner_alive(run) and not owner_alive(run, now=run["heartbeat_at_ms"] + 30_000)
        with pytest.raises(RunOwnedError, match="supervisor"):
            claim_run(store, "r1", Owner.this_process())
        with pytest.raises(RunOwnedError):
            claim_run(store, "r1", Owner.this_process(), takeover_from="supervisor:other:1:token")
        child = Owner.this_process()
        claim_run(store, "r1", child, takeover_from=handoff.id)
        assert store.get_run("r1")["owner_id"] == child.id
        with pytest.raises(RunOwnedError):  # the token is spent: the child is the owner now
            claim_run(store, "r1", Owner(id="elsewhere:1:0:x", host="elsewhere", pid=1), takeover_from=handoff.id)
    finally:
        store.close()


SIGNALLED = HEADER + """
from smithers import Signal

class Go(BaseModel):
    when: str

@workflow
def signalled(ctx):
    return Sequence(
        Task("a", output=Out, run=work("a")),
        Signal("go", schema=Go),
        Task("b", output=Out, run=work("b")),
    )
"""


@pytest.mark.slow
def test_the_polling_loop_resumes_a_signalled_run_and_stops_on_sigterm(project):
    project.write("wf.py", SIGNALLED)
    up = project.cli("up", "wf.py", "--run-id", "sig")
    assert up.returncode == 3, up.stdout + up.stderr
    assert run_row(project, "sig")["status"] == "waiting-event"
    supervisor = project.popen("supervise", "--interval", "0.2s")
    try:
        sent = project.cli("signal", "sig", "go", "--data", '{"when": "now"}')
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: run_row(project, "sig")["status"] == "finished", what="the signalled run to finish")
    finally:
        os.killpg(supervisor.pid, signal.SIGTERM)
        out, err = supervisor.communicate(timeout=10)
    assert supervisor.returncode == 0, out + err
    assert "resumed sig: signal received" in out
    assert [e["reason"] for e in events(project, "sig", "RunAutoResumed")] == ["signal received"]
    assert starts(project) == {"a": 1, "b": 1}


def test_a_child_that_dies_before_taking_over_gives_the_lease_back(project, tmp_path):
    """In-process, with a 'python' that exits at once: the handoff lease is released, the failure
    recorded, and the run is not retried at once (backoff)."""
    import socket
    import subprocess

    from smithers.supervisor import BACKING_OFF, Supervisor

    gone = subprocess.Popen(["true"])
    gone.wait()
    store = project.store()
    try:
        with sqlite3.connect(project.db, timeout=30) as conn:  # a run whose owner died long ago
            conn.execute(
                "INSERT INTO _smithers_runs (run_id, workflow, workflow_spec, status, input_json, source_json, cwd, max_concurrency, "
                "created_at_ms, updated_at_ms, owner_id, owner_host, owner_pid, heartbeat_at_ms) "
                "VALUES ('r1', 'w', 'w.py', 'running', '{}', '{}', ?, 1, 0, 0, ?, ?, ?, 0)",
                (str(tmp_path), f"{socket.gethostname()}:{gone.pid}:1:dead", socket.gethostname(), gone.pid),
            )
        lines: list[str] = []
        sup = Supervisor(store, python="false", echo=lines.append)
        [decision] = sup.poll()
        assert decision.action == "resume" and decision.reason == "owner process gone"
        assert store.get_run("r1")["owner_id"].startswith("supervisor:")
        sup.run(interval=0.1, once=True)  # waits for the child and reaps it
        assert store.get_run("r1")["owner_id"] is None  # the handoff lease was given back
        failed = [e for e in store.events("r1") if e["type"] == "RunAutoResumeFailed"]
        assert len(failed) == 1 and failed[0]["payload"]["took_over"] is False
        [decision] = sup.poll()
        assert decision.action == "skip" and decision.reason == BACKING_OFF
        assert store.get_run("r1")["owner_id"] is None
    finally:
        store.close()
