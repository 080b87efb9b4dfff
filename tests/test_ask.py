"""The real ``claude`` CLI drives smithers through MCP, offline against the scripted fake
Anthropic server: after ``smithers mcp add``, ``claude -p`` calls ``mcp__smithers__*`` tools and the
fake sees their real results; ``smithers ask`` does the same with a per-invocation MCP config.
Also: which agent ``ask`` picks, and exit 4 when there is none."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from smithers.testing.cli_env import claude_env, codex_env, gemini_env
from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app, gemini_app, openai_app
from smithers.testing.fakes.anthropic import tool_results

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"

GATE = """
from pydantic import BaseModel
from smithers import Approval, Sequence, Task, workflow

class Out(BaseModel):
    path: str

@workflow
def gate(ctx):
    return Sequence(Task("build", output=Out, value={"path": "built"}), Approval("ship", request="Ship it?"))
"""


@pytest.fixture
def claude_bin() -> str:
    path = AGENTS_BIN / "claude"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the claude CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


@pytest.fixture
def waiting_run(project, run_id_of) -> str:
    """A run of the gate workflow, waiting for its approval, in the project's smithers.db."""
    project.write(".smithers/workflows/gate.py", GATE)
    result = project.cli("up", ".smithers/workflows/gate.py")
    assert result.returncode == 3, result.stdout + result.stderr
    return run_id_of(result.stdout)


def results_text(body: dict) -> str:
    return json.dumps([r.get("content") for r in tool_results(body)])


def agent_env(project, server: FakeServer, home: Path, path: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in project.env().items() if k not in ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT")}
    env.pop("SMITHERS_DB")  # the MCP server finds the project's smithers.db from its working directory
    env.update(claude_env(server.url, home))
    if path is not None:
        env["PATH"] = path
    return env


def test_claude_calls_the_registered_smithers_tools(project, waiting_run, claude_bin, tmp_path):
    """`smithers mcp add --agent claude-code`, then `claude -p`: the fake model asks for
    mcp__smithers__list_runs, then explain_run on the id it got back; each result reaches it."""
    def explain(body: dict) -> Reply:
        listed = results_text(body)
        assert waiting_run in listed, listed
        return Reply(tool_calls=[ToolCall("mcp__smithers__explain_run", {"run_id": waiting_run})])

    steps = [Reply(tool_calls=[ToolCall("mcp__smithers__list_runs", {})]), explain, "It waits for the approval of ship."]
    added = project.cli("mcp", "add", "--agent", "claude-code")
    assert added.returncode == 0 and ".mcp.json" in added.stdout, added.stderr
    with FakeServer(anthropic_app(steps)) as server:
        env = agent_env(project, server, tmp_path / "home")
        done = subprocess.run(
            [claude_bin, "-p", "--output-format", "json", "--allowedTools", "mcp__smithers", "--", "What is my run waiting for?"],
            cwd=project.root, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
        )
        requests = server.app.state.script.requests
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads(done.stdout)["result"] == "It waits for the approval of ship."
    assert len(requests) == 3
    listed = json.loads(tool_results(requests[1])[-1]["content"])
    assert listed["ok"] is True and [r["run_id"] for r in listed["data"]["runs"]] == [waiting_run]
    explained = json.loads(tool_results(requests[2])[-1]["content"])
    assert explained["data"]["status"] == "waiting-approval" and "ship" in explained["data"]["reason"]


def test_ask_attaches_the_server_for_one_invocation(project, waiting_run, claude_bin, tmp_path):
    steps = [
        Reply(tool_calls=[ToolCall("mcp__smithers__list_pending", {})]),
        lambda body: Reply(
            text=f"Run {waiting_run} waits for you: {json.loads(tool_results(body)[-1]['content'])['data']['items'][0]['title']}",
        ),
    ]
    with FakeServer(anthropic_app(steps)) as server:
        env = agent_env(project, server, tmp_path / "home", path=f"{AGENTS_BIN}{os.pathsep}{os.environ['PATH']}")
        done = project.cli("ask", "What is waiting for me?", timeout=240, env=env)
        requests = server.app.state.script.requests
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"Run {waiting_run} waits for you: Ship it?"
    assert waiting_run in results_text(requests[1])
    assert not (project.root / ".mcp.json").exists()  # nothing written to the agent's configuration


TOOLS = {"list_workflows", "run_workflow", "list_runs", "get_run", "explain_run", "get_run_events", "get_node",
         "get_chat_transcript", "list_pending", "approve", "deny", "send_signal", "answer_human", "cancel_run", "resume_run",
         "fork_run", "revert_attempt", "get_diff"}


@pytest.fixture
def home_outside_tmp():
    """A HOME outside /tmp: codex will not set up its sandbox helpers under a temp directory, and
    gemini offers only its read-only tools (no MCP tools) when HOME is under /tmp."""
    root = Path.home() / ".cache" / "smithers-tests"
    root.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="ask-home-", dir=root))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_ask_with_codex_offers_it_the_smithers_tools(project, waiting_run, home_outside_tmp):
    """codex gets the server as its `mcp__smithers` tool namespace in its very first request. (The
    fake OpenAI server cannot answer with a namespaced function call yet, so no call is made.)"""
    with FakeServer(openai_app(["One run waits for an approval."])) as server:
        env = {**project.env(), **codex_env(server.url, home_outside_tmp), "PATH": f"{AGENTS_BIN}{os.pathsep}{os.environ['PATH']}"}
        done = project.cli("ask", "What is waiting?", "--agent", "codex", timeout=240, env=env)
        requests = server.app.state.script.requests
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "One run waits for an approval."
    namespaces = {t["name"]: t for t in requests[0]["tools"] if t.get("type") == "namespace"}
    assert {t["name"] for t in namespaces["mcp__smithers"]["tools"]} == TOOLS


