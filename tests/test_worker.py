"""`smithers up --queue` and `smithers worker`: real worker processes sharing one SQLite file,
real SIGKILL and SIGTERM, the shared attempt queue checked with SQL counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import waiting

HEADER = """
import asyncio, os, time
from pathlib import Path
from pydantic import BaseModel
from smithers import workflow, Task, Sequence, Parallel

HERE = Path(__file__).parent
LOG = HERE / "starts.log"
SPANS = HERE / "spans.log"
RELEASE = HERE / "release"

class Out(BaseModel):
    name: str
    attempt: int
    pid: int

def work(name, slow=False, seconds=0.0, fail_first=False):
    async def fn(tc):
        with LOG.open("a") as f:
            f.write(f"{name} {tc.attempt} {os.getpid()}\\n")
        start = time.time()
        if slow:  # runs until the test creates the file `release` (at most 30 s)
            deadline = time.monotonic() + 30
            while not RELEASE.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        await asyncio.sleep(seconds)
        with SPANS.open("a") as f:
            f.write(f"{name} {start} {time.time()}\\n")
        if fail_first and tc.attempt == 1:
            raise ValueError(f"{name} fails its first attempt")
        return {"name": name, "attempt": tc.attempt, "pid": os.getpid()}
    return fn
"""

FAN = HEADER + """
@workflow(max_concurrency=32)
def fan(ctx):
    return Sequence(
        Parallel(*[Task(f"t{i}", output=Out, run=work(f"t{i}", seconds=0.3)) for i in range(12)], max_concurrency=3),
        Task("last", output=Out, run=work("last")),
    )
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

FLAKY = HEADER + """
@workflow
def flaky(ctx):
    return Task("f", output=Out, run=work("f", fail_first=True), retries=1)
"""


_FIRST_LINES: dict[int, str] = {}


def _worker(project, *args: str) -> subprocess.Popen[str]:
    """A `smithers worker` process, returned once it says it started (its loop runs)."""
    proc = project.popen("worker", "--lease-timeout", "2s", "--json", *args)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert '"started"' in line, line + (proc.stderr.read() if proc.stderr else "")
    _FIRST_LINES[proc.pid] = line
    return proc


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, _FIRST_LINES.pop(proc.pid, "") + out


def _enqueue(project, flow: str) -> str:
    result = project.cli("up", flow, "--queue", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "queued"
    return str(doc["run_id"])


def _status(project, run_id: str) -> str:
    return str(project.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0])


def _wait_status(project, run_id: str, status: str, timeout: float = 60) -> None:
    waiting.wait_until(lambda: _status(project, run_id) == status, timeout, f"run {run_id} to be {status}")


def _starts(project) -> list[tuple[str, int, int]]:
    log = project.root / "starts.log"
    if not log.exists():
        return []
    return [(p[0], int(p[1]), int(p[2])) for p in (line.split() for line in log.read_text().splitlines() if line.strip())]


def _output_rows(project, run_id: str) -> dict[str, int]:
    rows = project.query('SELECT node_id, COUNT(*) FROM "out" WHERE run_id = ? GROUP BY node_id', (run_id,))
    return {r[0]: r[1] for r in rows}


