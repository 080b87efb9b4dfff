"""Operator commands for agents (`smithers agents`, `smithers chat`) and the agent bad-input
paths: an unknown agent name, a missing binary, a model that answers nothing parseable — each a
clear message on the attempt and in `smithers why`, with nothing lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKFLOW = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.testing import ScriptedAgent

class Verdict(BaseModel):
    score: int

class Note(BaseModel):
    text: str

chatty = ScriptedAgent(["Let me think.", '{"score": 4}'], session_id="sess-1")

@workflow
def wf(ctx):
    return Sequence(
        Task("first", output=Note, value={"text": "kept"}),
        Task("judge", output=Verdict, agent=AGENT, prompt="Judge it", retries=0),
    )
"""


@pytest.mark.agents
def test_agents_lists_the_clis_on_path_without_printing_secrets(project):
    env = project.env(PATH=f"{ROOT / '.agents' / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}",
                      ANTHROPIC_API_KEY="sk-very-secret-value")
    result = project.cli("agents", "--json", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    found = {item["binary"]: item for item in json.loads(result.stdout)}
    assert set(found) == {"claude", "codex", "gemini", "pi"}
    assert found["claude"]["installed"] and "Claude Code" in found["claude"]["version"]
    assert found["claude"]["credentials"] and found["claude"]["credential_sources"] == ["ANTHROPIC_API_KEY"]
    assert "sk-very-secret-value" not in result.stdout
    plain = project.cli("agents", env=env, timeout=120)
    assert "credentials: ANTHROPIC_API_KEY" in plain.stdout


def test_agents_says_how_to_install_a_missing_cli(project):
    result = project.cli("agents", env=project.env(PATH="/usr/bin:/bin"))
    assert result.returncode == 0
    assert "not installed" in result.stdout and "npm install -g @openai/codex" in result.stdout


def test_chat_prints_the_transcript(project, run_id_of):
    project.write("wf.py", WORKFLOW.replace("AGENT", "chatty"))
    run_id = run_id_of(project.cli("up", "wf.py", "--quiet").stdout)
    result = project.cli("chat", run_id, "judge")
    assert result.returncode == 0
    out = result.stdout
    assert "turn 1 (prompt)" in out and "Judge it" in out and "Let me think." in out
    assert "turn 2 (json-only)" in out and '{"score": 4}' in out
    lines = project.cli("chat", run_id, "--json").stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines][:2] == ["AgentTurn", "TokenUsageReported"]
    assert project.cli("chat", run_id, "nope").returncode == 4
    assert project.cli("chat", "no-such-run").returncode == 4


def _failed_judge(project, run_id_of, agent_expr: str) -> tuple[str, dict]:
    project.write("wf.py", WORKFLOW.replace("AGENT", agent_expr))
    result = project.cli("up", "wf.py", "--quiet")
    assert result.returncode == 1
    run_id = run_id_of(result.stdout)
    assert project.query("select text from note") == [("kept",)], "finished work is kept"
    error = json.loads(project.query("select error_json from _smithers_attempts where node_id = 'judge'")[0][0])
    return run_id, error


def test_an_unknown_agent_name(project, run_id_of):
    run_id, error = _failed_judge(project, run_id_of, '"claud"')
    assert error["code"] == "AGENT_CONFIG" and "unknown agent name 'claud'" in error["message"]
    assert len(project.query("select * from _smithers_attempts where node_id = 'judge'")) == 1, "not retried"
    why = project.cli("why", run_id)
    assert "unknown agent name 'claud'" in why.stdout and f"smithers resume {run_id}" in why.stdout


def test_a_missing_binary(project, run_id_of):
    missing = '__import__("smithers.agents", fromlist=["x"]).ClaudeCode(binary="/nonexistent/claude")'
    run_id, error = _failed_judge(project, run_id_of, missing)
    assert error["code"] == "AGENT_CONFIG" and "/nonexistent/claude" in error["message"]
    assert "not found" in project.cli("why", run_id).stdout or "does not exist" in project.cli("why", run_id).stdout


def test_a_model_that_answers_nothing_parseable(project, run_id_of):
    run_id, error = _failed_judge(project, run_id_of, 'ScriptedAgent(["I refuse to answer in JSON."])')
    assert error["code"] == "INVALID_OUTPUT" and "did not reply with JSON" in error["message"]
    assert "did not reply with JSON" in project.cli("why", run_id).stdout
