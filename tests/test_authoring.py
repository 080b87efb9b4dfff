"""The authoring API (nodes, policies, @workflow, the loader) and the bad-input contract: every
mistake a user can make in a workflow file or its input exits 4 with a message naming the
problem, and leaves no run behind."""

from __future__ import annotations

import random

import pytest
from pydantic import BaseModel

from smithers import (
    Branch,
    Loop,
    Parallel,
    RenderError,
    Retry,
    Sequence,
    Task,
    workflow,
)
from smithers.authoring.loader import load_workflow
from smithers.authoring.policies import parse_duration
from smithers.errors import InputError, WorkflowLoadError

HEADER = """
from pydantic import BaseModel
from smithers import workflow, Task, Sequence, Parallel, Branch, Loop

class Out(BaseModel):
    n: int
"""


class Out(BaseModel):
    n: int


def no_runs(project) -> bool:
    return project.query("SELECT count(*) FROM _smithers_runs") == [(0,)]


# -- nodes and policies, in process ------------------------------------------------------------


def test_task_modes():
    assert Task("s", output=Out, value={"n": 1}).mode == "static"
    assert Task("c", output=Out, run=lambda: {"n": 1}).mode == "compute"

    class Agent:
        async def run(self, request): ...

    assert Task("a", output=Out, agent=Agent(), prompt="hi").mode == "agent"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"output": Out}, "exactly one of value=, run= or agent=; it has none"),
        ({"output": Out, "value": {"n": 1}, "run": lambda: None}, "it has value and run"),
        ({"output": Out, "value": {"n": 1}, "run": lambda: None, "agent": object(), "prompt": "p"}, "value and run and agent"),
        ({"output": None, "value": {"n": 1}}, "has no output model"),
        ({"output": dict, "value": {"n": 1}}, "has no output model"),
        ({"output": Out, "agent": object()}, "needs prompt="),
        ({"output": Out, "run": 5}, "run= must be callable"),
        ({"output": Out, "value": {"n": 1}, "retries": -1}, "retries must be a non-negative int"),
        ({"output": Out, "value": {"n": 1}, "timeout": "soon"}, "is not a duration"),
    ],
)
def test_task_mistakes_name_the_task(kwargs, needle):
    with pytest.raises(RenderError) as info:
        Task("the-task", **kwargs)
    assert needle in str(info.value)
    assert "'the-task'" in str(info.value)


@pytest.mark.parametrize("bad_id", ["", None, "a@b", "a::b"])
def test_task_ids_are_checked(bad_id):
    with pytest.raises(RenderError):
        Task(bad_id, output=Out, value={"n": 1})


def test_containers_flatten_lists_and_drop_none_and_false():
    a, b, c = (Task(x, output=Out, value={"n": 1}) for x in "abc")
    assert Sequence(None, [a, [b, None, (c,)]], False, []).children == (a, b, c)
    assert Parallel([a], (b,), max_concurrency=2).children == (a, b)
    assert Branch(True, a, b).children == (a,)
    assert Branch(0, a, b).children == (b,)
    assert Branch(False, a).children == ()
    with pytest.raises(RenderError, match="child of type int"):
        Sequence(a, 3)
    with pytest.raises(RenderError, match="max_concurrency"):
        Parallel(a, max_concurrency=0)


def test_loop_arguments():
    body = Task("x", output=Out, value={"n": 1})
    with pytest.raises(RenderError, match="a Loop needs an id"):
        Loop(body)
    with pytest.raises(RenderError, match="max_iterations"):
        Loop(body, id="lp", max_iterations=0)
    with pytest.raises(RenderError, match="on_max_reached"):
        Loop(body, id="lp", on_max_reached="explode")
    loop = Loop(body, [None], id="lp", until=1)
    assert loop.until is True and loop.children == (body,) and loop.max_iterations == 5


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("7d", 604800.0), ("250ms", 0.25), ("12", 12.0), (None, None)],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5s", -1, True, "5 weeks"])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_task_durations_are_parsed():
    task = Task("t", output=Out, run=lambda: None, timeout="30m", heartbeat_timeout=45)
    assert task.timeout == 1800.0 and task.heartbeat_timeout == 45.0


