"""`smithers workflow list|path|create|doctor|run` through the real CLI in a fresh project, and
the seeded implement workflow end to end: scripted agents (the user's own agents.py), a real
pytest project whose test fails until the "agent" fixes the code, and the follow-up hints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import Project
from test_init_pack import env_with, fake_bin, init


@pytest.fixture
def seeded(project: Project, tmp_path: Path) -> tuple[Project, dict[str, str]]:
    env = env_with(project, fake_bin(tmp_path, "claude"))
    init(project, env)
    return project, env


def test_list_path_and_create(seeded) -> None:
    project, env = seeded
    listed = json.loads(project.cli("workflow", "list", "--json", env=env).stdout)
    by_id = {w["id"]: w for w in listed}
    assert {"hello", "implement", "review"} <= set(by_id)
    assert by_id["implement"] == {"id": "implement", "display_name": "Implement", "source": "seeded",
                                  "path": str(project.root / ".smithers" / "workflows" / "implement.py")}

    created = project.cli("workflow", "create", "fix-flaky-tests", "--json", env=env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["source"] == "user"
    listed = {w["id"]: w for w in json.loads(project.cli("workflow", "list", "--json", env=env).stdout)}
    assert listed["fix-flaky-tests"]["source"] == "user" and listed["fix-flaky-tests"]["display_name"] == "Fix Flaky Tests"
    path = project.cli("workflow", "path", "fix-flaky-tests", env=env)
    assert path.stdout.strip() == str(project.root / ".smithers" / "workflows" / "fix-flaky-tests.py")
    # the created workflow loads and renders (graph renders without running anything)
    graph = project.cli("graph", path.stdout.strip(), "--input", '{"prompt": "x"}', env=env)
    assert graph.returncode == 0, graph.stderr
    assert "work" in graph.stdout

    for bad in ("Fix_Tests", "x-", "a--b"):
        result = project.cli("workflow", "create", bad, env=env)
        assert result.returncode == 4 and repr(bad) in result.stderr, result.stderr
    duplicate = project.cli("workflow", "create", "implement", env=env)
    assert duplicate.returncode == 4 and "already exists" in duplicate.stderr


def test_unknown_workflow_exits_4_naming_it_and_the_known_ones(seeded) -> None:
    project, env = seeded
    for args in (("workflow", "run", "nope"), ("workflow", "path", "nope")):
        result = project.cli(*args, env=env)
        assert result.returncode == 4
        assert "unknown workflow 'nope'" in result.stderr and "hello, implement" in result.stderr


def test_workflow_commands_outside_a_project_say_to_run_init(project: Project) -> None:
    result = project.cli("workflow", "list")
    assert result.returncode == 4 and "smithers init" in result.stderr


def test_doctor_reports_tiers_missing_agents_and_commands(project: Project, tmp_path: Path) -> None:
    project.write("pyproject.toml", "[project]\nname='x'\n[tool.pytest.ini_options]\n")
    env = env_with(project, fake_bin(tmp_path, "claude"))
    init(project, env)
    report = json.loads(project.cli("workflow", "doctor", "--json", env=env).stdout)
    assert report["tiers"]["smart"] == ["claude-code"]
    assert report["tiers"]["cheap_fast"] == ["claude-code (haiku)"]
    missing = {m["agent"]: m for m in report["missing"]}
    assert "codex" in missing and "npm install -g @openai/codex" in missing["codex"]["fix"]
    assert [a["agent"] for a in report["available"]] == ["claude"]
    assert report["commands"] == {"test": "python -m pytest -q"}
    assert report["problems"] == []

    (project.root / ".smithers" / "config.toml").write_text("[commands]\n")
    nothing = env_with(project, fake_bin(tmp_path / "empty"))
    (project.root / ".smithers" / "agents.py").unlink()
    init(project, nothing)
    text = project.cli("workflow", "doctor", env=nothing)
    assert text.returncode == 0
    assert "tier smart: (empty)" in text.stdout and "missing claude" in text.stdout
    assert "no test command" in text.stdout and "init found 'python -m pytest -q'" in text.stdout


def test_run_hello_by_id_prints_follow_ups(seeded, run_id_of) -> None:
    project, env = seeded
    result = project.cli("workflow", "run", "hello", "--input", '{"name": "pack"}', env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_id_of([line for line in result.stdout.splitlines() if line.startswith("run ")][-1])
    assert project.query("select message from greeting where run_id = ?", (run_id,)) == [("Hello, pack!",)]
    assert 'next: smithers workflow run implement --prompt "..."' in result.stdout
    quiet = project.cli("workflow", "run", "hello", "--json", env=env)
    assert json.loads(quiet.stdout)["status"] == "finished"  # --json stays one document


SCRIPTED_AGENTS = '''
# smithers-source: user
"""My agents: scripted, for the test (a user may put any agent object here)."""
import json
from pathlib import Path
from smithers.testing import ScriptedAgent

ROOT = Path(__file__).resolve().parents[1]

def implement(request):
    with (ROOT / "prompts.log").open("a") as out:
        out.write(json.dumps(request.prompt) + "\\n")
    if "Validation FAILED" in request.prompt:  # fixes the code once told the tests fail
        (ROOT / "calc.py").write_text("def add(a, b):\\n    return a + b\\n")
    return {"summary": "edited calc.py", "files_changed": ["calc.py"]}

def review(request):
    return {"reviewer": "r", "approved": "PASSED" in request.prompt, "feedback": "tests must pass"}

MISSING = None
smart = [ScriptedAgent([lambda r: review(r) if "reviewer 1 of" in r.prompt else implement(r)], name="scripted")]
cheap_fast = smart
smart_tool = smart
'''


def test_run_implement_end_to_end_with_the_repositorys_real_tests(seeded, run_id_of) -> None:
    project, env = seeded
    root = project.root / ".smithers"
    project.write("calc.py", "def add(a, b):\n    return a - b\n")
    project.write("test_calc.py", "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    (root / "config.toml").write_text(f'[commands]\ntest = "{sys.executable} -m pytest -q -p no:cacheprovider test_calc.py"\n')
    (root / "agents.py").write_text(SCRIPTED_AGENTS)

    result = project.cli("workflow", "run", "implement", "--prompt", "make add() add", env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_id_of([line for line in result.stdout.splitlines() if line.startswith("run ")][-1])
    assert "next: smithers workflow run review" in result.stdout
    assert (project.root / "calc.py").read_text().endswith("return a + b\n")
    verdicts = project.query("select iteration, done from validation_verdict where run_id = ? order by iteration", (run_id,))
    assert verdicts == [(0, 0), (1, 1)]
    prompts = [json.loads(line) for line in (project.root / "prompts.log").read_text().splitlines()]
    assert "make add() add" in prompts[0] and "You are implementing a change" in prompts[0]  # --prompt through prompts/implement.md
    assert "test_calc.py" in prompts[0]  # the real test command is in the prompt
    assert "Validation FAILED" in prompts[1] and "assert" in prompts[1]

    # the user's agents.py (header `smithers-source: user`) survives init --force
    forced = init(project, env, "--force")
    assert "agents.py" in forced["kept"] and "ScriptedAgent" in (root / "agents.py").read_text()


def test_prompt_merges_into_input_and_a_missing_test_command_is_explained(seeded) -> None:
    project, env = seeded
    (project.root / ".smithers" / "config.toml").write_text("[commands]\n")
    result = project.cli("workflow", "run", "implement", "--prompt", "x", env=env)
    assert result.returncode == 4
    assert "no test command" in result.stderr and "config.toml" in result.stderr
    missing_prompt = project.cli("workflow", "run", "implement", "--input", '{"test_command": "true"}', env=env)
    assert missing_prompt.returncode == 4 and "prompt" in missing_prompt.stderr
    bad = project.cli("workflow", "run", "implement", "--input", "[1]", "--prompt", "x", env=env)
    assert bad.returncode == 4
