"""Which CLI agents this machine has: binary on PATH, version, and whether credentials look
configured (checked by the presence of env vars or credential files; values are never read
out or printed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KnownCli:
    name: str  # the smithers class
    binary: str
    env_keys: tuple[str, ...]
    credential_files: tuple[str, ...]  # relative to $HOME
    install: str


KNOWN = (
    KnownCli("ClaudeCode", "claude", ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
             (".claude/.credentials.json",), "npm install -g @anthropic-ai/claude-code"),
    KnownCli("Codex", "codex", ("OPENAI_API_KEY", "CODEX_API_KEY"), (".codex/auth.json",), "npm install -g @openai/codex"),
    KnownCli("Gemini", "gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"),
             (".gemini/oauth_creds.json",), "npm install -g @google/gemini-cli"),
    KnownCli("Pi", "pi", ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"),
             (".pi/agent/auth.json", ".pi/agent/models.json"), "npm install -g @mariozechner/pi-coding-agent"),
)


def describe(cli: KnownCli, *, timeout: float = 10.0) -> dict[str, object]:
    path = shutil.which(cli.binary)
    version = None
    if path:
        try:
            done = subprocess.run(
                [path, "--version"], check=False, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            version = (done.stdout.strip() or done.stderr.strip()).splitlines()[-1] if (done.stdout or done.stderr) else None
        except (OSError, subprocess.TimeoutExpired):
            version = None
    home = Path(os.environ.get("HOME", "~")).expanduser()
    found_env = [key for key in cli.env_keys if os.environ.get(key)]
    found_files = [f"~/{rel}" for rel in cli.credential_files if (home / rel).is_file()]
    return {
        "agent": cli.name, "binary": cli.binary, "path": path, "version": version, "installed": path is not None,
        "credentials": bool(found_env or found_files), "credential_sources": found_env + found_files,
        "install": cli.install,
    }


def discover() -> list[dict[str, object]]:
    return [describe(cli) for cli in KNOWN]
