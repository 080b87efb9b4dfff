"""Crash, lease, cancel and resume: real `smithers` subprocesses, real signals, a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time

import pytest
from conftest import write_sql
from waiting import wait_until

from smithers.errors import RunOwnedError
from smithers.storage.lease import Owner

HEADER = """
import asyncio, os, time
from pathlib import Path
from pydantic import BaseModel
from smithers import workflow, Task, Sequence, Parallel, Loop, Retry

HERE = Path(__file__).parent
LOG = HERE / "starts.log"

def started(name, attempt):
    with LOG.open("a") as f:
        f.write(f"{name} {attempt}\\n")

class Out(BaseModel):
    name: str
    attempt: int = 1
"""


def statuses(project, run_id: str) -> dict[str, str]:
    return {r[0]: r[1] for r in project.query("SELECT node_id, status FROM _smithers_nodes WHERE run_id = ? AND iteration = 0", (run_id,))}


def attempt_statuses(project, run_id: str, node_id: str) -> list[str]:
    rows = project.query(
        "SELECT status FROM _smithers_attempts WHERE run_id = ? AND node_id = ? ORDER BY attempt", (run_id, node_id)
    )
    return [r[0] for r in rows]


def run_status(project, run_id: str) -> str:
    return project.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0]


def finish(proc: subprocess.Popen, timeout: float = 15) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


# p2..p5 are "slow": they run until the test creates the file `release` (at most 20 s), so a
# test can kill, signal or cancel the run while they are in flight without racing the clock.
SLOW_PARALLEL = HEADER + """
RELEASE = HERE / "release"

def work(name, secs):
    async def fn(tc):
        started(name, tc.attempt)
        if secs:
            deadline = time.monotonic() + 20
            while not RELEASE.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return {"name": name, "attempt": tc.attempt}
    return fn

def sync_work(name, secs):
    def fn(tc):
        started(name, tc.attempt)
        if secs:
            deadline = time.monotonic() + 20
            while not RELEASE.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return {"name": name, "attempt": tc.attempt}
    return fn

@workflow
def slow(ctx):
    return Sequence(
        Task("s1", output=Out, value={"name": "s1"}),
        Task("c1", output=Out, run=work("c1", 0)),
        Task("c2", output=Out, run=sync_work("c2", 0)),
        Parallel(
            Task("p0", output=Out, run=work("p0", 0)),
            Task("p1", output=Out, run=sync_work("p1", 0)),
            Task("p2", output=Out, run=work("p2", 1.0)),
            Task("p3", output=Out, run=sync_work("p3", 1.0)),
            Task("p4", output=Out, run=work("p4", 1.0)),
            Task("p5", output=Out, run=work("p5", 1.0)),
        ),
        Task("tail", output=Out, run=work("tail", 0)),
    )
