"""Signals and timers through the real CLI, and `up --wait`: a signal sent early is kept, a
correlation id picks the wait that takes it, a duplicate counts once, timeouts follow
on_timeout, a timer needs no live process, and a waiting owner continues at once."""

from __future__ import annotations

import json
import time

from waiting import wait_until

SIGNALS = """
from pydantic import BaseModel
from smithers import Approval, Sequence, Signal, Task, workflow

class Ping(BaseModel):
    n: int

@workflow
def signals(ctx):
    hold = ctx.output("hold")
    late = ctx.output("late")
    return Sequence(
        Approval("hold", request="Start listening?"),
        hold and Signal("early", schema=Ping),
        hold and Signal("late", schema=Ping, correlation_id="c1"),
        late and Task("end", output=Ping, value={"n": late.n * 10}),
    )
"""


def _run_status(project, run_id: str) -> str:
    return project.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0]


def _statuses(project, run_id: str) -> dict[str, str]:
    return dict(project.query("SELECT node_id, status FROM _smithers_nodes WHERE run_id = ?", (run_id,)))


def _wait_for_status(project, run_id_or_none, status: str, timeout: float = 30) -> str:
    """The id of a run (``run_id_or_none``, or any run) once its status is ``status``."""

    def matching() -> str | None:
        rows = project.query("SELECT run_id, status FROM _smithers_runs") if project.db.exists() else []
        return next((run_id for run_id, current in rows if current == status and run_id_or_none in (None, run_id)), None)

    return wait_until(matching, timeout, f"run {run_id_or_none or '(any)'} to reach {status}")


def _event_ts(project, run_id: str, event: str, **match) -> int:
    for ts, payload in project.query(
        "SELECT ts_ms, payload_json FROM _smithers_events WHERE run_id = ? AND type = ? ORDER BY seq", (run_id, event)
    ):
        data = json.loads(payload or "{}")
        if all(data.get(k) == v for k, v in match.items()):
            return ts
    raise AssertionError(f"no {event} {match} in run {run_id}")


def test_signal_before_and_after_the_wait_with_correlation_and_duplicates(project, run_id_of):
    project.write("wf.py", SIGNALS)
    up = project.cli("up", "wf.py", "-q")
    assert up.returncode == 3, up.stdout + up.stderr
    run_id = run_id_of(up.stdout)
    # before the run reaches (or even mounts) the waits: kept until consumed
    early = project.cli("signal", run_id, "early", "--data", '{"n": 1}', "--json")
    assert early.returncode == 0, early.stderr
    assert json.loads(early.stdout) == {"run_id": run_id, "signal": "early", "seq": 1, "duplicate": False}
    assert project.cli("signal", run_id, "late", "--data", '{"n": 2}', "--correlation", "c2").returncode == 0
    assert project.cli("signal", run_id, "late", "--data", '{"n": 3}').returncode == 0  # no correlation: not for "late"
    assert project.cli("approve", run_id).returncode == 0

    waiting = project.cli("resume", run_id, "-q")
    assert waiting.returncode == 3, waiting.stdout + waiting.stderr
    assert f"run {run_id} waiting-event" in waiting.stdout
    assert f"smithers signal {run_id} late --data '{{...}}' --correlation c1" in waiting.stdout
    assert _statuses(project, run_id) == {"hold": "finished", "early": "finished", "late": "waiting-event"}
    assert project.query("SELECT n FROM ping WHERE run_id = ? AND node_id = 'early'", (run_id,)) == [(1,)]
    why = project.json("why", run_id)
    assert "signal 'late' with correlation 'c1' on late[0]" in why["reason"]
    assert why["commands"][0] == f"smithers signal {run_id} late --data '{{...}}' --correlation c1"

    # a payload that fails the wait's schema is refused and not recorded
    bad = project.cli("signal", run_id, "late", "--data", '{"n": "many"}', "--correlation", "c1")
    assert bad.returncode == 4
    assert "n" in bad.stderr and "does not match its schema" in bad.stderr
    assert project.cli("signal", run_id, "late", "--data", "{oops", "--correlation", "c1").returncode == 4
    assert project.query("SELECT count(*) FROM _smithers_signals WHERE run_id = ?", (run_id,)) == [(3,)]

    assert project.cli("signal", run_id, "late", "--data", '{"n": 4}', "--correlation", "c1", "--by", "ci").returncode == 0
    again = project.cli("signal", run_id, "late", "--data", '{"n": 4}', "--correlation", "c1")
    assert again.returncode == 0 and "already delivered" in again.stdout
    assert project.query("SELECT count(*) FROM _smithers_signals WHERE run_id = ? AND correlation_id = 'c1'", (run_id,)) == [(1,)]
    assert [i for i in project.json("inbox") if i["run_id"] == run_id] == []  # delivered: nothing left to answer

    done = project.cli("resume", run_id, "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.query("SELECT node_id, n FROM ping WHERE run_id = ? ORDER BY node_id", (run_id,)) == [
        ("early", 1), ("end", 40), ("late", 4),
    ]
    consumed = project.query(
        "SELECT seq, name, correlation_id, consumed_node_id, sent_by FROM _smithers_signals WHERE run_id = ? ORDER BY seq", (run_id,)
    )
    assert consumed == [
        (1, "early", None, "early", None), (2, "late", "c2", None, None), (3, "late", None, None, None), (4, "late", "c1", "late", "ci"),
    ]


