"""Frames as the time axis (DESIGN §10.3): one delta frame per step (a task finished, failed or was
skipped) and per plan change, stored linearly, and the state at any frame rebuilt from the deltas."""

from __future__ import annotations

import json

from smithers.history import dependents_of, state_at
from smithers.storage.frames import fold_steps, needs_keyframe, rebuild, steps_of

SEQ = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Out(BaseModel):
    n: int

@workflow
def seq(ctx):
    return Sequence(*[Task(f"step-{i}", output=Out, value={"n": i}) for i in range({n})])
"""

MIXED = """
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow

class Out(BaseModel):
    n: int

def boom():
    raise RuntimeError("always fails")

@workflow
def mixed(ctx):
    return Sequence(
        Task("first", output=Out, value={"n": 1}),
        Task("skipped", output=Out, value={"n": 2}, skip_if=True),
        Task("flaky", output=Out, run=boom, retries=1, continue_on_fail=True),
        Parallel(Task("left", output=Out, value={"n": 3}), Task("right", output=Out, value={"n": 4})),
    )
"""

LOOP = """
from pydantic import BaseModel
from smithers import Loop, Sequence, Task, workflow

class Step(BaseModel):
    n: int

@workflow
def looped(ctx):
    done = ctx.iteration_count("body") >= 40
    return Sequence(
        Loop(Task("body", output=Step, value={"n": ctx.iteration("lp")}), id="lp", until=done, max_iterations=100),
        Task("after", output=Step, value={"n": -1}),
    )