"""


@pytest.mark.slow
def test_sigkill_then_resume_loses_nothing_and_repeats_nothing(project, start_counts):
    project.write("wf.py", SLOW_PARALLEL)
    run_id = "crash-run"
    proc = project.popen("up", "wf.py", "--run-id", run_id, "--max-concurrency", "4")

    def mid_flight():
        if not project.db.exists():
            return False
        try:
            state = statuses(project, run_id)
        except sqlite3.Error:  # the database may be being created
            return False
        done = {n for n, s in state.items() if s == "finished"}
        running = {n for n, s in state.items() if s == "running"}
        return {"p0", "p1"} <= done and len(running) >= 2

    try:
        wait_until(mid_flight, what="some tasks finished and others running")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()

    assert run_status(project, run_id) == "running"  # nobody got to write an ending
    at_kill = statuses(project, run_id)
    finished_before = {n for n, s in at_kill.items() if s == "finished"}
    in_flight = {n for n, s in at_kill.items() if s == "running"}
    assert {"s1", "c1", "c2", "p0", "p1"} <= finished_before
    assert in_flight and "tail" not in finished_before
    rows_before = project.query("SELECT node_id, iteration, name, attempt FROM out WHERE run_id = ? ORDER BY node_id", (run_id,))

    (project.root / "release").touch()
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run_status(project, run_id) == "finished"

    counts = start_counts(project.root / "starts.log")
    for node in finished_before - {"s1"}:  # s1 is static: it writes no start line
        assert counts[node] == 1, (node, counts)
        assert attempt_statuses(project, run_id, node) == ["finished"]
    assert attempt_statuses(project, run_id, "s1") == ["finished"]
    for node in in_flight:
        assert attempt_statuses(project, run_id, node) == ["abandoned", "finished"], node
        assert counts[node] == 2
    # one row per (node, iteration), nothing lost, finished rows untouched
    rows = project.query("SELECT node_id, iteration, name, attempt FROM out WHERE run_id = ? ORDER BY node_id", (run_id,))
    assert [r[0] for r in rows] == sorted(["s1", "c1", "c2", "p0", "p1", "p2", "p3", "p4", "p5", "tail"])
    assert set(rows_before) <= set(rows)
    for node_id, _, name, attempt in rows:
        assert name == node_id
        assert attempt == (2 if node_id in in_flight else 1)
    # the lost attempts were reported, and the resume's events continue the same gapless sequence
    abandoned = project.query("SELECT node_id FROM _smithers_events WHERE run_id = ? AND type = 'AttemptAbandoned'", (run_id,))
    assert {r[0] for r in abandoned} == in_flight
    seqs = [r[0] for r in project.query("SELECT seq FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,))]
    assert seqs == list(range(1, len(seqs) + 1))
    # resuming a finished run again runs nothing
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stderr
    assert start_counts(project.root / "starts.log") == counts


@pytest.mark.slow
def test_a_second_resume_while_the_owner_is_alive_is_refused(project):
    project.write("wf.py", SLOW_PARALLEL)
    proc = project.popen("up", "wf.py", "--run-id", "owned")
    try:
        wait_until(lambda: project.db.exists() and "running" in statuses(project, "owned").values(), what="a running task")
        result = project.cli("resume", "owned")
        assert result.returncode == 4
        assert "is being run by another process" in result.stderr and f"pid {proc.pid}" in result.stderr
        result = project.cli("up", "wf.py", "--run-id", "owned", "--resume")
        assert result.returncode == 4 and "another process" in result.stderr
    finally:
        (project.root / "release").touch()
        code, out, err = finish(proc)
    assert code == 0, out + err  # the owner was not disturbed
    assert run_status(project, "owned") == "finished"


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_cancel_the_run(project, sig, code):
    project.write("wf.py", SLOW_PARALLEL)
    run_id = f"sig-{code}"
    proc = project.popen("up", "wf.py", "--run-id", run_id)
    try:
        wait_until(lambda: project.db.exists() and {"p2", "p3"} <= {n for n, s in statuses(project, run_id).items() if s == "running"},
                   what="p2 and p3 running")
        os.kill(proc.pid, sig)
        rc, out, err = finish(proc)  # its timeout is the only clock here: it proves the run does not hang
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc == code, out + err
    assert run_status(project, run_id) == "cancelled"
    for node in ("p2", "p3"):
        assert attempt_statuses(project, run_id, node) == ["cancelled"]
        assert statuses(project, run_id)[node] == "cancelled"
    assert project.query("SELECT count(*) FROM _smithers_attempts WHERE status = 'running'") == [(0,)]
    assert project.query("SELECT owner_id FROM _smithers_runs") == [(None,)]
    assert "RunCancelled" in [r[0] for r in project.query("SELECT type FROM _smithers_events")]


@pytest.mark.slow
def test_cancel_command_stops_a_running_up_and_resume_continues_it(project, start_counts):
    project.write("wf.py", SLOW_PARALLEL)
    run_id = "to-cancel"
    proc = project.popen("up", "wf.py", "--run-id", run_id)
    try:
        wait_until(lambda: project.db.exists() and {"p2", "p3"} <= {n for n, s in statuses(project, run_id).items() if s == "running"},
                   what="p2 and p3 running")
        result = project.cli("cancel", run_id)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"run {run_id}: cancelled" in result.stdout
        rc, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc == 2, out + err
    requested, cancelled_at = (
        project.query("SELECT seq FROM _smithers_events WHERE run_id = ? AND type = ?", (run_id, kind))[0][0]
        for kind in ("RunCancelRequested", "RunCancelled")
    )
    assert requested < cancelled_at  # the request is recorded, then the owner acts on it
    assert run_status(project, run_id) == "cancelled"
    cancelled = {r[0] for r in project.query("SELECT node_id FROM _smithers_attempts WHERE run_id = ? AND status = 'cancelled'", (run_id,))}
    assert {"p2", "p3"} <= cancelled
    assert project.query("SELECT count(*) FROM _smithers_attempts WHERE status = 'running'") == [(0,)]
    finished_before = {n for n, s in statuses(project, run_id).items() if s == "finished"}
    # cancelling a cancelled run says so, and changes nothing (its exit code: test_cancel_of_a_run_that_is_over_...)
    before = everything_of(project, run_id)
    again = project.cli("cancel", run_id)
    assert f"run {run_id}: cancelled" in again.stdout, again.stdout + again.stderr
    assert everything_of(project, run_id) == before

    (project.root / "release").touch()
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run_status(project, run_id) == "finished"
    counts = start_counts(project.root / "starts.log")
    for node in finished_before - {"s1"}:
        assert counts[node] == 1, node
    for node in cancelled:
        assert attempt_statuses(project, run_id, node) == ["cancelled", "finished"]
    assert project.query("SELECT count(*) FROM out WHERE run_id = ?", (run_id,)) == [(10,)]


def everything_of(project, run_id: str) -> tuple[list[tuple], list[tuple], list[tuple], list[tuple]]:
    """The run row, its node rows, its attempt rows and its events: what a no-op must leave as it was."""
    return tuple(  # type: ignore[return-value]
        project.query(f"SELECT * FROM {table} WHERE run_id = ? ORDER BY rowid", (run_id,))
        for table in ("_smithers_runs", "_smithers_nodes", "_smithers_attempts", "_smithers_events")
    )


OVER = HEADER + """
def work():
    mode = (HERE / "mode").read_text()
    if mode == "failed":
        raise RuntimeError("asked to fail")
    if mode == "cancelled":
        (HERE / "working").touch()
        time.sleep(60)  # cancelled long before (a sync task: the loop does not wait for its thread)
    return {"name": "work"}