TIMEOUTS = """
from pydantic import BaseModel
from smithers import Sequence, Signal, Task, workflow

class Ping(BaseModel):
    n: int

class In(BaseModel):
    timeout: float = 0.3
    fail: bool = False

@workflow(input=In)
def timeouts(ctx):
    t = ctx.input.timeout
    if ctx.input.fail:
        return Sequence(Signal("must", schema=Ping, timeout=t), Task("never", output=Ping, value={"n": 0}))
    return Sequence(
        Signal("maybe", schema=Ping, timeout=t, on_timeout="skip"),
        Signal("optional", schema=Ping, timeout=t, on_timeout="continue"),
        Task("after", output=Ping, value={"n": 1}),
    )
"""


def test_signal_timeouts_skip_and_continue_with_up_wait(project, run_id_of):
    project.write("wf.py", TIMEOUTS)
    started = time.monotonic()
    up = project.cli("up", "wf.py", "--wait", "-q")
    assert up.returncode == 0, up.stdout + up.stderr
    assert time.monotonic() - started >= 0.6
    run_id = run_id_of(up.stdout)
    assert _statuses(project, run_id) == {"maybe": "skipped", "optional": "failed", "after": "finished"}
    (error,) = project.query("SELECT error_json FROM _smithers_nodes WHERE run_id = ? AND node_id = 'optional'", (run_id,))
    assert "did not arrive within 0.3s" in error[0]


def test_signal_timeout_fail_without_a_live_process(project, run_id_of):
    project.write("wf.py", TIMEOUTS)
    up = project.cli("up", "wf.py", "--input", '{"timeout": 1, "fail": true}', "-q")
    assert up.returncode == 3, up.stdout + up.stderr
    run_id = run_id_of(up.stdout)
    assert _run_status(project, run_id) == "waiting-event"
    ((since,),) = project.query("SELECT waiting_since_ms FROM _smithers_nodes WHERE run_id = ? AND node_id = 'must'", (run_id,))
    time.sleep(max(since / 1000 + 1.05 - time.time(), 0))
    failed = project.cli("resume", run_id, "-q")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "signal 'must' did not arrive within 1s" in failed.stdout
    assert _statuses(project, run_id) == {"must": "failed", "never": "pending"}


TIMER = """
from datetime import datetime
from pydantic import BaseModel
from smithers import Sequence, Task, Timer, workflow

class Out(BaseModel):
    n: int

class In(BaseModel):
    duration: str = "3s"
    until: str | None = None

@workflow(input=In)
def timed(ctx):
    return Sequence(
        Task("before", output=Out, value={"n": 1}),
        Timer("cool", duration=ctx.input.duration),
        ctx.input.until and Timer("at", until=ctx.input.until),
        Task("after", output=Out, value={"n": 2}),
    )
"""


def test_timer_is_durable_across_processes(project, run_id_of):
    project.write("wf.py", TIMER)
    up = project.cli("up", "wf.py", "--input", '{"duration": "1h"}', "-q")
    assert up.returncode == 3, up.stdout + up.stderr
    run_id = run_id_of(up.stdout)
    assert f"run {run_id} waiting-timer" in up.stdout
    assert f"smithers resume {run_id}" in up.stdout
    assert [r["run_id"] for r in project.json("ps", "--status", "waiting-timer")] == [run_id]
    ((fires,),) = project.query("SELECT fires_at_ms FROM _smithers_timers WHERE run_id = ?", (run_id,))
    assert project.query("SELECT wake_at_ms FROM _smithers_runs WHERE run_id = ?", (run_id,)) == [(fires,)]
    why = project.json("why", run_id)
    assert "timer cool[0] due at" in why["reason"] and why["commands"][0].startswith(f"smithers resume {run_id}")
    # resumed before it is due: waits again, and the due time never moves
    early = project.cli("resume", run_id, "-q")
    assert early.returncode == 3, early.stdout + early.stderr
    assert _statuses(project, run_id)["after"] == "pending"
    assert project.query("SELECT fires_at_ms, fired_at_ms FROM _smithers_timers WHERE run_id = ?", (run_id,)) == [(fires, None)]

    # a short one: no process stays alive while it runs out; a resume after it is due finishes the run
    up = project.cli("up", "wf.py", "--input", '{"duration": "1s"}', "-q")
    assert up.returncode == 3, up.stdout + up.stderr
    run_id = run_id_of(up.stdout)
    ((fires,),) = project.query("SELECT fires_at_ms FROM _smithers_timers WHERE run_id = ?", (run_id,))
    time.sleep(max(fires / 1000 - time.time() + 0.05, 0))
    done = project.cli("resume", run_id, "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _statuses(project, run_id) == {"before": "finished", "cool": "finished", "after": "finished"}
    ((fired,),) = project.query("SELECT fired_at_ms FROM _smithers_timers WHERE run_id = ?", (run_id,))
    assert fired >= fires
    assert project.query("SELECT count(*) FROM timer_fired WHERE run_id = ?", (run_id,)) == [(1,)]


def test_up_wait_sleeps_through_timers(project, run_id_of):
    project.write("wf.py", TIMER)
    until = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 2)) + "+00:00"
    started = time.monotonic()
    up = project.cli("up", "wf.py", "--input", json.dumps({"duration": "0.4s", "until": until}), "--wait", "-q")
    assert up.returncode == 0, up.stdout + up.stderr
    assert time.monotonic() - started >= 0.4
    run_id = run_id_of(up.stdout)
    timers = project.query("SELECT node_id, fires_at_ms, fired_at_ms FROM _smithers_timers WHERE run_id = ? ORDER BY node_id", (run_id,))
    assert [t[0] for t in timers] == ["at", "cool"]
    assert all(fired >= fires for _, fires, fired in timers)
    assert _statuses(project, run_id)["after"] == "finished"


