"""Point the real agent CLIs at a fake model server: each helper writes the CLI's config files
under ``home`` and returns the environment overrides to run it with.

The returned dict holds only overrides; pass it as an agent's ``env`` (``CliAgent`` merges it
over ``os.environ``)::

    with FakeServer(openai_app([...])) as server:
        agent = Codex(env=codex_env(server.url, home))
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# -- Codex and Gemini ------------------------------------------------------------------------

FAKE_OPENAI_KEY_VAR = "SMITHERS_FAKE_OPENAI_KEY"
CODEX_FAKE_MODEL = "fake-model"
GEMINI_FAKE_MODEL = "gemini-fake"


def codex_env(server_url: str, home: str | os.PathLike[str]) -> dict[str, str]:
    """Make ``codex`` use the fake OpenAI Responses server at ``server_url`` (``openai_app``).

    Writes ``home/.codex/config.toml`` with a provider ``fake`` (``wire_api = "responses"``,
    base URL ``{server_url}/v1``, key from ``SMITHERS_FAKE_OPENAI_KEY``, no HTTP or stream
    retries so a scripted error fails at once) and model ``fake-model``; returns ``HOME``,
    ``CODEX_HOME`` and the key.

    Keep ``home`` **outside /tmp**: codex refuses to create its sandbox helper binaries under a
    temporary directory, and then every command in ``-s workspace-write`` fails with
    "bwrap: execvp codex-linux-sandbox" while the JSON stream shows no command at all (pytest's
    ``tmp_path`` is under /tmp; the tests use ``~/.cache/smithers-tests/``). The codex model
    metadata for ``fake-model`` is unknown, so codex emits one harmless ``error`` item about it.
    """
    root = Path(home)
    codex_home = root / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    base_url = server_url.rstrip("/") + "/v1"
    (codex_home / "config.toml").write_text(
        f'model = "{CODEX_FAKE_MODEL}"\n'
        'model_provider = "fake"\n'
        "check_for_update_on_startup = false\n"
        "\n"
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f"base_url = {json.dumps(base_url)}\n"
        f'env_key = "{FAKE_OPENAI_KEY_VAR}"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n",
        encoding="utf-8",
    )
    return {"HOME": str(root), "CODEX_HOME": str(codex_home), FAKE_OPENAI_KEY_VAR: "sk-fake"}


def gemini_env(server_url: str, home: str | os.PathLike[str]) -> dict[str, str]:
    """Make ``gemini`` use the fake Gemini API server at ``server_url`` (``gemini_app``).

    Writes ``home/.gemini/settings.json`` selecting API-key auth (without it the CLI exits 41,
    "Invalid auth method selected"), with auto-update and usage statistics off; returns
    ``HOME``, ``GEMINI_API_KEY``, ``GOOGLE_GEMINI_BASE_URL``, ``GEMINI_CLI_TRUST_WORKSPACE=true``
    (an untrusted folder exits 55) and ``TMPDIR`` under ``home`` (the CLI writes error reports
    and shell scratch files there).
    """
    root = Path(home)
    gemini_home = root / ".gemini"
    gemini_home.mkdir(parents=True, exist_ok=True)
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "privacy": {"usageStatisticsEnabled": False},
    }
    (gemini_home / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return {
        "HOME": str(root), "GEMINI_API_KEY": "fake-gemini-key", "GOOGLE_GEMINI_BASE_URL": server_url.rstrip("/"),
        "GEMINI_CLI_TRUST_WORKSPACE": "true", "TMPDIR": str(tmp),
    }


# -- Claude Code and pi (both against the Anthropic Messages fake, ``anthropic_app``) ---------

FAKE_ANTHROPIC_KEY = "sk-fake"


def claude_env(server_url: str, home: str | os.PathLike[str]) -> dict[str, str]:
    """Claude Code against an Anthropic Messages fake at ``server_url``, with ``home`` as HOME.

    The key goes out as ``X-Api-Key``; other ways Claude Code could pick credentials or a
    cloud provider from the inherited environment are blanked out, and non-essential traffic
    (telemetry, update checks) is off, so nothing leaves 127.0.0.1."""
    home_dir = Path(home)
    (home_dir / ".claude").mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home_dir),
        "CLAUDE_CONFIG_DIR": str(home_dir / ".claude"),
        "ANTHROPIC_BASE_URL": server_url,
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
        "ANTHROPIC_AUTH_TOKEN": "",
        "CLAUDE_CODE_USE_BEDROCK": "",
        "CLAUDE_CODE_USE_VERTEX": "",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "IS_SANDBOX": "1",  # lets --dangerously-skip-permissions run as root (CI containers)
    }


PI_PROVIDER = "fake"
PI_MODEL = "fake-claude"


def pi_env(server_url: str, home: str | os.PathLike[str], *, model: str = PI_MODEL) -> dict[str, str]:
    """pi against an Anthropic Messages fake at ``server_url``, with ``home`` as HOME.

    Writes ``~/.pi/agent/models.json`` declaring a provider ``fake`` (api ``anthropic-messages``)
    with one model, and ``settings.json`` making it the default, so ``Pi()`` needs no
    ``provider``/``model`` options; startup network operations are off."""
    agent_dir = Path(home) / ".pi" / "agent"
    agent_dir.mkdir(parents=True, exist_ok=True)
    models = {"providers": {PI_PROVIDER: {
        "baseUrl": server_url, "api": "anthropic-messages", "apiKey": FAKE_ANTHROPIC_KEY, "models": [{"id": model}],
    }}}
    (agent_dir / "models.json").write_text(json.dumps(models, indent=2), encoding="utf-8")
    settings = {"defaultProvider": PI_PROVIDER, "defaultModel": model}
    (agent_dir / "settings.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return {
        "HOME": str(Path(home)),
        "PI_CODING_AGENT_DIR": str(agent_dir),
        "PI_OFFLINE": "1",
        "PI_TELEMETRY": "0",
        "PI_SKIP_VERSION_CHECK": "1",
    }
