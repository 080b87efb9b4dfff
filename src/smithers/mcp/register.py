"""Register ``smithers mcp`` in a coding agent's own configuration, and take it out again.

=============  ==================================  ==============================================
agent          project scope                       user scope
=============  ==================================  ==============================================
claude-code    ``.mcp.json`` ``mcpServers``         ``~/.claude.json`` ``mcpServers`` (or
                                                   ``$CLAUDE_CONFIG_DIR/.claude.json``)
codex          ``.codex/config.toml``               ``$CODEX_HOME/config.toml`` (``~/.codex``)
               ``[mcp_servers.smithers]``           ``[mcp_servers.smithers]``
gemini         ``.gemini/settings.json``            ``~/.gemini/settings.json`` ``mcpServers``
               ``mcpServers``
=============  ==================================  ==============================================

Claude Code asks once before it starts a server from a project's ``.mcp.json`` in an interactive
session (``claude -p`` starts it without asking; its tools still need ``--allowedTools``);
servers in user scope are not asked about.

Both verbs are idempotent and keep everything else in the file as it was (JSON files are
rewritten with the same content plus or minus one key; in TOML only the ``smithers`` tables
change, comments and layout elsewhere stay). Codex reads a project's ``.codex/config.toml``
only in a project it trusts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

SERVER_KEY = "smithers"
AGENTS = ("claude-code", "codex", "gemini")
SCOPES = ("project", "user")


@dataclass(frozen=True)
class ServerCommand:
    """How an agent starts the server."""

    command: str
    args: list[str]

    @classmethod
    def default(cls, db: str | None = None) -> ServerCommand:
        """``smithers mcp`` when ``smithers`` is on PATH, else this interpreter's ``-m smithers mcp``;
        ``--db`` only when one was given (otherwise the server finds the project's database)."""
        from ..storage.target import resolve_db_target

        extra = ["--db", resolve_db_target(db)] if db else []
        if shutil.which("smithers"):
            return cls("smithers", ["mcp", *extra])
        return cls(sys.executable, ["-m", "smithers", "mcp", *extra])


def config_path(agent: str, scope: str, project: Path, home: Path | None = None) -> Path:
    """The file ``agent`` reads its MCP servers from, for ``scope``."""
    check(agent, scope)
    home = home or Path.home()
    if agent == "claude-code":
        if scope == "project":
            return project / ".mcp.json"
        config_dir = os.environ.get("CLAUDE_CONFIG_DIR")  # Claude Code keeps its user config there when it is set
        return Path(config_dir) / ".claude.json" if config_dir else home / ".claude.json"
    if agent == "codex":
        codex_home = Path(os.environ["CODEX_HOME"]) if os.environ.get("CODEX_HOME") and scope == "user" else home / ".codex"
        return project / ".codex" / "config.toml" if scope == "project" else codex_home / "config.toml"
    return (project if scope == "project" else home) / ".gemini" / "settings.json"


def check(agent: str, scope: str) -> None:
    if agent not in AGENTS:
        raise UserError(f"unknown agent {agent!r}", hint=f"use one of: {', '.join(AGENTS)}")
    if scope not in SCOPES:
        raise UserError(f"unknown scope {scope!r}", hint=f"use one of: {', '.join(SCOPES)}")


def add(agent: str, scope: str, project: Path, server: ServerCommand, home: Path | None = None) -> dict[str, Any]:
    """Write the ``smithers`` server into the agent's configuration: ``{agent, scope, path, changed}``."""
    path = config_path(agent, scope, project, home)
    if agent == "codex":
        changed = _toml_set(path, server)
    else:
        entry: dict[str, Any] = {"command": server.command, "args": server.args}
        if agent == "claude-code":
            entry = {"type": "stdio", **entry, "env": {}}
        changed = _json_set(path, entry)
    return {"agent": agent, "scope": scope, "path": str(path), "changed": changed}


def remove(agent: str, scope: str, project: Path, home: Path | None = None) -> dict[str, Any]:
    """Take the ``smithers`` server out of the agent's configuration (nothing to do is fine)."""
    path = config_path(agent, scope, project, home)
    changed = _toml_set(path, None) if agent == "codex" else _json_set(path, None)
    return {"agent": agent, "scope": scope, "path": str(path), "changed": changed}


# -- JSON (Claude Code, Gemini CLI) ---------------------------------------------------------------


def _json_set(path: Path, entry: dict[str, Any] | None) -> bool:
    data = _read_json(path)
    servers = data.get("mcpServers")
    if servers is not None and not isinstance(servers, dict):
        raise UserError(f"{path}: mcpServers is not an object", hint="fix the file by hand, then run this again")
    servers = dict(servers or {})
    if entry is None:
        if SERVER_KEY not in servers:
            return False
        del servers[SERVER_KEY]
    else:
        if servers.get(SERVER_KEY) == entry:
            return False
        servers[SERVER_KEY] = entry
    data["mcpServers"] = servers
    _write(path, json.dumps(data, indent=2) + "\n")
    return True


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path}:{err.lineno}: not valid JSON ({err.msg}); left it unchanged", hint="fix the file, then run this again",
        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level is not a JSON object; left it unchanged")
    return data


# -- TOML (Codex) ----------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _toml_set(path: Path, server: ServerCommand | None) -> bool:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    current = (_parse_toml(path, text).get("mcp_servers") or {}).get(SERVER_KEY)
    wanted = None if server is None else {"command": server.command, "args": server.args}
    if current == wanted:
        return False
    kept = _without_server(text)
    if server is not None:
        block = f"[mcp_servers.{SERVER_KEY}]\ncommand = {json.dumps(server.command)}\nargs = {json.dumps(server.args)}\n"
        kept = kept.rstrip("\n") + ("\n\n" if kept.strip() else "") + block
    if (_parse_toml(path, kept).get("mcp_servers") or {}).get(SERVER_KEY) != wanted:
        # e.g. an inline `mcp_servers = {smithers = ...}`, which this does not rewrite
        raise UserError(f"{path}: could not {'add' if server else 'remove'} [mcp_servers.{SERVER_KEY}] cleanly; left it unchanged",
                        hint="edit the file by hand")
    _write(path, kept)
    return True


def _without_server(text: str) -> str:
    """``text`` without the ``[mcp_servers.smithers]`` table and its sub-tables."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        header = _HEADER.match(line)
        if header:
            name = header.group(1).replace('"', "").replace(" ", "")
            skipping = name == f"mcp_servers.{SERVER_KEY}" or name.startswith(f"mcp_servers.{SERVER_KEY}.")
        if not skipping:
            out.append(line)
    result = "".join(out)
    return re.sub(r"\n{3,}", "\n\n", result)


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML ({err}); left it unchanged", hint="fix the file, then run this again") from None


def _write(path: Path, text: str) -> None:
    """Replace the file atomically (an agent reading it never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.smithers-tmp")
    temp.write_text(text, encoding="utf-8")
    if path.exists():
        os.chmod(temp, path.stat().st_mode & 0o777)
    os.replace(temp, path)