WAITS = """
from pydantic import BaseModel
from smithers import Approval, Sequence, Signal, Task, workflow

class Ping(BaseModel):
    n: int

@workflow
def waits(ctx):
    got = ctx.output("go")
    return Sequence(
        Approval("ok", request="Go on?"),
        Signal("go", schema=Ping),
        got and Task("end", output=Ping, value={"n": got.n + 1}),
    )
"""


def test_up_wait_continues_when_another_process_answers(project):
    project.write("wf.py", WAITS)
    proc = project.popen("up", "wf.py", "--wait", "-q")
    try:
        run_id = _wait_for_status(project, None, "waiting-approval")
        why = project.json("why", run_id)
        assert f"its owner (pid {proc.pid}) continues the moment it arrives" in why["reason"]
        assert why["commands"] == [f"smithers approve {run_id} --node ok", f"smithers deny {run_id} --node ok"]
        approved = project.cli("approve", run_id, "--by", "dana")
        assert approved.returncode == 0, approved.stderr
        assert f"its owner (pid {proc.pid}) continues it now" in approved.stdout
        _wait_for_status(project, run_id, "waiting-event", timeout=10)
        assert project.cli("signal", run_id, "go", "--data", '{"n": 41}').returncode == 0
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert f"run {run_id} finished" in out
    assert project.query("SELECT n FROM ping WHERE run_id = ? AND node_id = 'end'", (run_id,)) == [(42,)]
    # the owner picked each answer up after it was recorded (how fast is for bench/, not for a loaded test machine)
    assert _event_ts(project, run_id, "ApprovalGranted") >= _event_ts(project, run_id, "ApprovalDecided")
    assert _event_ts(project, run_id, "SignalReceived") >= _event_ts(project, run_id, "SignalSent")


def test_supervise_finishes_a_parent_whose_subflow_waits_for_a_timer(project, run_id_of):
    project.write("child.py", """
from pydantic import BaseModel
from smithers import Sequence, Task, Timer, workflow

class Out(BaseModel):
    n: int

@workflow
def child(ctx):
    return Sequence(Timer("nap", duration="1s"), Task("woke", output=Out, value={"n": 7}))
""")
    project.write("parent.py", """
from pydantic import BaseModel
from smithers import Sequence, Subflow, Task, workflow

class Out(BaseModel):
    n: int

@workflow
def parent(ctx):
    return Sequence(Subflow("kid", workflow="child.py", output=Out), Task("after", output=Out, value={"n": 1}))
""")
    up = project.cli("up", "parent.py", "-q")
    assert up.returncode == 3, up.stdout + up.stderr
    parent_id = run_id_of(up.stdout)
    child_id = f"{parent_id}.kid.0"
    assert _run_status(project, parent_id) == _run_status(project, child_id) == "waiting-timer"
    ((fires,),) = project.query("SELECT fires_at_ms FROM _smithers_timers WHERE run_id = ?", (child_id,))
    # the parent wakes when its child's timer is due: the supervisor finds it through the parent's wake time
    assert project.query("SELECT wake_at_ms FROM _smithers_runs WHERE run_id = ?", (parent_id,)) == [(fires,)]
    time.sleep(max(fires / 1000 - time.time() + 0.05, 0))
    result = project.cli("supervise", "--once", "--interval", "0.2s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resumed {parent_id}" in result.stdout
    assert f"resumed {child_id}" not in result.stdout  # a child run is resumed by its parent, never on its own
    assert _run_status(project, parent_id) == _run_status(project, child_id) == "finished"
    assert _statuses(project, parent_id) == {"kid": "finished", "after": "finished"}
    assert project.query("SELECT n FROM out WHERE run_id = ? AND node_id = 'kid'", (parent_id,)) == [(7,)]
