"""Long-run structure through the CLI: subflows (child runs), continue-as-new chains (explicit
and every N loop passes) and git worktrees edited in parallel."""

from __future__ import annotations

import json
import subprocess

CHAIN = """
from pydantic import BaseModel
from smithers import ContinueAsNew, Sequence, Task, workflow

class Count(BaseModel):
    gen: int
    previous: str | None = None

@workflow
def chain(ctx):
    gen = (ctx.carried or {}).get("gen", 1)
    return Sequence(
        Task("work", output=Count, value={"gen": gen, "previous": ctx.continued_from}),
        gen < 3 and ContinueAsNew({"gen": gen + 1}),
    )
"""


def test_a_three_run_continue_as_new_chain(project):
    project.write("chain.py", CHAIN)
    result = project.cli("up", "chain.py", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[-2] for line in lines[:2]] == ["as", "as"]  # "run A continued as B", printed as it happens
    runs = project.query("select run_id, status, continued_from, carried_json from _smithers_runs order by created_at_ms, run_id")
    assert [r[1] for r in runs] == ["continued", "continued", "finished"]
    first, second, third = (r[0] for r in runs)
    assert runs[1][2] == first and runs[2][2] == second
    assert json.loads(runs[2][3]) == {"gen": 3}
    rows = project.query("select run_id, gen, previous from count order by gen")
    assert rows == [(first, 1, None), (second, 2, first), (third, 3, second)]
    assert lines[-1] == f"run {third} finished"
    continued = project.query("select payload_json from _smithers_events where run_id = ? and type = 'RunContinuedAsNew'", (first,))
    assert json.loads(continued[0][0])["next_run_id"] == second
    logs = project.cli("logs", second, "--follow-ancestry")
    assert logs.returncode == 0
    headers = [line for line in logs.stdout.splitlines() if line.startswith("== run ")]
    assert headers == [f"== run {first} ==", f"== run {second} ==", f"== run {third} =="]


def test_a_failing_link_exits_with_the_last_runs_code(project):
    project.write("chain.py", CHAIN.replace('Task("work", output=Count, value={"gen": gen, "previous": ctx.continued_from})',
                                            'Task("work", output=Count, value={"gen": gen if gen < 2 else "broken"})'))
    result = project.cli("up", "chain.py", "--quiet")
    assert result.returncode == 1
    assert [r[0] for r in project.query("select status from _smithers_runs order by created_at_ms, run_id")] == ["continued", "failed"]


def test_a_loop_continues_as_new_every_n_passes_and_keeps_its_feedback(project):
    project.write("looper.py", """
from pydantic import BaseModel
from smithers import Loop, Task, workflow

class Step(BaseModel):
    n: int

@workflow
def looper(ctx):
    prev = ctx.output("step")
    return Loop(
        Task("step", output=Step, value={"n": prev.n + 1 if prev else 0}),
        id="count", until=prev is not None and prev.n >= 6, max_iterations=20, continue_as_new_every=3,
    )
""")
    result = project.cli("up", "looper.py", "--quiet")
    assert result.returncode == 0, result.stderr
    runs = project.query("select run_id, status from _smithers_runs order by created_at_ms, run_id")
    assert [r[1] for r in runs] == ["continued", "continued", "finished"]
    # each run holds its own passes (plus the newest one carried over for feedback): history stays small
    per_run = {r[0]: [row[0] for row in project.query("select n from step where run_id = ? order by iteration", (r[0],))] for r in runs}
    assert per_run[runs[0][0]] == [0, 1, 2]
    assert per_run[runs[1][0]] == [2, 3, 4, 5]
    assert per_run[runs[2][0]] == [5, 6]
    assert project.query("select iteration, done from _smithers_loops where run_id = ?", (runs[2][0],)) == [(6, 1)]