def test_ask_with_gemini_calls_a_tool(project, waiting_run, home_outside_tmp):
    def answer(body: dict) -> Reply:
        parts = [p for c in body.get("contents", []) for p in c.get("parts", []) if "functionResponse" in p]
        return Reply(text=f"seen: {json.dumps(parts)}")

    steps = [Reply(tool_calls=[ToolCall("mcp_smithers_list_runs", {})]), answer]
    with FakeServer(gemini_app(steps)) as server:
        env = {**project.env(), **gemini_env(server.url, home_outside_tmp), "PATH": f"{AGENTS_BIN}{os.pathsep}{os.environ['PATH']}"}
        done = project.cli("ask", "Which runs are there?", "--agent", "gemini", timeout=240, env=env)
        requests = server.app.state.script.requests
    offered = {fd["name"] for t in requests[0].get("tools") or [] for fd in t.get("functionDeclarations") or []}
    assert {f"mcp_smithers_{name}" for name in TOOLS} <= offered, offered
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("seen: ") and waiting_run in done.stdout and "waiting-approval" in done.stdout


# -- choosing the agent ------------------------------------------------------------------------


def fake_bin(folder: Path, *names: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        script = folder / name
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(folder)


@pytest.mark.parametrize(("installed", "expected"), [
    (("claude", "codex", "gemini"), "claude-code"), (("codex", "gemini"), "codex"), (("gemini",), "gemini"),
])
def test_pick_agent_prefers_claude_then_codex_then_gemini(tmp_path, monkeypatch, installed, expected):
    from smithers.mcp.ask import pick_agent

    monkeypatch.setenv("PATH", fake_bin(tmp_path / "bin", *installed))
    agent, path = pick_agent()
    assert agent == expected and Path(path).parent == tmp_path / "bin"
    assert pick_agent(installed[-1] if installed[-1] != "claude" else "claude")[0] in ("claude-code", "codex", "gemini")


def test_ask_without_an_agent_cli_exits_4(project, tmp_path):
    env = project.env(PATH=fake_bin(tmp_path / "empty"))
    done = subprocess.run([sys.executable, "-m", "smithers", "ask", "anything?"], cwd=project.root, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 4 and "no agent CLI is installed" in done.stderr and "claude" in done.stderr
    named = subprocess.run([sys.executable, "-m", "smithers", "ask", "x", "--agent", "codex"], cwd=project.root, env=env,
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert named.returncode == 4 and "codex is not installed" in named.stderr
    unknown = subprocess.run([sys.executable, "-m", "smithers", "ask", "x", "--agent", "cursor"], cwd=project.root, env=env,
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert unknown.returncode == 4 and "unknown agent 'cursor'" in unknown.stderr
