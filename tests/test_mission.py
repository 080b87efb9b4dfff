"""`mission`: the plan waits for a person's approval; approved, the milestones run in order, each
a ValidationLoop with the real tests and told what the earlier ones did; denied, nothing runs
and the report says so."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import Project
from test_init_pack import env_with, fake_bin, init

AGENTS = '''
# smithers-source: user
import json
from pathlib import Path
from smithers.testing import ScriptedAgent

ROOT = Path(__file__).resolve().parents[1]

def answer(request):
    with (ROOT / "prompts.log").open("a") as out:
        out.write(json.dumps({"node": request.node_id, "prompt": request.prompt}) + "\\n")
    node, cwd = request.node_id, Path(request.cwd)
    if node == "mission:plan":
        return {"summary": "arithmetic", "milestones": [
            {"title": "Add sub", "description": "sub()", "acceptance_criteria": ["sub(5, 3) == 2"]},
            {"title": "Add mul", "description": "mul()", "acceptance_criteria": []}]}
    if ":review:" in node:
        return {"reviewer": "r", "approved": "FAILED" not in request.prompt, "feedback": "tests must pass"}
    if node == "mission:m1:implement":
        op = "-" if "Validation FAILED" in request.prompt else "+"
        (cwd / "sub.py").write_text(f"def sub(a, b):\\n    return a {op} b\\n")
        (cwd / "test_sub.py").write_text("from sub import sub\\n\\n\\ndef test_sub():\\n    assert sub(5, 3) == 2\\n")
        return {"summary": "added sub.py", "files_changed": ["sub.py"]}
    if node == "mission:m2:implement":
        (cwd / "mul.py").write_text("def mul(a, b):\\n    return a * b\\n")
        return {"summary": "added mul.py", "files_changed": ["mul.py"]}
    raise RuntimeError(node)

MISSING = None
smart = [ScriptedAgent([answer], name="scripted")]
cheap_fast = smart_tool = smart
'''


@pytest.fixture
def repo(project: Project, tmp_path: Path) -> tuple[Project, dict[str, str]]:
    env = env_with(project, fake_bin(tmp_path, "claude"))
    init(project, env)
    smithers = project.root / ".smithers"
    (smithers / "agents.py").write_text(AGENTS)
    (smithers / "config.toml").write_text(f'[commands]\ntest = "{sys.executable} -m pytest -q -p no:cacheprovider"\n')
    project.write("test_ok.py", "def test_ok():\n    pass\n")
    return project, env


def start(project: Project, env: dict[str, str]) -> str:
    first = project.cli("workflow", "run", "mission", "--prompt", "arithmetic", env=env, timeout=120)
    assert first.returncode == 3, first.stdout + first.stderr  # waiting for the plan's approval
    assert "Add sub" in json.dumps(json.loads(project.cli("inbox", "--json", env=env).stdout))
    return [line for line in first.stdout.splitlines() if line.startswith("run ")][-1].split()[1]


def test_approved_mission_runs_milestones_in_order(repo) -> None:
    project, env = repo
    run_id = start(project, env)
    assert project.cli("approve", run_id, "--node", "mission:approve", env=env).returncode == 0
    done = project.cli("resume", run_id, env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project.root / "sub.py").read_text().endswith("a - b\n") and (project.root / "mul.py").is_file()
    log = [json.loads(line) for line in (project.root / "prompts.log").read_text().splitlines()]
    implements = [p for p in log if p["node"].endswith(":implement")]
    assert [p["node"] for p in implements] == ["mission:m1:implement", "mission:m1:implement", "mission:m2:implement"]
    assert "Add sub: added sub.py" in implements[2]["prompt"]  # milestone 2 knows what milestone 1 did
    ((report,),) = project.query("select milestones from mission_report where run_id = ?", (run_id,))
    assert [(m["title"], m["status"]) for m in json.loads(report)] == [("Add sub", "done"), ("Add mul", "done")]


def test_denied_plan_runs_nothing_and_says_so(repo) -> None:
    project, env = repo
    run_id = start(project, env)
    assert project.cli("deny", run_id, "--node", "mission:approve", "--note", "too big", env=env).returncode == 0
    done = project.cli("resume", run_id, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.query("select approved, note from mission_report where run_id = ?", (run_id,)) == [(0, "too big")]
    assert not (project.root / "sub.py").exists()
