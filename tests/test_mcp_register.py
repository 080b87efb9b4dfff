"""``smithers mcp add|remove``: each agent's own configuration file, idempotent, the rest of the
file kept; then the real agent CLIs list (and, where they can, connect to) the server offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch) -> tuple[Path, Path, dict[str, str]]:
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "SMITHERS_DB"):
        monkeypatch.delenv(var, raising=False)
    env = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "SMITHERS_DB", "CLAUDECODE")}
    env.update(HOME=str(home), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", GEMINI_CLI_TRUST_WORKSPACE="true")
    return home, project, env


def smithers(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smithers", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def added(env, cwd, agent: str, scope: str, *extra: str) -> dict:
    result = smithers(env, cwd, "mcp", "add", "--agent", agent, "--scope", scope, "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def removed(env, cwd, agent: str, scope: str) -> dict:
    result = smithers(env, cwd, "mcp", "remove", "--agent", agent, "--scope", scope, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_claude_code_project_and_user_json_keep_everything_else(dirs):
    home, project, env = dirs
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}, "note": 1}))
    (home / ".claude.json").write_text(json.dumps({"numStartups": 7, "projects": {"/p": {"allowedTools": []}}}))

    first = added(env, project, "claude-code", "project", "--db", str(project / "my.db"))
    assert first == {"agent": "claude-code", "scope": "project", "path": str(project / ".mcp.json"), "changed": True}
    config = json.loads((project / ".mcp.json").read_text())
    assert config["note"] == 1 and config["mcpServers"]["other"] == {"command": "x"}
    entry = config["mcpServers"]["smithers"]
    assert entry["type"] == "stdio" and entry["args"][-3:] == ["mcp", "--db", str(project / "my.db")]
    before = (project / ".mcp.json").read_text()
    assert added(env, project, "claude-code", "project", "--db", str(project / "my.db"))["changed"] is False
    assert (project / ".mcp.json").read_text() == before

    assert added(env, project, "claude-code", "user")["path"] == str(home / ".claude.json")
    user = json.loads((home / ".claude.json").read_text())
    assert user["numStartups"] == 7 and user["projects"] == {"/p": {"allowedTools": []}} and "smithers" in user["mcpServers"]

    assert removed(env, project, "claude-code", "project")["changed"] is True
    assert json.loads((project / ".mcp.json").read_text()) == {"mcpServers": {"other": {"command": "x"}}, "note": 1}
    assert removed(env, project, "claude-code", "project")["changed"] is False
    assert removed(env, project, "claude-code", "user")["changed"] is True
    assert json.loads((home / ".claude.json").read_text())["mcpServers"] == {}


def test_claude_config_dir_is_where_user_scope_goes(dirs, tmp_path):
    _, project, env = dirs
    env["CLAUDE_CONFIG_DIR"] = str(tmp_path / "cfg")
    assert added(env, project, "claude-code", "user")["path"] == str(tmp_path / "cfg" / ".claude.json")


def test_codex_toml_keeps_comments_and_other_tables(dirs):
    home, project, env = dirs
    original = (
        '# my codex settings\nmodel = "o3"\n\n[mcp_servers.smithers]\ncommand = "old"\nargs = []\n\n'
        '[mcp_servers.smithers.env]\nA = "1"\n\n[mcp_servers.docs]\ncommand = "docs-server"  # keep me\n\n[profiles.fast]\nmodel = "mini"\n'
    )
    path = home / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text(original)

    assert added(env, project, "codex", "user")["changed"] is True
    text = path.read_text()
    parsed = tomllib.loads(text)
    assert parsed["model"] == "o3" and parsed["profiles"] == {"fast": {"model": "mini"}}
    assert parsed["mcp_servers"]["docs"] == {"command": "docs-server"}
    assert parsed["mcp_servers"]["smithers"]["args"][-1] == "mcp" and "env" not in parsed["mcp_servers"]["smithers"]
    assert "# my codex settings" in text and "# keep me" in text
    assert added(env, project, "codex", "user")["changed"] is False and path.read_text() == text

    assert removed(env, project, "codex", "user")["changed"] is True
    parsed = tomllib.loads(path.read_text())
    assert "smithers" not in parsed["mcp_servers"] and parsed["mcp_servers"]["docs"] and parsed["profiles"]
    assert removed(env, project, "codex", "user")["changed"] is False

    assert added(env, project, "codex", "project")["path"] == str(project / ".codex" / "config.toml")
    assert tomllib.loads((project / ".codex" / "config.toml").read_text())["mcp_servers"]["smithers"]["command"]


def test_gemini_settings_keep_other_keys(dirs):
    home, project, env = dirs
    settings = project / ".gemini" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"theme": "dark", "security": {"auth": {"selectedType": "gemini-api-key"}}}))
    assert added(env, project, "gemini", "project")["changed"] is True
    data = json.loads(settings.read_text())
    assert data["theme"] == "dark" and data["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert data["mcpServers"]["smithers"]["args"][-1] == "mcp"
    assert added(env, project, "gemini", "user")["path"] == str(home / ".gemini" / "settings.json")
    assert removed(env, project, "gemini", "project")["changed"] is True
    assert "smithers" not in json.loads(settings.read_text())["mcpServers"]


def test_bad_files_and_names_are_usage_errors_that_change_nothing(dirs):
    home, project, env = dirs
    (project / ".mcp.json").write_text("{not json")
    result = smithers(env, project, "mcp", "add", "--agent", "claude-code")
    assert result.returncode == 4 and ".mcp.json" in result.stderr and "not valid JSON" in result.stderr
    assert (project / ".mcp.json").read_text() == "{not json"
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text("model = \n")
    result = smithers(env, project, "mcp", "add", "--agent", "codex", "--scope", "user")
    assert result.returncode == 4 and "not valid TOML" in result.stderr
    result = smithers(env, project, "mcp", "add", "--agent", "cursor")
    assert result.returncode == 4 and "claude-code, codex, gemini" in result.stderr
    result = smithers(env, project, "mcp", "add", "--agent", "codex", "--scope", "global")
    assert result.returncode == 4 and "project, user" in result.stderr


# -- the real CLIs read what we wrote (offline) ------------------------------------------------


def agent_cli(name: str) -> str:
    path = AGENTS_BIN / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"the {name} CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


def listed(binary: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([binary, "mcp", "list"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize(("scope", "state"), [("user", "Connected"), ("project", "Pending approval")])
def test_claude_mcp_list_reads_the_server(dirs, scope, state):
    """User scope: claude starts `smithers mcp` and does the handshake. Project scope: claude lists it
    and waits for the user to approve a .mcp.json server once (interactive sessions only)."""
    _, project, env = dirs
    claude = agent_cli("claude")
    added(env, project, "claude-code", scope)
    out = listed(claude, env, project)
    assert "smithers:" in out and "-m smithers mcp" in out and state in out, out
    removed(env, project, "claude-code", scope)
    assert "smithers:" not in listed(claude, env, project)


def test_codex_mcp_list_shows_the_server(dirs):
    _home, project, env = dirs
    codex = agent_cli("codex")
    added(env, project, "codex", "user")
    out = listed(codex, env, project)
    rows = [line.split() for line in out.splitlines() if line.startswith("smithers ")]
    assert len(rows) == 1 and "mcp" in rows[0] and "enabled" in rows[0], out
    removed(env, project, "codex", "user")
    assert not [line for line in listed(codex, env, project).splitlines() if line.startswith("smithers ")]


def test_gemini_mcp_list_connects_to_the_server(dirs):
    _, project, env = dirs
    gemini = agent_cli("gemini")
    added(env, project, "gemini", "project")
    out = listed(gemini, env, project)
    assert "smithers" in out and "Connected" in out, out
    removed(env, project, "gemini", "project")
    assert "smithers:" not in listed(gemini, env, project)



def test_codex_reads_the_project_config_in_a_trusted_project(dirs):
    home, project, env = dirs
    codex = agent_cli("codex")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(f'[projects."{project}"]\ntrust_level = "trusted"\n')
    assert added(env, project, "codex", "project")["path"] == str(project / ".codex" / "config.toml")
    rows = [line.split() for line in listed(codex, env, project).splitlines() if line.startswith("smithers ")]
    assert len(rows) == 1 and "enabled" in rows[0]
    assert "smithers" not in (home / ".codex" / "config.toml").read_text()  # the user's file is untouched