@workflow
def over(ctx):
    return Task("work", output=Out, run=work, retries=0)
"""


@pytest.mark.parametrize("over", [
    "finished", "failed", "cancelled",
])
def test_cancel_of_a_run_that_is_over_changes_nothing_says_the_status_and_exits_4(project, over):
    """DESIGN 10.1: `cancel` of a run that is already over changes nothing, says the status, exits 4."""
    project.write("wf.py", OVER)
    (project.root / "mode").write_text(over)
    run_id = f"over-{over}"
    if over == "cancelled":
        proc = project.popen("up", "wf.py", "--run-id", run_id)
        try:
            wait_until(lambda: (project.root / "working").exists(), what="the task to be working")
            first = project.cli("cancel", run_id)
            assert first.returncode == 0, first.stdout + first.stderr
            rc, out, err = finish(proc)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert rc == 2, out + err
    else:
        ran = project.cli("up", "wf.py", "--run-id", run_id)
        assert ran.returncode == (0 if over == "finished" else 1), ran.stdout + ran.stderr
    assert run_status(project, run_id) == over
    before = everything_of(project, run_id)
    again = project.cli("cancel", run_id)
    assert f"run {run_id}: {over}" in again.stdout, again.stdout + again.stderr
    assert everything_of(project, run_id) == before, "nothing changed: run row, nodes, attempts, events"
    assert again.returncode == 4, again.stdout + again.stderr


def test_cancel_without_a_live_owner_marks_the_run_at_once(project, inproc):
    project.write("wf.py", SLOW_PARALLEL)
    # a run whose owner died mid-attempt: simulate the dead owner's rows
    store = project.store()
    try:
        with store.tx("orphan") as tx:
            dead = Owner(id=f"{socket.gethostname()}:999999999:1:x", host=socket.gethostname(), pid=999999999)
            tx.create_run(
                workflow="slow", workflow_spec=str(project.root / "wf.py"), input_json="{}", source_json="{}", cwd=str(project.root),
                max_concurrency=4, owner=dead,
            )
            tx.insert_pending_node("c1", 0, "compute", "out", None)
            tx.start_attempt("c1", 0, 1)
            tx.set_node("c1", 0, "running", attempts=1)
    finally:
        store.close()
    result = project.cli("cancel", "orphan")
    assert result.returncode == 0, result.stdout + result.stderr
    assert run_status(project, "orphan") == "cancelled"
    assert attempt_statuses(project, "orphan", "c1") == ["cancelled"]


def test_resuming_a_failed_run_retries_with_a_fresh_budget(project, run_id_of, start_counts):
    project.write("wf.py", HEADER + """
