"""Constructs and policies, run through the real CLI (or ``ops.start_run``) on a real SQLite file."""

from __future__ import annotations

import itertools
import json

import pytest
from waiting import wait_until

HEADER = """
import asyncio, json, threading, time
from pathlib import Path
from pydantic import BaseModel
import smithers
from smithers import workflow, Task, Sequence, Parallel, Branch, Loop, Retry, TaskContext

HERE = Path(__file__).parent
LOG = HERE / "log.txt"

def log(line):
    with LOG.open("a") as f:
        f.write(line + "\\n")

class Out(BaseModel):
    n: int
"""


def wf(project, body: str, name: str = "wf.py"):
    return project.write(name, HEADER + body)


def attempts(project, node_id: str, iteration: int = 0) -> list[dict]:
    rows = project.query(
        "SELECT attempt, status, started_at_ms, finished_at_ms, error_json, heartbeat_json, meta_json "
        "FROM _smithers_attempts WHERE node_id = ? AND iteration = ? ORDER BY attempt",
        (node_id, iteration),
    )
    keys = ("attempt", "status", "started_at_ms", "finished_at_ms", "error", "heartbeat", "meta")
    out = []
    for row in rows:
        entry = dict(zip(keys, row, strict=True))
        for key in ("error", "heartbeat", "meta"):
            entry[key] = json.loads(entry[key]) if entry[key] else None
        out.append(entry)
    return out


def node_status(project, node_id: str, iteration: int = 0) -> str:
    rows = project.query("SELECT status FROM _smithers_nodes WHERE node_id = ? AND iteration = ?", (node_id, iteration))
    assert rows, f"no node {node_id}[{iteration}]"
    return rows[0][0]


def run_row(project) -> tuple[str, dict | None]:
    (status, error), = project.query("SELECT status, error_json FROM _smithers_runs")
    return status, json.loads(error) if error else None


def event_types(project, node_id: str | None = None) -> list[str]:
    if node_id is None:
        return [r[0] for r in project.query("SELECT type FROM _smithers_events ORDER BY seq")]
    return [r[0] for r in project.query("SELECT type FROM _smithers_events WHERE node_id = ? ORDER BY seq", (node_id,))]


def max_concurrent(lines: list[str]) -> int:
    """Lines are '+ name' at start and '- name' at end, in the order they happened."""
    now = peak = 0
    for line in lines:
        now += 1 if line.startswith("+") else -1
        peak = max(peak, now)
    return peak


# -- constructs ------------------------------------------------------------------------------


