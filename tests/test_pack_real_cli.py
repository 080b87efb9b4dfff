"""The first-run promise with a real agent CLI: `smithers init` with the real `claude` on PATH
generates agents.py, and `smithers workflow run implement --prompt ...` drives that claude —
against the scripted fake Anthropic server on 127.0.0.1 — to fix a real pytest project, the
failing test output reaching the second implement pass."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import PINNED_NODE_BIN, Project
from test_init_pack import env_with

from smithers.testing.cli_env import claude_env
from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"


def final(payload: dict[str, Any]) -> Reply:
    return Reply(text="Done.\n\n```json\n" + json.dumps(payload) + "\n```")


def model(root: Path):
    """The fake model: fixes calc.py once told the tests failed; reviewers approve passing work."""

    def reply(body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or []
        everything = json.dumps(messages)
        last = json.dumps(messages[-1]) if messages else ""
        if "tool_result" in last:  # the Write went through: finish the turn
            return final({"summary": "fixed add", "files_changed": ["calc.py"]})
        if "You are reviewer" in everything:
            passed = "PASSED" in everything
            return final({"reviewer": "claude", "approved": passed, "feedback": "ok" if passed else "tests fail"})
        if "Validation FAILED" in everything:
            fix = ToolCall("Write", {"file_path": str(root / "calc.py"), "content": "def add(a, b):\n    return a + b\n"})
            return Reply(text="Fixing add.", tool_calls=[fix])
        return final({"summary": "looked around", "files_changed": []})

    return reply


@pytest.fixture
def claude_bin() -> str:
    path = AGENTS_BIN / "claude"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the claude CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


@pytest.mark.slow
def test_init_then_workflow_run_implement_with_the_real_claude(project: Project, tmp_path: Path, claude_bin: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").symlink_to(claude_bin)  # only claude: no other agent CLI may reach a network
    root = project.root
    project.write("calc.py", "def add(a, b):\n    return a - b\n")
    project.write("test_calc.py", "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    with FakeServer(anthropic_app([model(root)])) as server:
        env = env_with(project, Path(f"{bin_dir}{os.pathsep}{PINNED_NODE_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin"))
        env.update(claude_env(server.url, tmp_path / "home"))
        made = project.cli("init", env=env)
        assert made.returncode == 0, made.stderr
        assert "agents: claude" in made.stdout
        assert "smart = [ClaudeCode()]" in (root / ".smithers" / "agents.py").read_text()
        test = f"{sys.executable} -m pytest -q -p no:cacheprovider test_calc.py"
        (root / ".smithers" / "config.toml").write_text(f'[commands]\ntest = "{test}"\n')

        result = project.cli("workflow", "run", "implement", "--prompt", "make add() add", env=env, timeout=300)
        requests = server.requests
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "calc.py").read_text().endswith("a + b\n")
    run_id = [line for line in result.stdout.splitlines() if line.startswith("run ")][-1].split()[1]
    assert project.query("select iteration, done from validation_verdict where run_id = ? order by iteration", (run_id,)) == [
        (0, 0), (1, 1)]
    prompts = [json.dumps(r["messages"]) for r in requests]
    assert any("make add() add" in p and "You are implementing a change" in p for p in prompts)
    assert any("Validation FAILED" in p and "assert" in p for p in prompts)  # real pytest output reached the model


@pytest.fixture
def pi_bin() -> str:
    path = AGENTS_BIN / "pi"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the pi CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


@pytest.mark.slow
def test_a_second_cli_pi_runs_the_plan_workflow(project: Project, tmp_path: Path, pi_bin: str) -> None:
    from smithers.testing.cli_env import pi_env

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pi").symlink_to(pi_bin)
    plan = {"summary": "two steps", "steps": ["write the test", "change add"]}
    with FakeServer(anthropic_app([final(plan)])) as server:
        env = env_with(project, Path(f"{bin_dir}{os.pathsep}{PINNED_NODE_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin"))
        env.update(pi_env(server.url, tmp_path / "home"))
        made = project.cli("init", env=env)
        assert made.returncode == 0 and "agents: pi" in made.stdout, made.stdout + made.stderr
        result = project.cli("workflow", "run", "plan", "--prompt", "make add() add", env=env, timeout=300)
        requests = server.requests
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = [line for line in result.stdout.splitlines() if line.startswith("run ")][-1].split()[1]
    assert project.query("select summary from plan_result where run_id = ?", (run_id,)) == [("two steps",)]
    assert any("make add() add" in json.dumps(r["messages"]) for r in requests)