FAILS = HERE / "fails_left"

def flaky(tc):
    started("flaky", tc.attempt)
    left = int(FAILS.read_text())
    if left > 0:
        FAILS.write_text(str(left - 1))
        raise RuntimeError(f"failing, {left} left")
    return {"name": "flaky", "attempt": tc.attempt}

def before(tc):
    started("before", tc.attempt)
    return {"name": "before"}

@workflow
def resumable(ctx):
    return Sequence(
        Task("before", output=Out, run=before),
        Task("flaky", output=Out, run=flaky, retries=1, retry=Retry(initial=0.01, jitter=0)),
        Task("after", output=Out, value={"name": "after"}),
    )
""")
    (project.root / "fails_left").write_text("2")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1
    run_id = run_id_of(result.stdout)
    assert attempt_statuses(project, run_id, "flaky") == ["failed", "failed"]
    assert run_status(project, run_id) == "failed"
    assert f"smithers resume {run_id}" in result.stdout

    # one more failure than a spent budget would allow: only a fresh budget (1 retry) gets through
    (project.root / "fails_left").write_text("1")
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert attempt_statuses(project, run_id, "flaky") == ["failed", "failed", "failed", "finished"]
    assert project.query("SELECT attempt FROM out WHERE node_id = 'flaky'") == [(4,)]
    assert start_counts(project.root / "starts.log") == {"before": 1, "flaky": 4}
    assert statuses(project, run_id) == {"before": "finished", "flaky": "finished", "after": "finished"}


def test_a_finished_task_never_runs_again_on_resume(project, run_id_of, start_counts):
    project.write("wf.py", HEADER + """
def once(name):
    def fn(tc):
        started(name, tc.attempt)
        return {"name": name}
    return fn

def gate(tc):
    started("gate", tc.attempt)
    if (HERE / "closed").exists():
        raise RuntimeError("closed")
    return {"name": "gate"}

@workflow
def w(ctx):
    return Sequence(
        Parallel(Task("a", output=Out, run=once("a")), Task("b", output=Out, run=once("b"))),
        Loop(Task("lp-body", output=Out, run=once("lp-body")), id="lp", max_iterations=2),
        Task("gate", output=Out, run=gate),
    )
""")
    (project.root / "closed").touch()
    result = project.cli("up", "wf.py")
    assert result.returncode == 1
    run_id = run_id_of(result.stdout)
    result = project.cli("resume", run_id)  # fails again
    assert result.returncode == 1
    (project.root / "closed").unlink()
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stderr
    assert start_counts(project.root / "starts.log") == {"a": 1, "b": 1, "lp-body": 2, "gate": 3}
    assert project.query("SELECT count(*) FROM out WHERE node_id = 'lp-body'") == [(2,)]


# -- refusals: exit 4, nothing written ---------------------------------------------------------


SIMPLE = HEADER + """
class Inp(BaseModel):
    who: str = "world"

@workflow(input=Inp)
def simple(ctx):
    return Task("hello", output=Out, value={"name": ctx.input.who})