def test_static_task(project, run_id_of):
    wf(project, """
@workflow
def one(ctx):
    return Task("a", output=Out, value={"n": 7})
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    run_id = run_id_of(result.stdout)
    assert result.stdout.strip().splitlines()[-1] == f"run {run_id} finished"
    assert project.query("SELECT run_id, node_id, iteration, n FROM out") == [(run_id, "a", 0, 7)]
    assert [(a["attempt"], a["status"]) for a in attempts(project, "a")] == [(1, "finished")]
    assert run_row(project) == ("finished", None)
    types = event_types(project)
    assert types[0] == "RunStarted" and types[-1] == "RunFinished"
    assert event_types(project, "a") == ["NodePending", "NodeStarted", "NodeFinished"]
    seqs = [r[0] for r in project.query("SELECT seq FROM _smithers_events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))  # gapless per run


def test_compute_sync_and_async_with_and_without_task_context(project, run_id_of):
    wf(project, """
class Info(BaseModel):
    kind: str
    attempt: int = 0
    node: str = ""
    iter: int = -1
    key: str = ""
    rid: str = ""
    cwd: str = ""
    thread: str = ""

def sync_plain():
    return {"kind": "sync-plain", "thread": threading.current_thread().name}

def sync_tc(tc: TaskContext):
    return Info(kind="sync-tc", attempt=tc.attempt, node=tc.node_id, iter=tc.iteration,
                key=tc.idempotency_key, rid=tc.run_id, cwd=tc.cwd)

async def async_plain():
    await asyncio.sleep(0.01)
    return {"kind": "async-plain", "thread": threading.current_thread().name}

async def async_tc(tc):
    await asyncio.sleep(0.01)
    return {"kind": "async-tc", "attempt": tc.attempt, "node": tc.node_id, "key": tc.idempotency_key,
            "rid": tc.run_id, "iter": tc.iteration, "cwd": tc.cwd}

@workflow
def compute(ctx):
    return Parallel(
        Task("sp", output=Info, run=sync_plain),
        Task("st", output=Info, run=sync_tc),
        Task("ap", output=Info, run=async_plain),
        Task("at", output=Info, run=async_tc),
        Task("lam", output=Info, run=lambda: {"kind": "lambda"}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    run_id = run_id_of(result.stdout)
    rows = {r[0]: r[1:] for r in project.query("SELECT node_id, kind, attempt, iter, key, rid, cwd, thread FROM info")}
    assert rows["sp"][0] == "sync-plain" and rows["sp"][6] != "MainThread"  # sync functions run off the loop thread
    assert rows["ap"][0] == "async-plain" and rows["ap"][6] == "MainThread"
    assert rows["lam"][0] == "lambda"
    for node in ("st", "at"):
        kind, attempt, iteration, key, rid, cwd, _ = rows[node]
        assert attempt == 1 and iteration == 0 and rid == run_id and kind.endswith("-tc")
        assert key == f"{run_id}:{node}:0"
        assert cwd == str(project.root.resolve())
    assert {r[0] for r in project.query("SELECT status FROM _smithers_nodes")} == {"finished"}


def test_sequence_runs_children_in_order(project):
    wf(project, """
def step(name):
    async def fn():
        log("+ " + name)
        await asyncio.sleep(0.03)
        log("- " + name)
        return {"n": 1}
    return fn

@workflow
def seq(ctx):
    return Sequence(*[Task(name, output=Out, run=step(name)) for name in ("c", "a", "b")], Task("z", output=Out, value={"n": 0}))
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert (project.root / "log.txt").read_text().split() == ["+", "c", "-", "c", "+", "a", "-", "a", "+", "b", "-", "b"]
    started = [r[0] for r in project.query("SELECT node_id FROM _smithers_events WHERE type = 'NodeStarted' ORDER BY seq")]
    assert started == ["c", "a", "b", "z"]
    spans = {r[0]: (r[1], r[2]) for r in project.query("SELECT node_id, started_at_ms, finished_at_ms FROM _smithers_attempts")}
    order = ["c", "a", "b", "z"]
    for before, after in itertools.pairwise(order):
        assert spans[after][0] >= spans[before][1], (before, after, spans)


def test_parallel_fan_out_from_a_comprehension_runs_concurrently(project):
    wf(project, """
def work(i):
    async def fn():
        log(f"+ p{i}")
        await asyncio.sleep(0.15)
        log(f"- p{i}")
        return {"n": i * i}
    return fn

@workflow(max_concurrency=8)
def fan(ctx):
    return Parallel([Task(f"p{i}", output=Out, run=work(i)) for i in range(5)])
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert sorted(project.query("SELECT node_id, n FROM out")) == [(f"p{i}", i * i) for i in range(5)]
    lines = (project.root / "log.txt").read_text().splitlines()
    assert max_concurrent(lines) == 5


def test_parallel_max_concurrency_is_honoured(project):
    wf(project, """
def work(i):
    async def fn():
        log(f"+ p{i}")
        await asyncio.sleep(0.05)
        log(f"- p{i}")
        return {"n": i}
    return fn

def sync_work(i):
    def fn():
        log(f"+ q{i}")
        time.sleep(0.05)
        log(f"- q{i}")
        return {"n": i}
    return fn

@workflow(max_concurrency=16)
def limited(ctx):
    return Sequence(
        Parallel(*[Task(f"p{i}", output=Out, run=work(i)) for i in range(7)], max_concurrency=2),
        Parallel(*[Task(f"q{i}", output=Out, run=sync_work(i)) for i in range(5)], max_concurrency=3),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    lines = (project.root / "log.txt").read_text().splitlines()
    assert max_concurrent([ln for ln in lines if ln.split()[1].startswith("p")]) == 2
    assert max_concurrent([ln for ln in lines if ln.split()[1].startswith("q")]) == 3
    assert project.query("SELECT count(*) FROM out") == [(12,)]


def test_nested_parallel_limits_and_run_limit_combine(project):
    wf(project, """
def work(name):
    async def fn():
        log("+ " + name)
        await asyncio.sleep(0.04)
        log("- " + name)
        return {"n": 1}
    return fn

@workflow(max_concurrency=16)
def nested(ctx):
    return Parallel(
        Parallel(*[Task(f"a{i}", output=Out, run=work(f"a{i}")) for i in range(4)], max_concurrency=1),
        Parallel(*[Task(f"b{i}", output=Out, run=work(f"b{i}")) for i in range(4)]),
        max_concurrency=3,
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    lines = (project.root / "log.txt").read_text().splitlines()
    assert max_concurrent(lines) <= 3
    assert max_concurrent([ln for ln in lines if ln.split()[1].startswith("a")]) == 1


def test_run_level_max_concurrency_is_honoured(project):
    wf(project, """
def work(i):
    async def fn():
        log(f"+ p{i}")
        await asyncio.sleep(0.05)
        log(f"- p{i}")
        return {"n": i}
    return fn

@workflow
def wide(ctx):
    return Parallel(*[Task(f"p{i}", output=Out, run=work(i)) for i in range(8)])
""")
    result = project.cli("up", "wf.py", "--max-concurrency", "3")
    assert result.returncode == 0, result.stderr
    assert max_concurrent((project.root / "log.txt").read_text().splitlines()) == 3
    assert project.query("SELECT max_concurrency FROM _smithers_runs") == [(3,)]
    (project.root / "log.txt").unlink()
    result = project.cli("up", "wf.py")  # the workflow's default (4)
    assert result.returncode == 0, result.stderr
    assert max_concurrent((project.root / "log.txt").read_text().splitlines()) == 4


def test_a_task_starts_as_soon_as_it_is_ready_no_wave_barrier(project):
    wf(project, """
DONE = HERE / "fast2-done"

def work(name):
    async def fn():
        await asyncio.sleep(0.02)
        if name == "fast2":
            DONE.touch()
        return {"n": 1}
    return fn

async def slow():
    # runs until fast2 has finished: with a wave barrier fast2 could not start before slow ends
    deadline = time.monotonic() + 5
    while not DONE.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return {"n": 1 if DONE.exists() else 0}

@workflow
def waves(ctx):
    return Parallel(
        Sequence(Task("fast1", output=Out, run=work("fast1")), Task("fast2", output=Out, run=work("fast2"))),
        Task("slow", output=Out, run=slow),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT n FROM out WHERE node_id = 'slow'") == [(1,)]
    spans = {r[0]: (r[1], r[2]) for r in project.query("SELECT node_id, started_at_ms, finished_at_ms FROM _smithers_attempts")}
    assert spans["fast2"][0] >= spans["fast1"][1]
    assert spans["fast2"][1] <= spans["slow"][1], spans  # fast2 ran (start and end) while slow was still running


def test_branch_both_ways(project):
    wf(project, """
class Inp(BaseModel):
    flag: bool

@workflow(input=Inp)
def branchy(ctx):
    return Sequence(
        Branch(ctx.input.flag, Task("yes", output=Out, value={"n": 1}), Task("no", output=Out, value={"n": 0})),
        Branch(ctx.input.flag, Task("only-if", output=Out, value={"n": 2})),
        Task("after", output=Out, value={"n": 3}),
    )
""")
    result = project.cli("up", "wf.py", "--input", '{"flag": true}')
    assert result.returncode == 0, result.stderr
    first = project.query("SELECT run_id FROM _smithers_runs")[0][0]
    assert sorted(project.query("SELECT node_id, n FROM out WHERE run_id = ?", (first,))) == [("after", 3), ("only-if", 2), ("yes", 1)]
    result = project.cli("up", "wf.py", "--input", '{"flag": false}')
    assert result.returncode == 0, result.stderr
    second = project.query("SELECT run_id FROM _smithers_runs WHERE run_id != ?", (first,))[0][0]
    assert sorted(project.query("SELECT node_id, n FROM out WHERE run_id = ?", (second,))) == [("after", 3), ("no", 0)]
    # the branch not taken is not in the plan at all
    assert sorted(r[0] for r in project.query("SELECT node_id FROM _smithers_nodes WHERE run_id = ?", (second,))) == ["after", "no"]


def test_loop_with_feedback(project):
    wf(project, """
class Draft(BaseModel):
    n: int
    seen_pass: int
    previous: int | None = None

class Summary(BaseModel):
    ns: list[int]
    count: int
    loop_pass: int

@workflow
def looping(ctx):
    prev = ctx.output("draft")
    done = prev is not None and prev.n >= 3
    p = ctx.iteration("refine")
    return Sequence(
        Loop(
            Task("draft", output=Draft, run=lambda: {"n": (prev.n if prev else 0) + 1, "seen_pass": p,
                                                     "previous": prev.n if prev else None}),
            id="refine", until=done, max_iterations=10,
        ),
        Task("summary", output=Summary, value={"ns": [d.n for d in ctx.outputs("draft")],
                                                "count": ctx.iteration_count("draft"), "loop_pass": p}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    rows = project.query("SELECT node_id, iteration, n, seen_pass, previous FROM draft ORDER BY iteration")
    assert rows == [("draft", 0, 1, 0, None), ("draft", 1, 2, 1, 1), ("draft", 2, 3, 2, 2)]
    assert project.query("SELECT ns, count, loop_pass FROM summary") == [("[1, 2, 3]", 3, 2)]
    assert project.query("SELECT loop_id, iteration, done FROM _smithers_loops") == [("refine", 2, 1)]
    assert event_types(project).count("LoopIteration") == 2
    assert event_types(project).count("LoopFinished") == 1


def test_loop_until_true_at_first_render_runs_no_pass(project):
    wf(project, """
@workflow
def never(ctx):
    return Sequence(Loop(Task("body", output=Out, value={"n": 1}), id="lp", until=True), Task("after", output=Out, value={"n": 2}))
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT node_id FROM out") == [("after",)]


def test_loop_max_iterations_return_last(project):
    wf(project, """
@workflow
def capped(ctx):
    count = ctx.iteration_count("body")
    return Sequence(
        Loop(Task("body", output=Out, run=lambda: {"n": count}), id="lp", until=False, max_iterations=3),
        Task("after", output=Out, value={"n": (ctx.output("body").n if ctx.output("body") else -1)}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT iteration, n FROM out WHERE node_id = 'body' ORDER BY iteration") == [(0, 0), (1, 1), (2, 2)]
    assert project.query("SELECT n FROM out WHERE node_id = 'after'") == [(2,)]  # the last pass's output
    assert run_row(project)[0] == "finished"


def test_loop_max_iterations_fail(project):
    wf(project, """
@workflow
def strict(ctx):
    return Sequence(
        Loop(Task("body", output=Out, value={"n": 1}), id="strict-loop", until=False, max_iterations=2, on_max_reached="fail"),
        Task("after", output=Out, value={"n": 2}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1, result.stdout + result.stderr
    status, error = run_row(project)
    assert status == "failed"
    assert error["code"] == "LOOP_MAX_REACHED" and "strict-loop" in error["message"]
    assert "strict-loop" in result.stdout
    assert project.query("SELECT iteration FROM out WHERE node_id = 'body' ORDER BY iteration") == [(0,), (1,)]
    assert project.query("SELECT count(*) FROM out WHERE node_id = 'after'") == [(0,)]


def test_nested_loops_suffix_node_ids_with_outer_passes(project):
    wf(project, """
class Mark(BaseModel):
    outer: int
    inner: int

@workflow
def nested(ctx):
    o = ctx.iteration("outer")
    return Loop(
        Task("start", output=Mark, value={"outer": o, "inner": -1}),
        Loop(
            Task("review", output=Mark, value={"outer": o, "inner": ctx.iteration(f"inner@outer={o}")}),
            id="inner", max_iterations=3,
            until=ctx.iteration_count(f"review@outer={o}") >= 2,
        ),
        id="outer", max_iterations=2,
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = project.query("SELECT node_id, iteration, outer, inner FROM mark ORDER BY node_id, iteration")
    assert rows == [
        ("review@outer=0", 0, 0, 0), ("review@outer=0", 1, 0, 1),
        ("review@outer=1", 0, 1, 0), ("review@outer=1", 1, 1, 1),
        ("start", 0, 0, -1), ("start", 1, 1, -1),
    ]
    loops = {r[0]: (r[1], r[2]) for r in project.query("SELECT loop_id, iteration, done FROM _smithers_loops")}
    assert loops == {"outer": (1, 1), "inner@outer=0": (1, 1), "inner@outer=1": (1, 1)}


def test_nested_loops_read_by_logical_id_resolve_to_the_current_outer_pass(project):
    """ctx.iteration("inner"), ctx.output("review"), ctx.iteration_count("review") inside nested
    loops mean the copy of the outer loops' current passes (as in the original engine)."""
    wf(project, """
class Mark(BaseModel):
    outer: int
    inner: int
    prev: int | None
    seen: int

@workflow
def nested(ctx):
    o, i = ctx.iteration("outer"), ctx.iteration("inner")
    prev = ctx.output("review")
    return Sequence(
        Loop(
            Loop(
                Task("review", output=Mark, value={"outer": o, "inner": i, "prev": prev and prev.inner,
                                                   "seen": ctx.iteration_count("review")}),
                id="inner", max_iterations=5, until=ctx.iteration_count("review") >= 2 + o,
            ),
            id="outer", max_iterations=3, until=False,
        ),
        Task("last", output=Mark, value={"outer": o, "inner": i, "prev": prev and prev.inner, "seen": len(ctx.outputs("review"))}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = project.query(
        "SELECT node_id, iteration, outer, inner, prev, seen FROM mark WHERE node_id != 'last' ORDER BY node_id, iteration"
    )
    expected = []
    for o in range(3):
        for i in range(2 + o):  # until depends on the outer pass: 2, 3, 4 inner passes
            expected.append((f"review@outer={o}", i, o, i, None if i == 0 else i - 1, i))
    assert rows == expected
    # after the loops, the logical id reads the last outer pass's copy
    assert project.query("SELECT outer, inner, prev, seen FROM mark WHERE node_id = 'last'") == [(2, 3, 3, 4)]


def test_conditional_mounting_on_an_earlier_output(project):
    wf(project, """
class Plan(BaseModel):
    steps: list[str]

@workflow
def cond(ctx):
    plan = ctx.output("plan")
    return Sequence(
        Task("plan", output=Plan, value={"steps": ["x", "y"]}),
        plan and Parallel([Task(f"do-{s}", output=Out, value={"n": len(s)}) for s in plan.steps]),
        plan and len(plan.steps) > 5 and Task("never", output=Out, value={"n": 0}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert sorted(project.query("SELECT node_id FROM out")) == [("do-x",), ("do-y",)]
    assert sorted(r[0] for r in project.query("SELECT node_id FROM _smithers_nodes")) == ["do-x", "do-y", "plan"]
    # the dependants were mounted by a later frame than the first one
    pending = project.query("SELECT seq FROM _smithers_events WHERE type = 'NodePending' AND node_id = 'do-x'")[0][0]
    plan_done = project.query("SELECT seq FROM _smithers_events WHERE type = 'NodeFinished' AND node_id = 'plan'")[0][0]
    assert pending > plan_done


def test_components_lists_and_none_children(project):
    wf(project, """
def reviewer(name, enabled=True):
    if not enabled:
        return None
    return Sequence(Task(f"{name}-read", output=Out, value={"n": 1}), [Task(f"{name}-note", output=Out, value={"n": 2})])

def pair(a, b):
    return [reviewer(a), (reviewer(b), None)]

@workflow
def comp(ctx):
    return Sequence(
        None, False,
        pair("alice", "bob"),
        reviewer("carol", enabled=False),
        [[Task("deep", output=Out, value={"n": 3})]],
        (),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert sorted(r[0] for r in project.query("SELECT node_id FROM out")) == [
        "alice-note", "alice-read", "bob-note", "bob-read", "deep",
    ]


def test_ctx_require_reads_or_raises_a_clear_error(project, run_id_of):
    wf(project, """
@workflow
def req(ctx):
    a = ctx.output("a")
    return Sequence(
        Task("a", output=Out, value={"n": 41}),
        a and Task("b", output=Out, value={"n": ctx.require("a").n + 1}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT n FROM out WHERE node_id = 'b'") == [(42,)]

    wf(project, """
@workflow
def bad(ctx):
    return Task("b", output=Out, value={"n": ctx.require("planner").n})
""", name="bad.py")
    result = project.cli("up", "bad.py")
    assert result.returncode == 4
    assert "ctx.require('planner')" in result.stderr and "'planner' has no output" in result.stderr
    assert project.query("SELECT count(*) FROM _smithers_runs") == [(1,)]  # only the first, good run


def test_ctx_output_by_iteration_and_outputs(inproc, project):
    wf(project, """
class Seen(BaseModel):
    first: int | None
    second: int | None
    missing: int | None
    all: list[int]
    count: int

@workflow
def reads(ctx):
    it0, it1 = ctx.output("body", iteration=0), ctx.output("body", iteration=1)
    return Sequence(
        Loop(Task("body", output=Out, value={"n": 10 + ctx.iteration("lp")}), id="lp", max_iterations=2),
        Task("seen", output=Seen, value={"first": it0 and it0.n, "second": it1 and it1.n,
                                         "missing": (ctx.output("body", iteration=7) or Out(n=-1)).n,
                                         "all": [o.n for o in ctx.outputs("body")], "count": ctx.iteration_count("body")}),
    )
""")
    outcome = inproc.up()
    assert outcome.status == "finished", outcome.error
    assert project.query("SELECT first, second, missing, \"all\", count FROM seen") == [(10, 11, -1, "[10, 11]", 2)]


def test_render_error_found_later_fails_the_run_and_keeps_rows(project, run_id_of):
    wf(project, """
@workflow
def later(ctx):
    a = ctx.output("a")
    return Sequence(
        Task("a", output=Out, value={"n": 1}),
        Task("b", output=Out, run=lambda: {"n": 2}),
        a and Task("dup", output=Out, value={"n": 3}),
        a and Task("dup", output=Out, value={"n": 4}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'dup'" in result.stdout
    status, error = run_row(project)
    assert status == "failed" and "duplicate id 'dup'" in error["message"]
    assert project.query("SELECT node_id, n FROM out") == [("a", 1)]
    assert event_types(project)[-1] == "RunFailed"
    assert project.query("SELECT owner_id FROM _smithers_runs") == [(None,)]


def test_render_error_later_while_tasks_run_leaves_no_running_attempt(project):
    wf(project, """
async def slow():
    await asyncio.sleep(0.3)
    return {"n": 2}

@workflow
def later(ctx):
    a = ctx.output("a")
    if a:
        ctx.require("nope")
    return Parallel(
        Task("a", output=Out, run=lambda: {"n": 1}),
        Task("slow", output=Out, run=slow),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nope" in result.stdout
    # the in-flight sibling was not left 'running': it finished and its row is kept
    assert project.query("SELECT count(*) FROM _smithers_attempts WHERE status = 'running'") == [(0,)]
    assert sorted(project.query("SELECT node_id FROM out")) == [("a",), ("slow",)]
    status, error = run_row(project)
    assert status == "failed" and error["code"] == "MISSING_OUTPUT" and "'nope'" in error["message"]


# -- policies --------------------------------------------------------------------------------


def test_retries_with_backoff(project):
    wf(project, """
def flaky(tc):
    log(f"flaky {tc.attempt} {tc.idempotency_key}")
    if tc.attempt < 4:
        raise RuntimeError(f"boom {tc.attempt}")
    return {"n": tc.attempt}

@workflow
def retrying(ctx):
    return Task("flaky", output=Out, run=flaky, retries=3, retry=Retry(initial=0.05, factor=2, max=1, jitter=0))
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    rows = attempts(project, "flaky")
    assert [(a["attempt"], a["status"]) for a in rows] == [(1, "failed"), (2, "failed"), (3, "failed"), (4, "finished")]
    for prev, cur, delay in zip(rows, rows[1:], (50, 100, 200), strict=False):
        assert cur["started_at_ms"] - prev["finished_at_ms"] >= delay - 2, (prev, cur)
    assert project.query("SELECT n FROM out") == [(4,)]
    assert event_types(project, "flaky").count("NodeRetrying") == 3
    assert rows[0]["error"]["message"] == "boom 1"
    keys = {line.split()[2] for line in (project.root / "log.txt").read_text().splitlines()}
    assert len(keys) == 1 and keys.pop().endswith(":flaky:0")  # the idempotency key is stable across retries


def test_retries_exhausted_fails_the_run(project):
    wf(project, """
def always():
    raise RuntimeError("nope")

@workflow
def retrying(ctx):
    return Sequence(
        Task("always", output=Out, run=always, retries=2, retry=Retry(initial=0.01, jitter=0)),
        Task("after", output=Out, value={"n": 1}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1
    assert [a["status"] for a in attempts(project, "always")] == ["failed"] * 3
    assert node_status(project, "always") == "failed"
    status, error = run_row(project)
    assert status == "failed" and "'always'" in error["message"] and "nope" in error["message"]
    assert project.query("SELECT count(*) FROM sqlite_master WHERE name = 'out'") == [(0,)]  # no row was ever written


def test_a_failure_while_a_sibling_that_the_render_reads_finishes(project):
    """Regression: once a task failed, a sibling whose output the render reads finishing must not
    make the loop spin (it used to busy-loop forever, deaf even to SIGTERM)."""
    wf(project, """
def bad():
    raise ValueError("bad")

async def slow():
    await asyncio.sleep(0.2)
    return {"n": 1}

@workflow
def w(ctx):
    s = ctx.output("slow")
    return Parallel(Task("bad", output=Out, run=bad), Task("slow", output=Out, run=slow), s and Task("x", output=Out, value={"n": 2}))
""")
    result = project.cli("up", "wf.py", timeout=15)
    assert result.returncode == 1
    assert project.query("SELECT node_id FROM out") == [("slow",)]  # the sibling's work is kept
    assert run_row(project)[1]["message"] == "task 'bad' failed: bad"


AGENT = """
import smithers

class Scripted:
    \"\"\"A scripted agent: replies from a list, in order; an Exception entry is raised.\"\"\"
    name = "scripted"

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = 0

    async def run(self, request):
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        log(f"agent {request.attempt} {request.node_id}")
        if isinstance(reply, Exception):
            raise reply
        return smithers.AgentResult(text=reply, usage={"input_tokens": 3}, session_id=f"s{self.calls}")

class Verdict(BaseModel):
    ok: bool
    reason: str
"""


def test_agent_tasks_retry_three_times_by_default(project):
    wf(project, AGENT + """
good = Scripted([RuntimeError("agent crashed"), RuntimeError("agent crashed again"), RuntimeError("still down"),
                 'Done.\\n```json\\n{"ok": true, "reason": "fine"}\\n```\\n'])
bad = Scripted([RuntimeError("down")])

@workflow
def agents(ctx):
    return Sequence(
        Task("judge", output=Verdict, agent=good, prompt="judge it", retry=Retry(initial=0.01, jitter=0)),
        Task("doomed", output=Verdict, agent=bad, prompt="try", retry=Retry(initial=0.01, jitter=0)),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1, result.stdout + result.stderr
    judge = attempts(project, "judge")
    assert [a["status"] for a in judge] == ["failed", "failed", "failed", "finished"]
    assert judge[0]["error"]["code"] == "AGENT_ERROR" and "RuntimeError: agent crashed" in judge[0]["error"]["message"]
    assert judge[-1]["meta"]["agent"] == "scripted" and judge[-1]["meta"]["session_id"] == "s4"
    assert project.query("SELECT ok, reason FROM verdict WHERE node_id = 'judge'") == [(1, "fine")]
    assert [a["status"] for a in attempts(project, "doomed")] == ["failed"] * 4  # 1 + 3 default retries
    assert node_status(project, "doomed") == "failed"
    lines = (project.root / "log.txt").read_text().splitlines()
    assert lines[:4] == [f"agent {n} judge" for n in (1, 2, 3, 4)]  # the request carries the attempt number


def test_agent_replies_without_json_fail_the_attempt_which_is_retried(project):
    wf(project, AGENT + """
talker = Scripted([
    "I could not decide.", "Still thinking, sorry.",         # attempt 1: the reply and the JSON-only follow-up
    "Maybe?", 'Here: {"ok": false, "reason": "bad"} done.',  # attempt 2: the follow-up has a JSON object
])

@workflow
def agents(ctx):
    return Task("judge", output=Verdict, agent=talker, prompt="judge", retry=Retry(initial=0.01, jitter=0))
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT ok, reason FROM verdict") == [(0, "bad")]
    first, second = attempts(project, "judge")
    assert first["status"] == "failed" and first["error"]["code"] == "INVALID_OUTPUT"
    assert second["status"] == "finished"
    # the prompt carried the output model's schema
    prompt = json.loads(project.query("SELECT payload_json FROM _smithers_events WHERE type = 'AgentTurn' ORDER BY seq")[0][0])["prompt"]
    assert prompt.startswith("judge") and '"reason"' in prompt


def test_timeout_per_attempt_is_retried(project):
    wf(project, """
async def sleepy(tc):
    log(f"sleepy {tc.attempt}")
    if tc.attempt == 1:
        await asyncio.sleep(5)
    return {"n": tc.attempt}

async def hangs():
    await asyncio.sleep(5)
    return {"n": 0}

@workflow
def timeouts(ctx):
    return Sequence(
        Task("sleepy", output=Out, run=sleepy, timeout=0.2, retries=1, retry=Retry(initial=0.01, jitter=0)),
        Task("hangs", output=Out, run=hangs, timeout="150ms"),
    )
""")
    result = project.cli("up", "wf.py", timeout=20)
    assert result.returncode == 1, result.stdout + result.stderr
    sleepy = attempts(project, "sleepy")
    assert [a["status"] for a in sleepy] == ["failed", "finished"]
    assert sleepy[0]["error"]["code"] == "TASK_TIMEOUT" and sleepy[0]["error"]["type"] == "TaskTimeoutError"
    assert sleepy[0]["finished_at_ms"] - sleepy[0]["started_at_ms"] >= 195
    hangs = attempts(project, "hangs")
    assert [a["status"] for a in hangs] == ["failed"]
    assert hangs[0]["error"]["code"] == "TASK_TIMEOUT"
    assert run_row(project)[1]["code"] == "TASK_TIMEOUT"


def test_sync_task_timeout(project):
    wf(project, """
def blocking():
    time.sleep(600)  # far past the CLI's timeout below: only a loop that does not wait for the thread returns
    return {"n": 1}

@workflow
def timeouts(ctx):
    return Task("blocking", output=Out, run=blocking, timeout=0.2)
""")
    result = project.cli("up", "wf.py", timeout=60)
    assert result.returncode == 1
    (only,) = attempts(project, "blocking")
    assert only["error"]["code"] == "TASK_TIMEOUT"


def test_heartbeat_timeout_hands_the_last_heartbeat_to_the_next_attempt(project):
    wf(project, """
class Progress(BaseModel):
    resumed_from: dict | None
    attempt: int

async def worker(tc):
    if tc.attempt == 1:
        for i in range(3):
            tc.heartbeat({"done": i + 1})
            await asyncio.sleep(0.05)
        await asyncio.sleep(5)  # stops heartbeating
    return {"resumed_from": tc.last_heartbeat, "attempt": tc.attempt}

@workflow
def beats(ctx):
    return Task("worker", output=Progress, run=worker, heartbeat_timeout=0.3, retries=1, retry=Retry(initial=0.01, jitter=0))
""")
    result = project.cli("up", "wf.py", timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.query("SELECT resumed_from, attempt FROM progress") == [('{"done": 3}', 2)]
    first, second = attempts(project, "worker")
    assert first["status"] == "failed" and first["error"]["code"] == "HEARTBEAT_TIMEOUT"
    assert first["heartbeat"] == {"done": 3}
    assert second["status"] == "finished"


def test_skip_if(project):
    wf(project, """
@workflow
def skipping(ctx):
    skipped = ctx.output("optional")
    return Sequence(
        Task("optional", output=Out, value={"n": 1}, skip_if=True),
        Task("after", output=Out, value={"n": 0 if skipped is None else 1}),
        Task("kept", output=Out, value={"n": 2}, skip_if=False),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert node_status(project, "optional") == "skipped"
    assert project.query("SELECT count(*) FROM _smithers_attempts WHERE node_id = 'optional'") == [(0,)]
    assert sorted(project.query("SELECT node_id, n FROM out")) == [("after", 0), ("kept", 2)]
    assert "NodeSkipped" in event_types(project, "optional")


def test_continue_on_fail(project):
    wf(project, """
def broken():
    raise ValueError("broken on purpose")

@workflow
def tolerant(ctx):
    failed = ctx.output("broken")
    return Sequence(
        Parallel(Task("broken", output=Out, run=broken, continue_on_fail=True), Task("sibling", output=Out, value={"n": 1})),
        Task("after", output=Out, value={"n": 1 if failed is None else 0}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert run_row(project)[0] == "finished"
    assert node_status(project, "broken") == "failed"
    assert sorted(project.query("SELECT node_id, n FROM out")) == [("after", 1), ("sibling", 1)]


def test_static_value_failing_its_model_fails_at_once(project):
    wf(project, """
@workflow
def bad_static(ctx):
    return Task("lit", output=Out, value={"n": "not a number"}, retries=3, retry=Retry(initial=0.01))
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1
    (only,) = attempts(project, "lit")
    assert only["status"] == "failed" and only["error"]["code"] == "INVALID_OUTPUT"
    assert "n" in only["error"]["message"] and "'lit'" in only["error"]["message"]
    assert node_status(project, "lit") == "failed"
    assert "NodeRetrying" not in event_types(project)


def test_compute_returning_an_invalid_value_is_retried(project):
    wf(project, """
def sloppy(tc):
    if tc.attempt == 1:
        return {"n": "twelve"}
    if tc.attempt == 2:
        return "not even a dict"
    return Out(n=12)

@workflow
def validate(ctx):
    return Task("sloppy", output=Out, run=sloppy, retries=2, retry=Retry(initial=0.01, jitter=0))
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    rows = attempts(project, "sloppy")
    assert [a["status"] for a in rows] == ["failed", "failed", "finished"]
    assert rows[0]["error"]["code"] == "INVALID_OUTPUT" and rows[1]["error"]["code"] == "INVALID_OUTPUT"
    assert project.query("SELECT n FROM out") == [(12,)]


def test_a_raising_task_records_type_message_and_traceback(project):
    wf(project, """
def explode():
    helper_that_fails()

def helper_that_fails():
    raise KeyError("missing-key")

@workflow
def raising(ctx):
    return Task("explode", output=Out, run=explode)
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1
    (only,) = attempts(project, "explode")
    error = only["error"]
    assert error["type"] == "KeyError"
    assert "missing-key" in error["message"]
    assert "helper_that_fails" in error["traceback"] and 'raise KeyError("missing-key")' in error["traceback"]
    node_error = json.loads(project.query("SELECT error_json FROM _smithers_nodes WHERE node_id = 'explode'")[0][0])
    assert node_error["type"] == "KeyError"
    assert "missing-key" in result.stdout


@pytest.mark.parametrize("variant", ["sync", "async"])
def test_in_process_run_reports_outcome(inproc, project, variant):
    body = "def f():\n    return {'n': 5}\n" if variant == "sync" else "async def f():\n    return {'n': 5}\n"
    wf(project, body + """
@workflow
def inproc(ctx):
    return Task("f", output=Out, run=f)
""")
    outcome = inproc.up()
    assert outcome.status == "finished" and outcome.error is None
    assert project.query("SELECT n FROM out WHERE run_id = ?", (outcome.run_id,)) == [(5,)]


def test_a_sync_task_outliving_its_run_is_discarded_quietly(inproc, project, monkeypatch):
    """Regression: a timed-out sync task's thread that returns (or raises) after the run's loop
    closed must not die with 'Event loop is closed' (the engine may be embedded in a server)."""
    import threading

    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    wf(project, """
def late_value():
    time.sleep(0.3)
    log(f"value-done {threading.get_ident()}")
    return {"n": 1}

def late_error():
    time.sleep(0.3)
    log(f"error-done {threading.get_ident()}")
    raise ValueError("too late")

@workflow
def late(ctx):
    return Parallel(
        Task("value", output=Out, run=late_value, timeout=0.05, continue_on_fail=True),
        Task("error", output=Out, run=late_error, timeout=0.05, continue_on_fail=True),
    )
""")
    outcome = inproc.up()
    assert outcome.status == "finished"
    assert {a["status"] for a in attempts(project, "value") + attempts(project, "error")} == {"failed"}
    log_file = project.root / "log.txt"
    # The late outcome has landed once both task threads have ENDED: a thread's uncaught exception
    # reaches threading.excepthook before the thread ends, so only then can `errors` be trusted.
    lines = wait_until(lambda: log_file.exists() and len(found := log_file.read_text().split("\n")[:-1]) == 2 and found,
                       what="both late tasks to finish their bodies")
    task_threads = {int(line.split()[1]) for line in lines}
    wait_until(lambda: not task_threads & {t.ident for t in threading.enumerate()}, what="the timed-out task threads to end")
    assert errors == []
    assert project.query("SELECT count(*) FROM sqlite_master WHERE name = 'out'") == [(0,)]


# -- the waits' seams: SQL only in storage, outcomes instead of call-backs, typed wait specs -------


def _module_tree(module: str):
    import ast
    import importlib

    source_file = importlib.import_module(module).__file__
    assert source_file is not None
    with open(source_file, encoding="utf-8") as f:
        return ast.parse(f.read())


def _imports(tree) -> set[str]:
    import ast

    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def _sql_calls(tree) -> list[str]:
    import ast

    return [
        node.func.attr for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("execute", "executemany", "_rows")
    ]


@pytest.mark.parametrize("module", ["smithers.engine.waits", "smithers.engine.subflow", "smithers.decisions"])
def test_waits_and_decisions_hold_no_sql(module):
    tree = _module_tree(module)
    assert _sql_calls(tree) == []
    assert "sqlite3" not in _imports(tree)


def test_supervisor_wait_checks_hold_no_sql():
    import ast

    tree = _module_tree("smithers.supervisor")
    checks = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in ("_arrived", "_next_timer")]
    assert len(checks) == 2
    assert [call for check in checks for call in _sql_calls(check)] == []


def test_waits_never_reach_back_into_the_loop():
    import ast

    tree = _module_tree("smithers.engine.waits")
    assert not any(name.endswith("loop") for name in _imports(tree))
    assert "RunLoop" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def test_storage_waits_imports_nothing_above_storage():
    allowed_smithers = {"..states", "..errors", ".store", ".output_tables", ".dialect"}
    for name in _imports(_module_tree("smithers.storage.waits")):
        if name.startswith("."):
            assert name in allowed_smithers, name
        else:
            assert name.split(".")[0] in {"__future__", "json", "sqlite3", "typing", "collections", "pydantic"}, name


def test_wait_specs_are_typed_and_frozen():
    import dataclasses

    from pydantic import BaseModel

    from smithers import Approval, HumanTask, Signal, Timer
    from smithers.authoring.human import ApprovalWait, HumanWait, SignalWait, TimerWait

    class Ping(BaseModel):
        n: int

    approval = Approval("ship", request="Ship it?", on_deny="skip", mode="select", options=["a", "b"])
    assert approval.wait == ApprovalWait(
        mode="select", on_deny="skip", request={"title": "Ship it?", "summary": None, "metadata": {}},
        options=({"key": "a", "label": None, "summary": None}, {"key": "b", "label": None, "summary": None}),
    )
    assert approval.wait.request_json()["on_deny"] == "skip"
    assert isinstance(HumanTask("ask", output=Ping, prompt="n?").wait, HumanWait)
    signal = Signal("go", schema=Ping, correlation_id="c1", timeout="2m", on_timeout="skip")
    assert signal.wait == SignalWait(
        name="go", correlation_id="c1", timeout=120.0, on_timeout="skip", schema=Ping.model_json_schema(),
    )
    assert signal.wait.meta() == {"signal": "go", "correlation_id": "c1", "schema": Ping.model_json_schema()}
    timer = Timer("nap", duration="1s")
    assert (timer.wait, timer.wait.kind) == (TimerWait(duration=1.0, until_ms=None), "timer")
    with pytest.raises(dataclasses.FrozenInstanceError):
        timer.wait.duration = 2.0  # type: ignore[misc]