def test_subflows_run_as_child_runs(project):
    project.write("child.py", """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class In(BaseModel):
    x: int

class Square(BaseModel):
    value: int

class Note(BaseModel):
    text: str

@workflow(input=In)
def child(ctx):
    return Sequence(Task("square", output=Square, value={"value": ctx.input.x ** 2}), Task("note", output=Note, value={"text": "done"}))
""")
    project.write("parent.py", """
from pydantic import BaseModel
from smithers import Parallel, Subflow, Task, workflow

class Result(BaseModel):
    value: int

@workflow
def parent(ctx):
    return Parallel(*[Subflow(f"sq{i}", workflow="child.py", input={"x": i}, output=Result, result="square") for i in range(3)])
""")
    result = project.cli("up", "parent.py", "--quiet")
    assert result.returncode == 0, result.stderr
    parent_id = result.stdout.split()[1]
    children = project.query(
        "select run_id, status, parent_run_id, workflow from _smithers_runs where parent_run_id is not null order by run_id"
    )
    assert [(c[1], c[2], c[3]) for c in children] == [("finished", parent_id, "child")] * 3
    assert project.query("select node_id, value from result order by node_id") == [("sq0", 0), ("sq1", 1), ("sq2", 4)]
    # each child is a run of its own: inspectable and resumable on its own
    child = project.json("inspect", children[2][0])
    assert [n["id"] for n in child["nodes"]] == ["square", "note"]
    assert project.cli("resume", children[2][0], "--quiet").returncode == 0


def test_a_failing_subflow_fails_its_node_naming_the_child(project):
    project.write("child.py", """
from pydantic import BaseModel
from smithers import Task, workflow

class Out(BaseModel):
    value: int

def boom():
    raise RuntimeError("child exploded")

@workflow
def child(ctx):
    return Task("explode", output=Out, run=boom)
""")
    project.write("parent.py", """
from pydantic import BaseModel
from smithers import Subflow, workflow

class Out(BaseModel):
    value: int

@workflow
def parent(ctx):
    return Subflow("kid", workflow="child.py", output=Out)
""")
    result = project.cli("up", "parent.py", "--quiet")
    assert result.returncode == 1
    error = json.loads(project.query("select error_json from _smithers_attempts where node_id = 'kid'")[0][0])
    assert "child run" in error["message"] and "failed" in error["message"]


def test_two_worktrees_edited_in_parallel(project):
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=project.root, check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init")
    project.write("wf.py", """
import time
from pathlib import Path
from pydantic import BaseModel
from smithers import Parallel, Task, Worktree, workflow

class Edit(BaseModel):
    path: str
    started: float
    ended: float

def edit(name):
    def run(tc):
        started = time.time()
        time.sleep(0.4)
        target = Path(tc.cwd) / f"{name}.txt"
        target.write_text(name)
        return {"path": str(target), "started": started, "ended": time.time()}
    return run

@workflow
def wf(ctx):
    return Parallel(
        Worktree(".worktrees/a", Task("edit-a", output=Edit, run=edit("a"))),
        Worktree(".worktrees/b", Task("edit-b", output=Edit, run=edit("b")), branch="feature-b"),
    )
""")
    result = project.cli("up", "wf.py", "--quiet")
    assert result.returncode == 0, result.stderr
    rows = {r[0]: r[1:] for r in project.query("select node_id, path, started, ended from edit")}
    assert rows["edit-a"][0] == str(project.root / ".worktrees" / "a" / "a.txt")
    assert rows["edit-b"][0] == str(project.root / ".worktrees" / "b" / "b.txt")
    assert rows["edit-a"][1] < rows["edit-b"][2] and rows["edit-b"][1] < rows["edit-a"][2], "the two edits overlapped in time"
    listing = git("worktree", "list")
    assert ".worktrees/a" in listing and "[smithers/a]" in listing and "[feature-b]" in listing
    assert not (project.root / "a.txt").exists(), "the main checkout is untouched"


def test_a_worktree_outside_git_fails_the_task_with_a_hint(project):
    project.write("wf.py", """
from pydantic import BaseModel
from smithers import Task, Worktree, workflow

class Out(BaseModel):
    n: int

@workflow
def wf(ctx):
    return Worktree("wt", Task("t", output=Out, run=lambda: {"n": 1}))
""")
    result = project.cli("up", "wf.py", "--quiet")
    assert result.returncode == 1
    assert "not inside a git repository" in project.query("select error_json from _smithers_attempts")[0][0]
