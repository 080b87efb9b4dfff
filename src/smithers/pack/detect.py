"""What ``smithers init`` finds in a repository and on this machine, without running anything:
the repository's lint/test/coverage commands (from its build files) and the agents available
(agent CLIs on ``PATH``, API keys in the environment).

Both are pure functions of the files, ``PATH`` and the environment they are given, so tests
drive them with a temporary directory and a hand-made environment.

>>> detect_commands(Path("/nonexistent")).commands
{}
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

COMMAND_KINDS = ("lint", "test", "coverage")


@dataclass
class RepoCommands:
    """``commands[kind]`` is the shell command; ``sources[kind]`` says which file it came from."""

    commands: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def offer(self, kind: str, command: str, source: str) -> None:
        """Keep the first command found for ``kind``: detectors run from most to least explicit."""
        if kind not in self.commands:
            self.commands[kind] = command
            self.sources[kind] = source


def detect_commands(root: Path) -> RepoCommands:
    """The repository's commands, most explicit source first: Makefile targets, package.json
    scripts, then what Python (pyproject/pytest), Cargo and Go projects conventionally run."""
    found = RepoCommands()
    for detector in (_makefile, _package_json, _python, _cargo, _go):
        detector(root, found)
    return found


_MAKE_TARGET = re.compile(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", re.MULTILINE)


def _makefile(root: Path, found: RepoCommands) -> None:
    for name in ("Makefile", "makefile", "GNUmakefile"):
        path = root / name
        if path.is_file():
            targets = set(_MAKE_TARGET.findall(path.read_text(encoding="utf-8", errors="replace")))
            for kind, candidates in (("lint", ("lint", "check-lint")), ("test", ("test", "tests", "check")),
                                     ("coverage", ("coverage", "cov", "test-coverage"))):
                target = next((t for t in candidates if t in targets), None)
                if target:
                    found.offer(kind, f"make {target}", name)
            return


def _package_json(root: Path, found: RepoCommands) -> None:
    path = root / "package.json"
    if not path.is_file():
        return
    try:
        scripts = json.loads(path.read_text(encoding="utf-8")).get("scripts") or {}
    except (ValueError, AttributeError):
        return  # not our file to judge; doctor shows that nothing was found there
    if not isinstance(scripts, dict):
        return
    runner = "pnpm" if (root / "pnpm-lock.yaml").exists() else "yarn" if (root / "yarn.lock").exists() else (
        "bun" if (root / "bun.lockb").exists() or (root / "bun.lock").exists() else "npm")
    for kind, candidates in (("lint", ("lint",)), ("test", ("test",)), ("coverage", ("coverage", "test:coverage", "test:cov"))):
        script = next((s for s in candidates if s in scripts), None)
        if script is None:
            continue
        if script == "test" and "no test specified" in str(scripts["test"]):
            continue  # npm init's placeholder exits 1 whatever the code does
        found.offer(kind, f"{runner} test" if script == "test" and runner != "bun" else f"{runner} run {script}", "package.json")


def _python(root: Path, found: RepoCommands) -> None:
    pyproject = root / "pyproject.toml"
    config: dict[str, object] = {}
    if pyproject.is_file():
        try:
            config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            config = {}
    text = pyproject.read_text(encoding="utf-8", errors="replace") if pyproject.is_file() else ""
    tool = config.get("tool") if isinstance(config.get("tool"), dict) else {}
    assert isinstance(tool, dict)
    has_pytest = (
        "pytest" in tool or "pytest" in text or (root / "pytest.ini").is_file() or (root / "conftest.py").is_file()
        or any((root / "tests").glob("test_*.py")) or any(root.glob("test_*.py"))
    )
    if not (pyproject.is_file() or has_pytest or (root / "setup.py").is_file()):
        return
    source = "pyproject.toml" if pyproject.is_file() else "tests/"
    prefix = "uv run " if (root / "uv.lock").is_file() else "python -m "
    if has_pytest:
        found.offer("test", f"{prefix}pytest -q", source)
        if "pytest-cov" in text or "pytest_cov" in text:
            found.offer("coverage", f"{prefix}pytest -q --cov", source)
    if "ruff" in tool or (root / "ruff.toml").is_file() or (root / ".ruff.toml").is_file():
        found.offer("lint", f"{prefix}ruff check .", source if "ruff" in tool else "ruff.toml")


def _cargo(root: Path, found: RepoCommands) -> None:
    if (root / "Cargo.toml").is_file():
        found.offer("test", "cargo test", "Cargo.toml")
        found.offer("lint", "cargo clippy -- -D warnings", "Cargo.toml")


def _go(root: Path, found: RepoCommands) -> None:
    if (root / "go.mod").is_file():
        found.offer("test", "go test ./...", "go.mod")
        found.offer("lint", "go vet ./...", "go.mod")
        found.offer("coverage", "go test -cover ./...", "go.mod")


# -- agents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentOption:
    """One way to reach a model: a CLI (``kind="cli"``) or an API through ModelAgent."""

    key: str  # "claude", "codex", "gemini", "pi", "anthropic-api", ...
    kind: str  # "cli" | "api"
    cls: str  # the smithers.agents class
    smart: str  # constructor arguments (Python source) for the smart and smart_tool tiers
    cheap: str  # constructor arguments for the cheap_fast tier
    needs: str  # what makes it available: a binary name or an env var list
    install: str  # how to get it


# Most capable first; the tiers keep this order. CLI agents come before API agents: they bring
# their own tools (files, shell) and login.
AGENT_OPTIONS: tuple[AgentOption, ...] = (
    AgentOption("claude", "cli", "ClaudeCode", "", 'model="haiku"', "claude",
                "npm install -g @anthropic-ai/claude-code, then run `claude` once to log in (or set ANTHROPIC_API_KEY)"),
    AgentOption("codex", "cli", "Codex", "", "", "codex",
                "npm install -g @openai/codex, then `codex login` (or set OPENAI_API_KEY)"),
    AgentOption("gemini", "cli", "Gemini", "", "", "gemini",
                "npm install -g @google/gemini-cli, then run `gemini` once to log in (or set GEMINI_API_KEY)"),
    AgentOption("pi", "cli", "Pi", "", "", "pi", "npm install -g @mariozechner/pi-coding-agent"),
    AgentOption("anthropic-api", "api", "ModelAgent", '"anthropic:claude-sonnet-4-5", tools=TOOLS',
                '"anthropic:claude-haiku-4-5", tools=TOOLS', "ANTHROPIC_API_KEY",
                'set ANTHROPIC_API_KEY and pip install "smithers-orchestrator[models]"'),
    AgentOption("openai-api", "api", "ModelAgent", '"openai:gpt-5", tools=TOOLS', '"openai:gpt-5-mini", tools=TOOLS',
                "OPENAI_API_KEY", 'set OPENAI_API_KEY and pip install "smithers-orchestrator[models]"'),
    AgentOption("google-api", "api", "ModelAgent", '"google:gemini-2.5-pro", tools=TOOLS',
                '"google:gemini-2.5-flash", tools=TOOLS', "GEMINI_API_KEY GOOGLE_API_KEY",
                'set GEMINI_API_KEY (or GOOGLE_API_KEY) and pip install "smithers-orchestrator[models]"'),
)

# env vars that let each CLI log in without an interactive login (from smithers.agents.discovery)
CLI_KEYS: dict[str, tuple[str, ...]] = {
    "claude": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
    "codex": ("OPENAI_API_KEY", "CODEX_API_KEY"),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "pi": ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"),
}


@dataclass(frozen=True)
class AgentAvailability:
    option: AgentOption
    available: bool
    evidence: str  # "claude at /usr/bin/claude", "ANTHROPIC_API_KEY is set" (never the key's value)
    credentials: str | None = None  # for a CLI: the env var that logs it in, if any is set


def detect_agents(env: Mapping[str, str]) -> list[AgentAvailability]:
    """Every agent option and whether this environment has it (a CLI on ``env["PATH"]``, an API
    key set in ``env``). Reads names only: no key's value is kept or printed."""
    path = env.get("PATH", "")
    result: list[AgentAvailability] = []
    for option in AGENT_OPTIONS:
        if option.kind == "cli":
            where = shutil.which(option.needs, path=path)
            keys = [k for k in CLI_KEYS.get(option.key, ()) if env.get(k)]
            result.append(AgentAvailability(option, where is not None, f"{option.needs} at {where}" if where else
                                            f"{option.needs} not on PATH", keys[0] if keys else None))
        else:
            keys = [k for k in option.needs.split() if env.get(k)]
            evidence = f"{keys[0]} is set" if keys else f"{' / '.join(option.needs.split())} not set"
            result.append(AgentAvailability(option, bool(keys), evidence))
    return result
