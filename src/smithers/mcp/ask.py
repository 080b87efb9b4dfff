"""``smithers ask "QUESTION"``: run the best installed agent CLI non-interactively with the
smithers MCP server attached for this one invocation (nothing is written to the agent's own
configuration) and return its answer.

- Claude Code: ``claude -p --mcp-config JSON --strict-mcp-config --allowedTools mcp__smithers``;
- Codex: ``codex exec -c mcp_servers.smithers.command=... -o LAST_MESSAGE_FILE``;
- Gemini CLI: a system settings file with the server (``GEMINI_CLI_SYSTEM_SETTINGS_PATH``),
  ``--allowed-mcp-server-names smithers``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import AgentError, UserError
from .register import SERVER_KEY, ServerCommand

PREFERENCE = ("claude-code", "codex", "gemini")
BINARIES = {"claude-code": "claude", "codex": "codex", "gemini": "gemini"}
NESTED_CLAUDE_VARS = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT")
SYSTEM_PROMPT = (
    "You answer questions about smithers workflows and runs in this project. Use the smithers MCP tools "
    "(list_runs, get_run, explain_run, get_run_events, list_pending, ...) to look things up; do not guess. "
    "Answer briefly and name run ids."
)


class NoAgentError(UserError):
    """No agent CLI is installed (or the one asked for is not)."""


def pick_agent(wanted: str | None = None) -> tuple[str, str]:
    """``(agent, binary path)``: the one asked for, else the first installed of claude > codex > gemini."""
    if wanted is not None:
        agent = "claude-code" if wanted == "claude" else wanted
        if agent not in BINARIES:
            raise UserError(f"unknown agent {wanted!r}", hint=f"use one of: {', '.join(PREFERENCE)}")
        path = shutil.which(BINARIES[agent])
        if path is None:
            raise NoAgentError(f"{agent} is not installed ({BINARIES[agent]} is not on PATH)", hint="see: smithers agents")
        return agent, path
    for agent in PREFERENCE:
        path = shutil.which(BINARIES[agent])
        if path is not None:
            return agent, path
    raise NoAgentError(
        "no agent CLI is installed (looked for claude, codex and gemini on PATH)",
        hint="install one, e.g. npm install -g @anthropic-ai/claude-code; see: smithers agents",
    )


def ask_agent(chosen: tuple[str, str], question: str, *, db: str | None, cwd: Path, timeout: float = 600.0) -> str:
    """Run the agent on ``question`` with the MCP server attached; return its final answer."""
    agent, binary = chosen
    server = ServerCommand.default(db)
    env = {k: v for k, v in os.environ.items() if k not in NESTED_CLAUDE_VARS}
    with tempfile.TemporaryDirectory(prefix="smithers-ask-") as scratch:
        prompt = f"{SYSTEM_PROMPT}\n\nQuestion: {question}"
        if agent == "claude-code":
            config = {"mcpServers": {SERVER_KEY: {"type": "stdio", "command": server.command, "args": server.args}}}
            argv = [binary, "-p", "--output-format", "json", "--mcp-config", json.dumps(config), "--strict-mcp-config",
                    "--allowedTools", f"mcp__{SERVER_KEY}", "--append-system-prompt", SYSTEM_PROMPT, "--", question]
        elif agent == "codex":
            last = Path(scratch) / "answer.txt"
            argv = [binary, "exec", "--skip-git-repo-check", "--ephemeral",
                    "-c", f"mcp_servers.{SERVER_KEY}.command={json.dumps(server.command)}",
                    "-c", f"mcp_servers.{SERVER_KEY}.args={json.dumps(server.args)}",
                    # required: wait for the server before the first model request (an optional one that is
                    # still starting is left out of it), and fail if it cannot start
                    "-c", f"mcp_servers.{SERVER_KEY}.required=true",
                    # codex starts MCP servers with a minimal environment: hand on what finds smithers and its database
                    "-c", f"mcp_servers.{SERVER_KEY}.env={_toml_inline(_forwarded(env))}",
                    "-o", str(last), prompt]
        else:
            settings = Path(scratch) / "settings.json"
            settings.write_text(json.dumps({"mcpServers": {SERVER_KEY: {"command": server.command, "args": server.args, "trust": True}}}))
            env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"] = str(settings)
            argv = [binary, "-p", prompt, "--allowed-mcp-server-names", SERVER_KEY, "-o", "json"]
        try:
            done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise AgentError(f"{agent} did not answer within {timeout:g}s", hint="pass a larger --timeout") from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            tail = [line for line in lines if "error" in line.lower()][:3] or lines[-5:]
            raise AgentError(f"{agent} exited with code {done.returncode}: " + " | ".join(tail))
        if agent == "codex":
            return last.read_text(encoding="utf-8").strip() if last.exists() else done.stdout.strip()
        return _answer(agent, done.stdout)


FORWARDED_VARS = ("PYTHONPATH", "VIRTUAL_ENV", "SMITHERS_DB")


def _forwarded(env: dict[str, str]) -> dict[str, str]:
    return {key: env[key] for key in FORWARDED_VARS if env.get(key)}


def _toml_inline(table: dict[str, str]) -> str:
    return "{" + ", ".join(f"{key} = {json.dumps(value)}" for key, value in table.items()) + "}"


def _answer(agent: str, stdout: str) -> str:
    """The final text from ``claude -p --output-format json`` (``result``) or ``gemini -o json`` (``response``)."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return stdout.strip()
    if agent == "claude-code":
        if data.get("is_error"):
            raise AgentError(f"claude-code failed: {data.get('result') or data.get('subtype')}")
        return str(data.get("result") or "").strip()
    return str(data.get("response") or "").strip()