"""


def test_resume_unknown_run(project):
    project.write("wf.py", SIMPLE)
    result = project.cli("resume", "no-such-run")
    assert result.returncode == 4 and "no run 'no-such-run'" in result.stderr
    assert project.query("SELECT count(*) FROM _smithers_runs") == [(0,)]


def test_up_with_an_existing_run_id(project):
    project.write("wf.py", SIMPLE)
    assert project.cli("up", "wf.py", "--run-id", "fixed").returncode == 0
    result = project.cli("up", "wf.py", "--run-id", "fixed")
    assert result.returncode == 4
    assert "run 'fixed' already exists" in result.stderr and "--resume" in result.stderr
    assert project.query("SELECT count(*) FROM _smithers_runs") == [(1,)]
    result = project.cli("up", "wf.py", "--run-id", "fixed", "--resume")
    assert result.returncode == 0, result.stderr
    result = project.cli("up", "wf.py", "--resume")
    assert result.returncode == 4 and "--run-id" in result.stderr


def test_resuming_with_different_input_is_refused(project):
    project.write("wf.py", SIMPLE)
    assert project.cli("up", "wf.py", "--run-id", "r1", "--input", '{"who": "ann"}').returncode == 0
    events = project.query("SELECT count(*) FROM _smithers_events")
    result = project.cli("up", "wf.py", "--run-id", "r1", "--resume", "--input", '{"who": "bob"}')
    assert result.returncode == 4
    assert "different input" in result.stderr and "ann" in result.stderr
    assert project.query("SELECT count(*) FROM _smithers_events") == events  # nothing written
    # the same input (even spelled differently) is fine
    result = project.cli("up", "wf.py", "--run-id", "r1", "--resume", "--input", '{ "who" : "ann" }')
    assert result.returncode == 0, result.stderr
    assert json.loads(project.query("SELECT input_json FROM _smithers_runs")[0][0]) == {"who": "ann"}


def test_resuming_after_the_source_changed(project, run_id_of):
    project.write("helper.py", "VALUE = 1\n")
    project.write("wf.py", HEADER + """
from helper import VALUE

def gate():
    if (HERE / "closed").exists():
        raise RuntimeError("closed")
    return {"name": "gate", "attempt": VALUE}

@workflow
def changing(ctx):
    return Sequence(Task("a", output=Out, value={"name": "a"}), Task("gate", output=Out, run=gate))
""")
    (project.root / "closed").touch()
    result = project.cli("up", "wf.py")
    assert result.returncode == 1
    run_id = run_id_of(result.stdout)
    (project.root / "closed").unlink()
    project.write("helper.py", "VALUE = 2\n")  # an imported file of the workflow changed
    result = project.cli("resume", run_id)
    assert result.returncode == 4
    assert "source changed" in result.stderr and "helper.py" in result.stderr and "--allow-source-change" in result.stderr
    assert "wf.py" not in result.stderr.split("changed since")[1].split("\n")[0].replace("helper.py", "")
    assert run_status(project, run_id) == "failed"
    result = project.cli("resume", run_id, "--allow-source-change")
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT attempt FROM out WHERE node_id = 'gate'") == [(2,)]


# -- leases ------------------------------------------------------------------------------------


def _own_by(project, run_id: str, *, host: str, pid: int, heartbeat_ms: int) -> None:
    write_sql(  # as if another process owned it
        project,
        "UPDATE _smithers_runs SET owner_id = ?, owner_host = ?, owner_pid = ?, heartbeat_at_ms = ?, status = 'running' WHERE run_id = ?",
        (f"{host}:{pid}:12345:abcd", host, pid, heartbeat_ms, run_id),
    )


# the lease tests run on both backends (any_project: SQLite, then PostgreSQL)


def test_lease_of_an_owner_on_another_host(any_project, any_inproc):
    project, inproc = any_project, any_inproc
    project.write("wf.py", SIMPLE)
    assert inproc.up(run_id="leased").status == "finished"
    _own_by(project, "leased", host="elsewhere.example", pid=os.getpid(), heartbeat_ms=int(time.time() * 1000))
    with pytest.raises(RunOwnedError, match="another process"):
        inproc.resume("leased")
    if project.url is None:  # the CLI on a postgresql:// URL is tested with the CLI's backend-neutral --db
        result = project.cli("resume", "leased")
        assert result.returncode == 4
    # once the lease is stale (default 30 s), it is taken over
    _own_by(project, "leased", host="elsewhere.example", pid=os.getpid(), heartbeat_ms=int(time.time() * 1000) - 31_000)
    assert inproc.resume("leased").status == "finished"
    assert project.query("SELECT owner_id FROM _smithers_runs") == [(None,)]


def test_a_dead_owner_on_this_host_is_taken_over_at_once(any_project, any_inproc):
    project, inproc = any_project, any_inproc
    project.write("wf.py", SIMPLE)
    assert inproc.up(run_id="dead").status == "finished"
    child = subprocess.Popen(["true"])
    child.wait()  # a pid that is gone
    _own_by(project, "dead", host=socket.gethostname(), pid=child.pid, heartbeat_ms=int(time.time() * 1000))
    assert inproc.resume("dead").status == "finished"


def test_a_live_process_with_a_recycled_pid_is_not_the_owner(any_project, any_inproc):
    """The owner id records the process start time: the same pid with another start time is not it."""
    project, inproc = any_project, any_inproc
    project.write("wf.py", SIMPLE)
    assert inproc.up(run_id="recycled").status == "finished"
    _own_by(project, "recycled", host=socket.gethostname(), pid=os.getpid(), heartbeat_ms=int(time.time() * 1000))
    assert inproc.resume("recycled").status == "finished"


def test_losing_the_lease_stops_the_old_owner_writing(any_project, any_inproc):
    """Fencing: once another owner took the run, the old one's writes are refused."""
    project, inproc = any_project, any_inproc
    project.write("wf.py", HEADER + """
async def slow(tc):
    deadline = time.monotonic() + 20
    while not (HERE / "release").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return {"name": "slow"}

@workflow
def fenced(ctx):
    return Task("slow", output=Out, run=slow)
""")
    import threading

    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=inproc.up(run_id="fenced")))
    thread.start()
    try:
        wait_until(lambda: (project.url or project.db.exists()) and statuses(project, "fenced").get("slow") == "running",
                   what="slow running")
        _own_by(project, "fenced", host="thief.example", pid=1, heartbeat_ms=int(time.time() * 1000))
    finally:
        (project.root / "release").touch()
        thread.join(timeout=10)
    assert outcome["result"].status == "lease-lost"
    store = project.store()
    try:
        assert store.read_output_rows("out", "fenced", "slow") == []  # no output written
    finally:
        store.close()
    assert project.query("SELECT owner_host FROM _smithers_runs") == [("thief.example",)]