def test_retry_backoff_delays():
    policy = Retry(initial=0.05, factor=2, max=1, jitter=0)
    assert [policy.delay(n) for n in range(1, 8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert Retry(initial="1s", factor=3, max="5m", jitter=0).delay(3) == 9.0
    jittered = Retry(initial=1, factor=2, max=100, jitter=0.1)
    rng = random.Random(7)
    samples = [jittered.delay(2, rng) for _ in range(200)]
    assert all(1.8 <= s <= 2.2 for s in samples) and len(set(samples)) > 1


def test_workflow_decorator_bare_and_with_arguments():
    @workflow
    def bare(ctx):
        return None

    class Inp(BaseModel):
        x: int

    @workflow(name="named", input=Inp, max_concurrency=2)
    def configured(ctx):
        return None

    assert bare.name == "bare" and bare.input_model is None and bare.max_concurrency == 4
    assert configured.name == "named" and configured.input_model is Inp and configured.max_concurrency == 2
    assert bare.validate_input(None) == ({}, {})
    value, as_json = configured.validate_input({"x": "3"})
    assert isinstance(value, Inp) and value.x == 3 and as_json == {"x": 3}
    with pytest.raises(InputError) as info:
        configured.validate_input({"x": "three"})
    assert "x:" in info.value.message and "Inp" in info.value.message


def test_loader_picks_one_workflow_or_asks_for_a_name(tmp_path):
    (tmp_path / "two.py").write_text(HEADER + """
@workflow
def first(ctx):
    return Task("a", output=Out, value={"n": 1})

@workflow(name="second")
def other(ctx):
    return Task("b", output=Out, value={"n": 2})
""")
    with pytest.raises(WorkflowLoadError, match="several workflows"):
        load_workflow(str(tmp_path / "two.py"))
    assert load_workflow(f"{tmp_path / 'two.py'}:second").workflow.name == "second"
    with pytest.raises(WorkflowLoadError, match="no workflow named 'third'"):
        load_workflow(f"{tmp_path / 'two.py'}:third")
    with pytest.raises(WorkflowLoadError, match="not found"):
        load_workflow(str(tmp_path / "missing.py"))


# -- bad input through the real CLI: exit 4, a clear message, and no run row ----------------


GOOD = HEADER + """
class Inp(BaseModel):
    count: int
    name: str = "x"

@workflow(input=Inp)
def good(ctx):
    return Task("a", output=Out, value={"n": ctx.input.count})
"""


def test_malformed_input_json(project):
    project.write("wf.py", GOOD)
    result = project.cli("up", "wf.py", "--input", '{"count": 1,')
    assert result.returncode == 4
    assert "--input is not valid JSON" in result.stderr
    result = project.cli("up", "wf.py", "--input", "[1, 2]")
    assert result.returncode == 4 and "must be a JSON object" in result.stderr
    assert no_runs(project)


def test_input_file_missing_or_malformed(project):
    project.write("wf.py", GOOD)
    project.write("in.json", "{nope")
    result = project.cli("up", "wf.py", "--input", "@in.json")
    assert result.returncode == 4 and "in.json is not valid JSON" in result.stderr
    result = project.cli("up", "wf.py", "--input", "@absent.json")
    assert result.returncode == 4 and "absent.json" in result.stderr
    project.write("in.json", '{"count": 3}')
    result = project.cli("up", "wf.py", "--input", "@in.json")
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT n FROM out") == [(3,)]


def test_input_failing_the_input_model(project):
    project.write("wf.py", GOOD)
    result = project.cli("up", "wf.py", "--input", '{"count": "many"}')
    assert result.returncode == 4
    assert "does not match Inp" in result.stderr and "count" in result.stderr
    result = project.cli("up", "wf.py")  # count is required
    assert result.returncode == 4 and "count" in result.stderr
    assert no_runs(project)


def test_syntax_error_in_the_workflow_file(project):
    project.write("wf.py", HEADER + "\n@workflow\ndef broken(ctx)\n    return None\n")
    result = project.cli("up", "wf.py")
    assert result.returncode == 4
    assert "wf.py:" in result.stderr and "syntax error" in result.stderr
    assert no_runs(project)


def test_import_error_in_the_workflow_file(project):
    project.write("wf.py", HEADER + "\nimport not_a_real_module_xyz\n")
    result = project.cli("up", "wf.py")
    assert result.returncode == 4
    assert "ModuleNotFoundError" in result.stderr and "not_a_real_module_xyz" in result.stderr
    assert no_runs(project)


def test_file_without_a_workflow(project):
    project.write("wf.py", HEADER + "\ndef not_decorated(ctx):\n    return None\n")
    result = project.cli("up", "wf.py")
    assert result.returncode == 4 and "no @workflow function found" in result.stderr
    assert no_runs(project)


def test_missing_workflow_file(project):
    result = project.cli("up", "nope.py")
    assert result.returncode == 4 and "workflow file not found" in result.stderr
    assert no_runs(project)


def test_two_workflows_need_a_name(project, run_id_of):
    project.write("wf.py", HEADER + """
@workflow
def first(ctx):
    return Task("a", output=Out, value={"n": 1})

@workflow
def second(ctx):
    return Task("b", output=Out, value={"n": 2})
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 4
    assert "several workflows (first, second)" in result.stderr and "wf.py:NAME" in result.stderr
    assert no_runs(project)
    result = project.cli("up", "wf.py:second")
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT workflow FROM _smithers_runs") == [("second",)]
    assert project.query("SELECT node_id, n FROM out") == [("b", 2)]
    run_id = run_id_of(result.stdout)
    # the spec with its name is what resume reloads
    assert project.query("SELECT workflow_spec FROM _smithers_runs")[0][0].endswith("wf.py:second")
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stderr


BAD_RENDERS = {
    "duplicate ids": (
        'return Parallel(Task("same", output=Out, value={"n": 1}), Sequence(Task("same", output=Out, value={"n": 2})))',
        "duplicate id 'same'",
    ),
    "duplicate loop and task id": (
        'return Sequence(Task("lp", output=Out, value={"n": 1}), Loop(Task("x", output=Out, value={"n": 1}), id="lp"))',
        "duplicate id 'lp'",
    ),
    "missing output model": ('return Task("no-model", output=None, value={"n": 1})', "task 'no-model' has no output model"),
    "output that is not a model": ('return Task("dict-out", output=dict, value={"n": 1})', "task 'dict-out' has no output model"),
    "two modes on one task": (
        'return Task("both", output=Out, value={"n": 1}, run=lambda: {"n": 2})',
        "task 'both' must have exactly one of value=, run= or agent=; it has value and run",
    ),
    "no mode": ('return Task("none", output=Out)', "task 'none' must have exactly one of value=, run= or agent=; it has none"),
    "loop without id": ('return Loop(Task("body", output=Out, value={"n": 1}))', "a Loop needs an id"),
    "a non-node child": ('return Sequence(Task("a", output=Out, value={"n": 1}), "oops")', "child of type str"),
    "a render that raises": ('return {"a": 1}["b"]', "raised KeyError while rendering"),
    "ctx.require before the output exists": ('return Task("b", output=Out, value={"n": ctx.require("a").n})', "ctx.require('a')"),
    "reserved field name": (
        'return Task("r", output=Reserved, value={"run_id": "x"})',
        "output model Reserved has a field named 'run_id'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RENDERS))
def test_render_errors_at_the_first_render_exit_4_and_create_no_run(project, case):
    body, needle = BAD_RENDERS[case]
    project.write("wf.py", HEADER + f"""
class Reserved(BaseModel):
    run_id: str

@workflow
def bad(ctx):
    {body}
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert needle in result.stderr, result.stderr
    assert no_runs(project)
    assert project.query("SELECT count(*) FROM _smithers_events") == [(0,)]


def test_a_render_that_raises_shows_the_traceback(project):
    project.write("wf.py", HEADER + """
def component(ctx):
    return ctx.input["missing"]

@workflow
def bad(ctx):
    return component(ctx)
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 4
    assert "workflow 'bad' raised KeyError while rendering" in result.stderr
    assert "in component" in result.stderr  # the traceback points at the user's code
    assert no_runs(project)


def test_bad_max_concurrency(project):
    project.write("wf.py", GOOD)
    result = project.cli("up", "wf.py", "--input", '{"count": 1}', "--max-concurrency", "0")
    assert result.returncode == 4 and "--max-concurrency" in result.stderr
    assert no_runs(project)