def test_up_queue_creates_a_queued_run_and_returns(project) -> None:
    project.write("flow.py", SLOW)
    result = project.cli("up", "flow.py", "--queue", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)  # exactly one JSON document
    run_id = doc["run_id"]
    assert doc == {"run_id": run_id, "status": "queued"}
    row = project.query("SELECT status, owner_id, triggered_by, workflow_spec FROM _smithers_runs WHERE run_id = ?", (run_id,))[0]
    assert row[:3] == ("queued", None, "queue")
    assert Path(row[3]) == project.root / "flow.py"  # a worker finds the file from the run
    types = [r[0] for r in project.query("SELECT type FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,))]
    assert types == ["RunQueued"]
    assert not _starts(project)  # nothing ran


def test_up_queue_rejects_bad_input_and_conflicting_flags_with_exit_4(project) -> None:
    project.write("flow.py", SLOW)
    bad = project.cli("up", "flow.py", "--queue", "--input", "{nope")
    assert bad.returncode == 4
    assert "--input" in bad.stderr
    both = project.cli("up", "flow.py", "--queue", "--detach")
    assert both.returncode == 4
    assert "--queue" in both.stderr
    assert project.query("SELECT COUNT(*) FROM _smithers_runs")[0][0] == 0


def test_worker_rejects_bad_flags_with_exit_4(project) -> None:
    assert project.cli("worker", "--lease-timeout", "soon").returncode == 4
    assert project.cli("worker", "--concurrency", "-1").returncode == 4
    both = project.cli("worker", "--concurrency", "0", "--no-runs")
    assert both.returncode == 4
    assert "nothing to do" in both.stderr


@pytest.mark.slow
def test_two_workers_spread_one_runs_tasks_and_hold_the_parallel_limit(project) -> None:
    project.write("flow.py", FAN)
    project.query("SELECT 1")  # create the database before two workers race to
    w1 = _worker(project, "--concurrency", "2", "--name", "w1")
    w2 = _worker(project, "--concurrency", "2", "--name", "w2")
    run_id = _enqueue(project, "flow.py")
    try:
        _wait_status(project, run_id, "finished")
    finally:
        codes = [_stop(w1), _stop(w2)]
    assert [code for code, _ in codes] == [0, 0]
    # every task once, every output row once, every attempt finished
    starts = _starts(project)
    assert sorted(name for name, _, _ in starts) == sorted([f"t{i}" for i in range(12)] + ["last"])
    assert set(_output_rows(project, run_id).values()) == {1}
    assert len(_output_rows(project, run_id)) == 13
    assert project.query("SELECT DISTINCT status FROM _smithers_attempts WHERE run_id = ?", (run_id,)) == [("finished",)]
    # the attempts went through the queue and both workers executed some
    queue = project.query("SELECT worker, status FROM _smithers_task_queue WHERE run_id = ?", (run_id,))
    assert len(queue) == 13
    assert {status for _, status in queue} == {"collected"}
    assert {worker.split("/")[0] for worker, _ in queue} == {"w1", "w2"}
    assert len({pid for _, _, pid in starts}) == 2
    # Parallel(max_concurrency=3) held across the two workers (4 slots between them)
    spans = [line.split() for line in (project.root / "spans.log").read_text().splitlines()]
    edges = sorted([(float(s), 1) for _, s, _ in spans] + [(float(e), -1) for _, _, e in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak <= 3
    # the worker says what it did as JSON lines
    records = [json.loads(line) for line in codes[0][1].splitlines() + codes[1][1].splitlines()]
    assert {"started", "stopping", "stopped"} <= {r["event"] for r in records}
    assert sum(r["event"] == "adopted" for r in records) == 1


@pytest.mark.slow
def test_a_remote_failure_is_recorded_with_its_type_and_retried(project) -> None:
    project.write("flow.py", FLAKY)
    run_id = _enqueue(project, "flow.py")
    worker = _worker(project, "--concurrency", "1")
    try:
        _wait_status(project, run_id, "finished")
    finally:
        _stop(worker)
    attempts = project.query(
        "SELECT attempt, status, error_json, meta_json FROM _smithers_attempts WHERE run_id = ? ORDER BY attempt", (run_id,)
    )
    assert [(a, s) for a, s, _, _ in attempts] == [(1, "failed"), (2, "finished")]
    error = json.loads(attempts[0][2])
    assert error["type"] == "ValueError"
    assert "fails its first attempt" in error["message"]
    assert "worker_traceback" in error["details"]
    assert json.loads(attempts[1][3])["worker"].split("/")[0] == json.loads(attempts[0][3])["worker"].split("/")[0]
    assert project.query("SELECT failures FROM _smithers_nodes WHERE run_id = ?", (run_id,)) == [(1,)]


@pytest.mark.slow
def test_sigkill_of_the_executing_worker_abandons_the_attempt_and_it_runs_elsewhere(project) -> None:
    project.write("flow.py", SLOW)
    run_id = _enqueue(project, "flow.py")
    owner = _worker(project, "--concurrency", "0", "--name", "owner")
    doomed = _worker(project, "--no-runs", "--concurrency", "2", "--name", "doomed")
    try:
        waiting.wait_until(lambda: any(n == "b" for n, _, _ in _starts(project)), 60, "b to start")
        assert [pid for n, _, pid in _starts(project) if n == "b"] == [doomed.pid]
        assert _stop(doomed, signal.SIGKILL)[0] == -signal.SIGKILL
        (project.root / "release").touch()
        rescuer = _worker(project, "--no-runs", "--concurrency", "2", "--name", "rescuer")
        try:
            _wait_status(project, run_id, "finished")
        finally:
            assert _stop(rescuer)[0] == 0
    finally:
        code, _ = _stop(owner)
    assert code == 0
    starts = _starts(project)
    assert [(n, a) for n, a, _ in starts] == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]  # nothing finished ran again
    assert [pid for n, a, pid in starts if n == "b"][1] == rescuer.pid
    attempts = project.query(
        "SELECT node_id, attempt, status FROM _smithers_attempts WHERE run_id = ? ORDER BY node_id, attempt", (run_id,)
    )
    assert attempts == [("a", 1, "finished"), ("b", 1, "abandoned"), ("b", 2, "finished"), ("c", 1, "finished")]
    # an abandoned attempt is not a failure
    assert project.query("SELECT failures FROM _smithers_nodes WHERE run_id = ? AND node_id = 'b'", (run_id,)) == [(0,)]
    assert _output_rows(project, run_id) == {"a": 1, "b": 1, "c": 1}
    abandoned = project.query(
        "SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = 'AttemptAbandoned'", (run_id,)
    )
    assert len(abandoned) == 1
    assert json.loads(abandoned[0][0])["worker"].startswith("doomed/")
    queue = project.query(
        "SELECT attempt, status, worker FROM _smithers_task_queue WHERE run_id = ? AND node_id = 'b' ORDER BY attempt", (run_id,)
    )
    assert [(a, s) for a, s, _ in queue] == [(1, "abandoned"), (2, "collected")]


@pytest.mark.slow
def test_sigkill_of_the_owning_worker_lets_another_adopt_the_run(project) -> None:
    project.write("flow.py", SLOW)
    run_id = _enqueue(project, "flow.py")
    first = _worker(project, "--concurrency", "0", "--name", "first-owner")
    executor = _worker(project, "--no-runs", "--concurrency", "2", "--name", "executor")
    try:
        waiting.wait_until(lambda: any(n == "b" for n, _, _ in _starts(project)), 60, "b to start")
        assert project.query("SELECT owner_pid FROM _smithers_runs WHERE run_id = ?", (run_id,)) == [(first.pid,)]
        assert _stop(first, signal.SIGKILL)[0] == -signal.SIGKILL
        second = _worker(project, "--concurrency", "0", "--name", "second-owner")
        try:
            waiting.wait_until(
                lambda: project.query("SELECT owner_pid FROM _smithers_runs WHERE run_id = ?", (run_id,)) == [(second.pid,)],
                30, "the second worker to adopt the run",
            )
            waiting.wait_until(lambda: [n for n, _, _ in _starts(project)].count("b") == 2, 30, "b again")
            (project.root / "release").touch()
            _wait_status(project, run_id, "finished")
        finally:
            assert _stop(second)[0] == 0
    finally:
        code, out = _stop(executor)
    assert code == 0
    assert [(n, a) for n, a, _ in _starts(project)] == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    attempts = project.query(
        "SELECT node_id, attempt, status FROM _smithers_attempts WHERE run_id = ? ORDER BY node_id, attempt", (run_id,)
    )
    assert attempts == [("a", 1, "finished"), ("b", 1, "abandoned"), ("b", 2, "finished"), ("c", 1, "finished")]
    assert _output_rows(project, run_id) == {"a": 1, "b": 1, "c": 1}
    started = project.query(
        "SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = 'RunStarted' ORDER BY seq", (run_id,)
    )
    assert [json.loads(p)["resumed"] for (p,) in started] == [False, True]
    # the executor's first claim was taken back when the run changed owner: it said so, wrote nothing
    records = [json.loads(line) for line in out.splitlines()]
    assert any(r["event"] in ("taken-back", "dropped") and r.get("node_id") == "b" for r in records)


@pytest.mark.slow
def test_sigterm_hands_in_flight_attempts_back_and_releases_the_run(project) -> None:
    project.write("flow.py", SLOW)
    run_id = _enqueue(project, "flow.py")
    leaving = _worker(project, "--concurrency", "2", "--grace", "0.5s", "--name", "leaving")
    waiting.wait_until(lambda: any(n == "b" for n, _, _ in _starts(project)), 60, "b to start")
    code, out = _stop(leaving, signal.SIGTERM)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["attempts"] for r in records if r["event"] == "handed-back"] == [1]
    row = project.query("SELECT status, owner_id FROM _smithers_runs WHERE run_id = ?", (run_id,))[0]
    assert row == ("running", None)  # the lease is released: any worker adopts it
    assert project.query("SELECT status, worker FROM _smithers_task_queue WHERE run_id = ? AND node_id = 'b'", (run_id,)) == [
        ("ready", None)
    ]
    (project.root / "release").touch()
    taker = _worker(project, "--concurrency", "2", "--name", "taker")
    try:
        _wait_status(project, run_id, "finished")
    finally:
        assert _stop(taker)[0] == 0
    assert _output_rows(project, run_id) == {"a": 1, "b": 1, "c": 1}
    assert [n for n, _, _ in _starts(project)].count("a") == 1  # finished work is kept


@pytest.mark.slow
def test_sigterm_lets_an_attempt_finish_within_the_grace_period(project) -> None:
    project.write("flow.py", SLOW)
    run_id = _enqueue(project, "flow.py")
    executor = _worker(project, "--no-runs", "--concurrency", "1", "--grace", "20s", "--name", "graceful")
    owner = _worker(project, "--concurrency", "0", "--name", "owner")
    try:
        waiting.wait_until(lambda: any(n == "b" for n, _, _ in _starts(project)), 60, "b to start")
        os.kill(executor.pid, signal.SIGTERM)
        time.sleep(0.3)  # the worker is in its grace period now: the attempt may still finish
        assert executor.poll() is None
        (project.root / "release").touch()
        code, out = _stop(executor)
        assert code == 0
        assert not [r for r in map(json.loads, out.splitlines()) if r["event"] == "handed-back"]
        waiting.wait_until(
            lambda: project.query("SELECT status FROM _smithers_attempts WHERE run_id = ? AND node_id = 'b'", (run_id,)) == [("finished",)],
            30, "b's result to be committed by the owner",
        )
    finally:
        _stop(owner)
    assert [(n, a) for n, a, _ in _starts(project) if n == "b"] == [("b", 1)]


TIMEOUT = HEADER + """
@workflow
def stuck(ctx):
    return Task("s", output=Out, run=work("s", slow=True), timeout=1, retries=0)
"""


@pytest.mark.slow
def test_a_remote_attempt_that_times_out_is_taken_back_from_its_worker(project) -> None:
    project.write("flow.py", TIMEOUT)
    run_id = _enqueue(project, "flow.py")
    owner = _worker(project, "--concurrency", "0", "--name", "owner")
    executor = _worker(project, "--no-runs", "--concurrency", "1", "--name", "executor")
    try:
        _wait_status(project, run_id, "failed")
        waiting.wait_until(
            lambda: project.query("SELECT status FROM _smithers_task_queue WHERE run_id = ?", (run_id,)) == [("cancelled",)],
            30, "the queue row to be cancelled",
        )
    finally:
        _stop(owner)
        code, out = _stop(executor)
    assert code == 0
    attempt = project.query("SELECT status, error_json FROM _smithers_attempts WHERE run_id = ?", (run_id,))
    assert attempt[0][0] == "failed"
    assert json.loads(attempt[0][1])["code"] == "TASK_TIMEOUT"
    assert any(r["event"] == "taken-back" for r in map(json.loads, out.splitlines()))
    assert project.query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'out'") == [(0,)]  # no output was ever written


@pytest.mark.slow
def test_cancel_of_a_run_a_worker_drives(project) -> None:
    project.write("flow.py", SLOW)
    run_id = _enqueue(project, "flow.py")
    worker = _worker(project, "--concurrency", "2")
    try:
        waiting.wait_until(lambda: any(n == "b" for n, _, _ in _starts(project)), 60, "b to start")
        cancelled = project.cli("cancel", run_id, "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout)["status"] == "cancelled"
        waiting.wait_until(
            lambda: project.query("SELECT status FROM _smithers_task_queue WHERE run_id = ? AND node_id = 'b'", (run_id,)),
            30, "b's queue row to be closed", until=lambda rows: rows == [("cancelled",)],
        )
    finally:
        assert _stop(worker)[0] == 0
    assert project.query("SELECT node_id, status FROM _smithers_nodes WHERE run_id = ? ORDER BY node_id", (run_id,)) == [
        ("a", "finished"), ("b", "cancelled"), ("c", "pending"),
    ]
    assert [n for n, _, _ in _starts(project)] == ["a", "b"]


AGENT = """
import os
from pydantic import BaseModel
from smithers import workflow, Task
from smithers.testing import ScriptedAgent

class Verdict(BaseModel):
    verdict: str
    pid: int

def reply(request):
    request.emit("text", text="thinking it over")
    return '{"verdict": "ok", "pid": %d}' % os.getpid()

agent = ScriptedAgent(["no JSON here", reply], name="scripted")

@workflow
def review(ctx):
    return Task("review", output=Verdict, agent=agent, prompt="Review it.")
"""


@pytest.mark.slow
def test_an_agent_task_runs_on_the_worker_that_claims_it(project) -> None:
    project.write("flow.py", AGENT)
    run_id = _enqueue(project, "flow.py")
    owner = _worker(project, "--concurrency", "0", "--name", "owner")
    executor = _worker(project, "--no-runs", "--concurrency", "1", "--name", "agent-box")
    try:
        _wait_status(project, run_id, "finished")
    finally:
        _stop(owner)
        _stop(executor)
    # the reply came from the executor's process, its follow-up turn included (the first reply had no JSON)
    assert project.query("SELECT verdict, pid FROM verdict WHERE run_id = ?", (run_id,)) == [("ok", executor.pid)]
    meta = json.loads(project.query("SELECT meta_json FROM _smithers_attempts WHERE run_id = ?", (run_id,))[0][0])
    assert meta["worker"].startswith("agent-box/")
    assert meta["mode"] == "agent"
    types = [r[0] for r in project.query("SELECT type FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,))]
    assert "AgentEvent" in types or "AgentTurn" in types  # the worker wrote the agent's events to the run
    assert types.index("NodeFinished") > max(i for i, t in enumerate(types) if t.startswith("Agent"))


@pytest.mark.slow
def test_killing_the_owner_mid_fan_out_reruns_nothing_that_finished(project) -> None:
    project.write("flow.py", FAN)
    project.query("SELECT 1")
    first = _worker(project, "--concurrency", "0", "--name", "first-owner")
    executors = [_worker(project, "--no-runs", "--concurrency", "2", "--name", f"x{n}") for n in range(2)]
    run_id = _enqueue(project, "flow.py")
    second = None
    try:
        waiting.wait_until(
            lambda: project.query("SELECT COUNT(*) FROM _smithers_nodes WHERE run_id = ? AND status = 'finished'", (run_id,))[0][0] >= 4,
            60, "some tasks to finish",
        )
        assert _stop(first, signal.SIGKILL)[0] == -signal.SIGKILL
        finished_before = {r[0] for r in project.query(
            "SELECT node_id FROM _smithers_nodes WHERE run_id = ? AND status = 'finished'", (run_id,)
        )}
        second = _worker(project, "--concurrency", "0", "--name", "second-owner")
        _wait_status(project, run_id, "finished")
    finally:
        for proc in [*executors, *([second] if second else [])]:
            assert _stop(proc)[0] == 0
    starts = [n for n, _, _ in _starts(project)]
    assert all(starts.count(node) == 1 for node in finished_before), (finished_before, starts)
    assert set(starts) == {f"t{i}" for i in range(12)} | {"last"}
    rows = project.query('SELECT node_id, COUNT(*) FROM "out" WHERE run_id = ? GROUP BY node_id', (run_id,))
    assert len(rows) == 13
    assert {count for _, count in rows} == {1}  # every output row exactly once
    finished_attempts = project.query(
        "SELECT node_id, COUNT(*) FROM _smithers_attempts WHERE run_id = ? AND status = 'finished' GROUP BY node_id", (run_id,)
    )
    assert {count for _, count in finished_attempts} == {1}
    assert len(finished_attempts) == 13


QUEUED_TIMEOUT = HEADER + """
@workflow(max_concurrency=4)
def busy(ctx):
    return Parallel(
        Task("slow", output=Out, run=work("slow", seconds=2.5)),
        Task("quick", output=Out, run=work("quick", seconds=0.1), timeout=1, heartbeat_timeout=1, retries=0),
    )
"""


@pytest.mark.slow
def test_a_task_timeout_counts_from_its_claim_not_from_its_wait_for_a_free_slot(project) -> None:
    project.write("flow.py", QUEUED_TIMEOUT)
    project.query("SELECT 1")
    owner = _worker(project, "--concurrency", "0", "--name", "owner")
    executor = _worker(project, "--no-runs", "--concurrency", "1", "--name", "one-slot")
    run_id = _enqueue(project, "flow.py")
    try:
        waiting.wait_until(lambda: _status(project, run_id) in ("finished", "failed"), 60, "the run to end")
    finally:
        _stop(owner)
        _stop(executor)
    assert [n for n, _, _ in _starts(project)] == ["slow", "quick"]  # quick waited ~2.5 s in the queue for the one slot
    assert _status(project, run_id) == "finished"
    assert project.query("SELECT node_id, status FROM _smithers_attempts WHERE run_id = ? ORDER BY node_id", (run_id,)) == [
        ("quick", "finished"), ("slow", "finished"),
    ]