@pytest.mark.slow
def test_sigkill_inside_a_loop_pass_resumes_the_pass_with_the_last_heartbeat(project, start_counts):
    project.write("wf.py", HEADER + """
class Progress(BaseModel):
    name: str
    attempt: int
    resumed_from: dict | None = None

async def crunch(tc):
    started(f"crunch@{tc.iteration}", tc.attempt)
    start = (tc.last_heartbeat or {}).get("done", 0)
    for i in range(start, 40 if tc.iteration == 1 and tc.attempt == 1 else start + 2):
        tc.heartbeat({"done": i + 1})
        await asyncio.sleep(0.05)
    return {"name": "crunch", "attempt": tc.attempt, "resumed_from": tc.last_heartbeat}

def note(tc):
    started(f"note@{tc.iteration}", tc.attempt)
    return {"name": "note", "attempt": tc.attempt}

@workflow
def looped(ctx):
    return Loop(
        Task("note", output=Out, run=note),
        Task("crunch", output=Progress, run=crunch),
        id="passes", max_iterations=3,
    )
""")
    proc = project.popen("up", "wf.py", "--run-id", "loop-crash")

    def beating():
        if not project.db.exists():
            return None
        rows = project.query(
            "SELECT heartbeat_json FROM _smithers_attempts WHERE run_id = 'loop-crash' AND node_id = 'crunch' "
            "AND iteration = 1 AND status = 'running' AND heartbeat_json IS NOT NULL"
        )
        return rows and json.loads(rows[0][0])["done"] >= 3

    try:
        wait_until(beating, what="crunch pass 1 heartbeating")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    (flushed,) = project.query(
        "SELECT heartbeat_json FROM _smithers_attempts WHERE node_id = 'crunch' AND iteration = 1 AND attempt = 1"
    )[0]
    flushed = json.loads(flushed)

    result = project.cli("resume", "loop-crash")
    assert result.returncode == 0, result.stdout + result.stderr
    assert start_counts(project.root / "starts.log") == {
        "note@0": 1, "crunch@0": 1, "note@1": 1, "crunch@1": 2, "note@2": 1, "crunch@2": 1,
    }
    assert project.query("SELECT iteration, attempt, resumed_from FROM progress ORDER BY iteration") == [
        (0, 1, None), (1, 2, json.dumps(flushed)), (2, 1, None),
    ]
    assert project.query("SELECT status FROM _smithers_attempts WHERE node_id = 'crunch' AND iteration = 1 ORDER BY attempt") == [
        ("abandoned",), ("finished",),
    ]
    assert project.query("SELECT node_id, count(*) FROM out GROUP BY node_id") == [("note", 3)]
    assert project.query("SELECT loop_id, iteration, done FROM _smithers_loops") == [("passes", 2, 1)]


