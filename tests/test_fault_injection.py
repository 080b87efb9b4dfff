"""A kill *inside* a commit: ``SMITHERS_FAULT_BEFORE_COMMIT=N`` SIGKILLs a real ``smithers up``
right before its N-th COMMIT. Whatever N, the database holds whole state changes only, and a
resume finishes the run with exactly one output row per task."""

from __future__ import annotations

import json
import signal

import pytest

WORKFLOW = """
import asyncio
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow

class Out(BaseModel):
    n: int

async def work(tc):
    await asyncio.sleep(0)
    return {"n": len(tc.node_id)}

@workflow
def chain(ctx):
    return Sequence(
        Task("first", output=Out, value={"n": 1}),
        Task("second", output=Out, run=work),
        Parallel(Task("left", output=Out, run=work), Task("right", output=Out, run=work), Task("mid", output=Out, value={"n": 2})),
        Task("last", output=Out, run=work),
    )
"""
NODES = {"first", "second", "left", "right", "mid", "last"}


def _check_whole(project, run_id: str) -> dict[str, str]:
    """Nothing half-written: gapless seqs; a node is finished iff it has its output row and its
    NodeFinished event; a run row exists iff its RunStarted does. Returns node statuses."""
    seqs = [r[0] for r in project.query("SELECT seq FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,))]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq not gapless: {seqs}"
    runs = project.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))
    started = project.query("SELECT COUNT(*) FROM _smithers_events WHERE run_id = ? AND type = 'RunStarted'", (run_id,))[0][0]
    assert bool(runs) == bool(started)
    statuses = dict(project.query("SELECT node_id, status FROM _smithers_nodes WHERE run_id = ? AND iteration = 0", (run_id,)))
    tables = {r[0] for r in project.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    rows = {r[0] for r in project.query("SELECT node_id FROM out WHERE run_id = ?", (run_id,))} if "out" in tables else set()
    finished_events = [r[0] for r in project.query(
        "SELECT node_id FROM _smithers_events WHERE run_id = ? AND type = 'NodeFinished'", (run_id,)
    )]
    finished = {n for n, s in statuses.items() if s == "finished"}
    assert rows == finished == set(finished_events), (rows, finished, finished_events)
    assert len(finished_events) == len(set(finished_events)), f"a node finished twice: {finished_events}"
    for node_id, status in statuses.items():  # an attempt's row and its node agree
        attempts = project.query(
            "SELECT status FROM _smithers_attempts WHERE run_id = ? AND node_id = ? ORDER BY attempt", (run_id, node_id)
        )
        if status == "finished":
            assert attempts and attempts[-1][0] == "finished"
        if status == "running":
            assert attempts and attempts[-1][0] == "running"
    return statuses


@pytest.mark.slow
def test_a_kill_inside_any_commit_leaves_nothing_half_written(project):
    project.write("wf.py", WORKFLOW)
    killed = 0
    for n in (2, 3, 4, 5, 7, 9, 12):
        run_id = f"fault-{n}"
        up = project.cli("up", "wf.py", "--run-id", run_id, "-q", env=project.env(SMITHERS_FAULT_BEFORE_COMMIT=str(n)))
        if up.returncode == 0:
            assert all(s == "finished" for s in _check_whole(project, run_id).values())
            continue
        assert up.returncode == -signal.SIGKILL, up.stdout + up.stderr
        killed += 1
        _check_whole(project, run_id)
        exists = project.query("SELECT COUNT(*) FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0]
        again = project.cli("resume", run_id, "-q") if exists else project.cli("up", "wf.py", "--run-id", run_id, "-q")
        assert again.returncode == 0, again.stdout + again.stderr
        statuses = _check_whole(project, run_id)
        assert statuses == dict.fromkeys(NODES, "finished")
        assert project.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,)) == [("finished",)]
        assert sorted(r[0] for r in project.query("SELECT node_id FROM out WHERE run_id = ?", (run_id,))) == sorted(NODES)
        outputs = dict(project.query("SELECT node_id, n FROM out WHERE run_id = ?", (run_id,)))
        assert outputs["second"] == len("second") and outputs["mid"] == 2
    assert killed >= 5  # the sweep really killed runs mid-flight, not just ran them


def test_the_fault_variable_must_be_a_number(project):
    project.write("wf.py", WORKFLOW)
    result = project.cli("up", "wf.py", "-q", env=project.env(SMITHERS_FAULT_BEFORE_COMMIT="soon"))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "SMITHERS_FAULT_BEFORE_COMMIT" in result.stderr


@pytest.mark.slow
def test_resumed_events_replay_in_order(project):
    """The resume after a fault appends to the same gapless sequence (its RunStarted says resumed)."""
    project.write("wf.py", WORKFLOW)
    up = project.cli("up", "wf.py", "--run-id", "r", "-q", env=project.env(SMITHERS_FAULT_BEFORE_COMMIT="4"))
    assert up.returncode == -signal.SIGKILL, up.stdout + up.stderr
    assert project.cli("resume", "r", "-q").returncode == 0
    started = [json.loads(p or "{}") for (p,) in project.query(
        "SELECT payload_json FROM _smithers_events WHERE run_id = 'r' AND type = 'RunStarted' ORDER BY seq"
    )]
    assert [s.get("resumed") for s in started] == [False, True]
    _check_whole(project, "r")
