"""`kanban` end to end with real git: each ticket in its own worktree and branch, a ValidationLoop
with the real tests there, a commit, then real merges into the current branch; a ticket that
never passes is reported `not-done` and not merged (the original reported every ticket a success)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project
from test_init_pack import env_with, fake_bin, init

AGENTS = '''
# smithers-source: user
from pathlib import Path
from smithers.testing import ScriptedAgent

def answer(request):
    cwd = Path(request.cwd)
    node = request.node_id
    if ":review:" in node:
        return {"reviewer": "r", "approved": "FAILED" not in request.prompt, "feedback": "tests must pass"}
    if "Add sub" in request.prompt:  # wrong at first; right once told the tests fail
        op = "-" if "Validation FAILED" in request.prompt else "+"
        (cwd / "sub.py").write_text(f"def sub(a, b):\\n    return a {op} b\\n")
        (cwd / "test_sub.py").write_text("from sub import sub\\n\\n\\ndef test_sub():\\n    assert sub(5, 3) == 2\\n")
    if "Add mul" in request.prompt:
        (cwd / "mul.py").write_text("def mul(a, b):\\n    return a * b\\n")
        (cwd / "test_mul.py").write_text("from mul import mul\\n\\n\\ndef test_mul():\\n    assert mul(2, 3) == 6\\n")
    if "Impossible" in request.prompt:
        (cwd / "test_impossible.py").write_text("def test_never():\\n    assert False\\n")
    return {"summary": f"worked in {cwd.name}", "files_changed": []}

MISSING = None
smart = [ScriptedAgent([answer], name="scripted")]
cheap_fast = smart_tool = smart
'''


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(project: Project, tmp_path: Path) -> tuple[Project, dict[str, str]]:
    env = env_with(project, fake_bin(tmp_path / "bin", "claude"))
    env["PATH"] += os.pathsep + os.path.dirname(shutil.which("git") or "/usr/bin/git")  # kanban runs git
    root = project.root
    project.write("calc.py", "def add(a, b):\n    return a + b\n")
    project.write("test_calc.py", "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    project.write(".gitignore", "smithers.db*\n.smithers/\nbin/\n__pycache__/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    init(project, env)
    smithers = root / ".smithers"
    (smithers / "config.toml").write_text(f'[commands]\ntest = "{sys.executable} -m pytest -q -p no:cacheprovider"\n')
    (smithers / "agents.py").write_text(AGENTS)
    return project, env


def test_kanban_implements_tickets_in_worktrees_and_merges_the_done_ones(repo) -> None:
    project, env = repo
    tickets = project.root / ".smithers" / "tickets"
    (tickets / "add-sub.md").write_text("# Add sub\n\nA sub() with a test.\n")
    (tickets / "add-mul.md").write_text("# Add mul\n\nA mul() with a test.\n")
    (tickets / "impossible.md").write_text("# Impossible\n\nCannot be done.\n")
    (tickets / "README.md").write_text("# How we write tickets\n")  # not a ticket

    result = project.cli("workflow", "run", "kanban", "--input", '{"max_iterations": 2}', env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = [line for line in result.stdout.splitlines() if line.startswith("run ")][-1].split()[1]

    outcomes = dict(project.query("select slug, status from ticket_outcome where run_id = ?", (run_id,)))
    assert outcomes == {"add-sub": "done", "add-mul": "done", "impossible": "not-done"}
    merged = project.query("select merged, conflicted, skipped from merge_report where run_id = ?", (run_id,))
    assert [tuple(sorted(__import__("json").loads(col)) for col in merged[0])] == [
        (["add-mul", "add-sub"], [], ["impossible"])
    ]
    root = project.root
    assert (root / "sub.py").read_text().endswith("a - b\n") and (root / "mul.py").is_file()  # merged into main
    assert not (root / "test_impossible.py").exists()
    branches = git(root, "branch", "--list", "ticket/*").split()
    assert {"ticket/add-sub", "ticket/add-mul", "ticket/impossible"} <= set(branches)
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert (root / ".smithers" / "worktrees" / "add-mul" / "mul.py").is_file()
    rounds = dict(project.query("select slug, rounds from ticket_outcome where run_id = ?", (run_id,)))
    assert rounds == {"add-sub": 2, "add-mul": 1, "impossible": 2}  # the failing tests reached add-sub's second pass