"""


def _frames(project, run_id):
    store = project.store()
    try:
        return store.frames(run_id)
    finally:
        store.close()


def test_a_frame_per_step(project) -> None:
    project.write("seq.py", SEQ.replace("{n}", "5"))
    assert project.cli("up", "seq.py", "--run-id", "s").returncode == 0
    rows = _frames(project, "s")
    assert [r["frame_no"] for r in rows] == list(range(6))  # the first plan, then one per finished task
    assert rows[0]["is_keyframe"] == 1 and not any(r["is_keyframe"] for r in rows[1:])
    steps = [steps_of(json.loads(r["data_json"])) for r in rows[1:]]
    assert steps == [[[f"step-{i}", 0, "finished", 1]] for i in range(5)]
    # each frame's event is the step's NodeFinished: frames point between any two steps
    seqs = dict(project.query("SELECT node_id, seq FROM _smithers_events WHERE run_id = 's' AND type = 'NodeFinished'"))
    assert [r["event_seq"] for r in rows[1:]] == [seqs[f"step-{i}"] for i in range(5)]

    timeline = project.json("timeline", "s")
    assert set(timeline) == {"run_id", "frames", "forks"} and timeline["forks"] == []
    assert {"frame_no", "created_at_ms", "snapshot"} <= set(timeline["frames"][0])
    assert [f["kind"] for f in timeline["frames"]] == ["plan"] + ["step"] * 5
    # the graph at frame 3: the three first tasks finished, the rest still pending
    graph = project.json("graph", "--run", "s", "--frame", "3")
    statuses = {c["id"]: c["status"] for c in graph["children"][0]["children"]}
    assert statuses == {"step-0": "finished", "step-1": "finished", "step-2": "finished", "step-3": "pending", "step-4": "pending"}


def test_failures_retries_and_skips_are_steps(project) -> None:
    project.write("mixed.py", MIXED)
    assert project.cli("up", "mixed.py", "--run-id", "m").returncode == 0
    steps = [s for r in _frames(project, "m") for s in steps_of(json.loads(r["data_json"])) if not r["is_keyframe"]]
    by_node = [(s[0], s[2], s[3]) for s in steps]
    assert by_node[:4] == [("first", "finished", 1), ("skipped", "skipped", None), ("flaky", "retrying", 1), ("flaky", "failed", 2)]
    assert sorted(by_node[4:]) == [("left", "finished", 1), ("right", "finished", 1)]


def test_state_at_a_frame_is_folded_from_the_deltas(project) -> None:
    project.write("mixed.py", MIXED)
    assert project.cli("up", "mixed.py", "--run-id", "m").returncode == 0
    store = project.store()
    try:
        run = store.get_run("m")
        assert state_at(store, run, 0).done == {}
        assert state_at(store, run, 2).done == {("first", 0): "finished", ("skipped", 0): "skipped"}
        # a continue_on_fail failure is not "done": a fork runs it again
        assert set(state_at(store, run, 4).done) == {("first", 0), ("skipped", 0)}
        last = len(store.frames("m")) - 1
        assert set(state_at(store, run, last).done) == {("first", 0), ("skipped", 0), ("left", 0), ("right", 0)}
        # the plan of a frame, and what depends on a node by structure
        entries = state_at(store, run, last).entries
        assert dependents_of(entries, "first").after == {"skipped", "flaky", "left", "right"}
        assert dependents_of(entries, "left").after == set()  # its sibling in a Parallel does not wait for it
    finally:
        store.close()


def test_storage_stays_linear(project) -> None:
    """300 steps: one keyframe, 300 small deltas; a loop of 40 passes: keyframes only when the
    deltas since the last one outweigh the plan, so every stored plan entry is paid for by a change."""
    project.write("seq.py", SEQ.replace("{n}", "300"))
    assert project.cli("up", "seq.py", "--run-id", "long").returncode == 0
    rows = _frames(project, "long")
    assert len(rows) == 301 and sum(r["is_keyframe"] for r in rows) == 1
    step_bytes = [len(r["data_json"]) for r in rows[1:]]
    assert max(step_bytes) < 40  # {"n":[["step-299",0,"finished",1]]}: no copy of the plan per frame

    project.write("loop.py", LOOP)
    assert project.cli("up", "loop.py", "--run-id", "loop").returncode == 0
    rows = _frames(project, "loop")
    plans = [(row, data) for row in rows if "n" not in (data := json.loads(row["data_json"]))]
    keyframe_entries = sum(len(data["put"]) for row, data in plans if row["is_keyframe"])
    delta_entries = sum(len(data["put"]) + len(data["del"]) for row, data in plans if not row["is_keyframe"])
    assert 1 < sum(row["is_keyframe"] for row in rows) < 40  # neither one per pass nor never
    assert keyframe_entries <= 2 * delta_entries + len(plans[0][1]["put"])
    # a frame past a later keyframe rebuilds to the plan the graph shows
    n = len(rows) - 2
    shown = project.json("graph", "--run", "loop", "--frame", str(n))
    assert shown["children"][0]["children"][0]["it"] == rebuild(rows, n, json.loads)["loop:lp"]["it"]


def test_keyframe_policy_and_fold() -> None:
    plan = {f"k{i}": {"k": f"k{i}"} for i in range(10)}
    assert not needs_keyframe(0, {"put": [{}] * 3, "del": []}, plan)
    assert needs_keyframe(8, {"put": [{}] * 3, "del": []}, plan)
    deltas = [{"n": [["a", 0, "retrying", 1]]}, {"put": [], "del": []}, {"n": [["a", 0, "finished", 2], ["b", 0, "skipped", None]]}]
    folded = fold_steps(deltas)
    assert folded == {("a", 0): ["a", 0, "finished", 2], ("b", 0): ["b", 0, "skipped", None]}


def test_a_queued_run_is_driven_by_resume(project) -> None:
    """``queued`` (a fork not yet started) is a status `resume` drives like any other."""
    project.write("seq.py", SEQ.replace("{n}", "3"))
    assert project.cli("up", "seq.py", "--run-id", "q").returncode == 0
    fork = project.json("fork", "q", "--frame", "1")
    assert project.json("inspect", fork["run_id"])["status"] == "queued"
    assert fork["run_id"] in {r["run_id"] for r in project.json("ps", "--status", "queued")}
    resumed = project.cli("resume", fork["run_id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "finished"
    started = project.query("SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = 'RunStarted'", (fork["run_id"],))
    assert json.loads(started[0][0])["previous_status"] == "queued"