@pytest.mark.slow
def test_repeated_kills_at_different_points_then_resume(project, start_counts):
    """Kill -9 the owner three times at different points of a loop of fan-outs, resume each time;
    at the end every (node, iteration) finished exactly once with exactly one row."""
    project.write("wf.py", HEADER + """
def work(name):
    async def fn(tc):
        started(f"{name}@{tc.iteration}", tc.attempt)
        await asyncio.sleep(0.08)
        return {"name": name, "attempt": tc.attempt}
    return fn

@workflow
def many(ctx):
    return Loop(
        Parallel(*[Task(f"w{i}", output=Out, run=work(f"w{i}")) for i in range(3)]),
        Task("mark", output=Out, value={"name": "mark"}),
        id="rounds", max_iterations=8,
    )
""")
    run_id = "kills"
    for threshold in (4, 10, 16):
        args = ("up", "wf.py", "--run-id", run_id) if threshold == 4 else ("resume", run_id)
        proc = project.popen(*args)

        def enough(threshold=threshold):
            if not project.db.exists():
                return False
            try:
                return project.query("SELECT count(*) FROM _smithers_nodes WHERE status = 'finished'")[0][0] >= threshold
            except sqlite3.Error:
                return False

        try:
            wait_until(enough, what=f"{threshold} finished nodes")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()
        assert run_status(project, run_id) == "running"

    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stdout + result.stderr

    nodes = project.query("SELECT node_id, iteration, status FROM _smithers_nodes WHERE run_id = ?", (run_id,))
    assert len(nodes) == 8 * 4 and {s for _, _, s in nodes} == {"finished"}
    finished = project.query(
        "SELECT node_id, iteration, count(*) FROM _smithers_attempts WHERE run_id = ? AND status = 'finished' GROUP BY node_id, iteration",
        (run_id,),
    )
    assert len(finished) == 32 and {c for _, _, c in finished} == {1}
    assert set(project.query("SELECT DISTINCT status FROM _smithers_attempts")) <= {("finished",), ("abandoned",)}
    rows = project.query("SELECT node_id, iteration FROM out WHERE run_id = ? ORDER BY node_id, iteration", (run_id,))
    assert rows == sorted((n, i) for n, i, _ in nodes)
    # a task function ran once per recorded attempt at most, and at least once per finished attempt
    counts = start_counts(project.root / "starts.log")
    attempts = {
        f"{n}@{i}": c for n, i, c in project.query(
            "SELECT node_id, iteration, count(*) FROM _smithers_attempts WHERE node_id != 'mark' GROUP BY node_id, iteration"
        )
    }
    assert set(counts) == set(attempts)
    for key, ran in counts.items():
        assert 1 <= ran <= attempts[key], key
    assert project.query("SELECT loop_id, iteration, done FROM _smithers_loops") == [("rounds", 7, 1)]
    seqs = [r[0] for r in project.query("SELECT seq FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,))]
    assert seqs == list(range(1, len(seqs) + 1))


def test_resuming_a_finished_run_does_not_rerun_tolerated_failures(project, run_id_of, start_counts):
    """Regression: a continue_on_fail task that failed in a finished run stays failed on resume
    (resume used to re-run it, and its new row then disagreed with what dependants had seen)."""
    project.write("wf.py", HEADER + """
def optional(tc):
    started("optional", tc.attempt)
    if (HERE / "broken").exists():
        raise RuntimeError("optional step broken")
    return {"name": "optional"}

@workflow
def tolerant(ctx):
    o = ctx.output("optional")
    return Sequence(
        Task("optional", output=Out, run=optional, continue_on_fail=True),
        Task("report", output=Out, value={"name": "without" if o is None else "with"}),
    )
""")
    (project.root / "broken").touch()
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    run_id = run_id_of(result.stdout)
    (project.root / "broken").unlink()
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stderr
    assert start_counts(project.root / "starts.log") == {"optional": 1}
    assert statuses(project, run_id) == {"optional": "failed", "report": "finished"}
    assert project.query("SELECT node_id, name FROM out") == [("report", "without")]
