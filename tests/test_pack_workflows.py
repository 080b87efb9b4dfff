"""Each seeded workflow end to end through `smithers workflow run`, offline: the user's
agents.py holds scripted agents that answer by node id (and fix the code once told the tests
fail), and the repository's test command is a real pytest run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project
from test_init_pack import env_with, fake_bin, init

from smithers.pack.registry import headers, seeded_workflow_ids

AGENTS = '''
# smithers-source: user
import json
from pathlib import Path
from smithers.testing import ScriptedAgent

ROOT = Path(__file__).resolve().parents[1]

def answer(request):
    with (ROOT / "prompts.log").open("a") as out:
        out.write(json.dumps({"node": request.node_id, "iteration": request.iteration, "prompt": request.prompt}) + "\\n")
    node = request.node_id
    if ":review:" in node or node.startswith("review:"):
        return {"reviewer": "r", "approved": "FAILED" not in request.prompt, "feedback": "tests must pass"}
    if node.endswith(":implement"):
        if "Validation FAILED" in request.prompt:
            (ROOT / "calc.py").write_text("def add(a, b):\\n    return a + b\\n")
        return {"summary": "edited calc.py", "files_changed": ["calc.py"]}
    if node == "plan":
        return {"summary": "the plan", "steps": ["write a test", "fix add"]}
    if node == "research":
        return {"summary": "add subtracts", "key_findings": ["calc.add uses -"]}
    if node == "ticket":
        return {"title": "Make add() add", "description": "calc.add subtracts", "acceptance_criteria": ["add(2, 3) == 5"]}
    if node == "tickets":
        return {"summary": "two", "tickets": [
            {"title": "Export CSV", "description": "a", "acceptance_criteria": ["x"]},
            {"title": "Export JSON", "description": "b", "acceptance_criteria": []}]}
    if node == "ralph":
        return {"summary": f"did pass {request.iteration + 1}"}
    raise RuntimeError(f"unscripted node {node}")

MISSING = None
smart = [ScriptedAgent([answer], name="scripted")]
cheap_fast = smart_tool = smart
'''


@pytest.fixture
def repo(project: Project, tmp_path: Path) -> tuple[Project, dict[str, str]]:
    env = env_with(project, fake_bin(tmp_path, "claude"))
    init(project, env)
    root = project.root / ".smithers"
    project.write("calc.py", "def add(a, b):\n    return a - b\n")
    project.write("test_calc.py", "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    (root / "config.toml").write_text(f'[commands]\ntest = "{sys.executable} -m pytest -q -p no:cacheprovider test_calc.py"\n')
    (root / "agents.py").write_text(AGENTS)
    return project, env


def run(project: Project, env: dict[str, str], *args: str) -> tuple[str, str]:
    result = project.cli("workflow", "run", *args, env=env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    run_line = [line for line in result.stdout.splitlines() if line.startswith("run ")][-1]
    return run_line.split()[1], result.stdout


def prompts(project: Project) -> list[dict]:
    return [json.loads(line) for line in (project.root / "prompts.log").read_text().splitlines()]


def test_every_seeded_workflow_has_headers_and_is_planned() -> None:
    from smithers.pack.registry import PLANNED_WORKFLOWS, seeded_files

    files = seeded_files()
    for workflow_id in seeded_workflow_ids():
        found = headers(files[f"workflows/{workflow_id}.py"])
        assert found["smithers-source"] == "seeded" and found["smithers-display-name"], workflow_id
        assert workflow_id == "hello" or workflow_id in PLANNED_WORKFLOWS


@pytest.mark.parametrize("workflow_id", ["debug", "improve-test-coverage"])
def test_validation_workflows_fix_the_code_with_the_real_tests(repo, workflow_id: str) -> None:
    project, env = repo
    run_id, out = run(project, env, workflow_id, "--prompt", "add() is wrong")
    assert (project.root / "calc.py").read_text().endswith("a + b\n")
    done = project.query("select iteration, done from validation_verdict where run_id = ? order by iteration", (run_id,))
    assert done == [(0, 0), (1, 1)]
    nodes = {p["node"] for p in prompts(project)}
    assert f"{workflow_id}:implement" in nodes and f"{workflow_id}:review:0" in nodes
    assert ("next: smithers workflow run review" in out) == (workflow_id == "debug")  # coverage has no follow-up


def test_research_plan_implement_feeds_research_and_plan_forward(repo) -> None:
    project, env = repo
    run_id, _ = run(project, env, "research-plan-implement", "--prompt", "make add add", "--input", '{"tdd": true}')
    log = prompts(project)
    assert [p["node"] for p in log][:3] == ["research", "plan", "impl:implement"]
    assert "Test first" in log[0]["prompt"]
    assert "calc.add uses -" in log[1]["prompt"]  # research findings reach the plan
    assert "1. write a test" in log[2]["prompt"] and "add subtracts" in log[2]["prompt"]  # and both reach the implementer
    assert (project.root / "calc.py").read_text().endswith("a + b\n")
    assert project.query("select done from validation_verdict where run_id = ? order by iteration desc limit 1", (run_id,)) == [(1,)]


def test_plan_and_research_write_their_tables(repo) -> None:
    project, env = repo
    run_id, out = run(project, env, "plan", "--prompt", "p")
    assert project.query("select summary from plan_result where run_id = ?", (run_id,)) == [("the plan",)]
    assert "next: smithers workflow run research-plan-implement" in out and "next: smithers workflow run implement" in out
    run_id, _ = run(project, env, "research", "--prompt", "q")
    assert project.query("select summary from research_result where run_id = ?", (run_id,)) == [("add subtracts",)]


def test_ticket_workflows_write_ticket_files_for_kanban(repo) -> None:
    project, env = repo
    tickets = project.root / ".smithers" / "tickets"
    _, out = run(project, env, "ticket-create", "--prompt", "add should add")
    one = tickets / "make-add-add.md"
    assert one.read_text().startswith("# Make add() add\n") and "- [ ] add(2, 3) == 5" in one.read_text()
    assert "next: smithers workflow run implement" in out
    run(project, env, "tickets-create", "--prompt", "exports")
    assert sorted(p.name for p in tickets.glob("*.md")) == ["export-csv.md", "export-json.md", "make-add-add.md"]
    run(project, env, "tickets-create", "--prompt", "exports")  # same tickets again: reused, not duplicated
    assert len(list(tickets.glob("*.md"))) == 3


def test_ralph_is_bounded_by_its_input_and_feeds_the_last_summary_forward(repo) -> None:
    project, env = repo
    run_id, _ = run(project, env, "ralph", "--prompt", "keep going", "--input", '{"max_iterations": 3}')
    assert project.query("select count(*) from ralph_pass where run_id = ?", (run_id,)) == [(3,)]
    log = [p for p in prompts(project) if p["node"] == "ralph"]
    assert [p["iteration"] for p in log] == [0, 1, 2]
    assert "previous pass" not in log[0]["prompt"]
    assert "did pass 1" in log[1]["prompt"] and "did pass 2" in log[2]["prompt"]


def test_review_workflow_records_each_reviewer(repo) -> None:
    project, env = repo
    run_id, _ = run(project, env, "review")
    assert project.query("select node_id, approved from review_result where run_id = ?", (run_id,)) == [("review:0", 1)]


PLAN_BOUNDS = '''
import json, sys
from pydantic import BaseModel
from smithers.authoring.context import Ctx
from smithers.authoring.loader import load_workflow
from smithers.engine.render import render
from smithers.engine.state import RunState
from smithers.storage.store import Store

def minimal_input(model):
    """Every required field filled with the simplest value of its type."""
    values = {}
    for name, field in (model.model_fields.items() if model else []):
        if field.is_required():
            values[name] = {int: 1, float: 1.0, bool: True, list: []}.get(field.annotation, "x")
    return values

found = {}
overrides = json.loads(sys.argv[1])
for path in sys.argv[2:]:
    loaded = load_workflow(path)
    value, _ = loaded.workflow.validate_input({**minimal_input(loaded.workflow.input_model), **overrides.get(path, {})})
    store = Store.memory()
    state = RunState(store, "plan-check", loaded.models)
    rendered = render(loaded.workflow, Ctx(input=value, run_id="plan-check", reader=state), state.loop_state)
    found[path] = [
        {"node": d.node_id, "timeout": d.task.timeout, "heartbeat_timeout": d.task.heartbeat_timeout, "retries": d.retries}
        for d in rendered.tasks if d.mode == "agent"
    ]
    store.close()
print(json.dumps(found))
'''


# audit without features asks for feature-enum first
PLAN_INPUTS = {".smithers/workflows/audit.py": {"features": {"core": ["add two numbers"]}}}


def test_every_agent_task_of_the_pack_has_a_timeout_a_heartbeat_and_bounded_retries(repo) -> None:
    """DESIGN §10.4 / issue 11: every pack task has sensible timeouts, heartbeats and bounded
    retries. The first plan of each seeded workflow is rendered (nothing runs) and each agent
    task in it is checked."""
    project, env = repo
    project.write("plan_bounds.py", PLAN_BOUNDS)
    paths = [f".smithers/workflows/{workflow_id}.py" for workflow_id in seeded_workflow_ids() if workflow_id != "hello"]
    done = subprocess.run(
        [sys.executable, "plan_bounds.py", json.dumps(PLAN_INPUTS), *paths],
        cwd=project.root, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plans = json.loads(done.stdout)
    assert set(plans) == set(paths)
    # kanban's first plan only discovers the tickets (a compute task); its agent tasks are
    # ValidationLoop's, checked here through implement, debug and improve-test-coverage
    assert [path for path, tasks in plans.items() if not tasks] == [".smithers/workflows/kanban.py"]
    agent_tasks = [(path, task) for path, tasks in plans.items() for task in tasks]
    for path, task in agent_tasks:
        assert task["timeout"] and 0 < task["timeout"] <= 4 * 3600, (path, task)
        assert task["heartbeat_timeout"] and 0 < task["heartbeat_timeout"] <= task["timeout"], (path, task)
        assert 0 <= task["retries"] <= 3, (path, task)
