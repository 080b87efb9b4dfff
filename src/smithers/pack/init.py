"""``smithers init``: write ``.smithers/`` (the seeded workflows, their prompts, ``agents.py``,
``config.toml``, ``tickets/`` and a ``.gitignore``) without running anything or needing a key.

Ownership rule (also in docs/workflows.md): init records the SHA-256 of every file it writes in
``.smithers/.seeded.json``. On a later ``init`` a file is

- written when absent;
- refreshed (``updated``) when it still has the content init wrote — it is ours, the user never
  touched it, so a newer template or a new detection may replace it;
- ``kept`` when the user changed it (its hash differs from the recorded one), or when its header
  says ``smithers-source: user``;
- with ``--force``, a changed seeded file is replaced and the user's version saved next to it as
  ``<name>.bak``; a file marked ``smithers-source: user`` is still kept (that header is how a
  user takes a seeded file over for good). Files init does not seed are never touched.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .agents_gen import render_agents
from .detect import COMMAND_KINDS, AgentAvailability, RepoCommands, detect_agents, detect_commands
from .registry import SOURCE_HEADER, headers, seeded_files

MANIFEST = ".seeded.json"


@dataclass
class InitResult:
    root: str
    wrote: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # --force: the user's version is in <path>.bak
    agents: list[dict[str, object]] = field(default_factory=list)
    commands: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def render_config(found: RepoCommands) -> str:
    lines = [
        "# smithers-source: seeded",
        "# smithers-display-name: Repository commands",
        "# The commands the pack's workflows run. `test` validates every implement pass (ValidationLoop);",
        "# `lint` and `coverage` are handed to the agents. Detected by `smithers init`; edit freely.",
        "[commands]",
    ]
    for kind in COMMAND_KINDS:
        if kind in found.commands:
            lines.append(f"{kind} = {json.dumps(found.commands[kind])}  # from {found.sources[kind]}")
        else:
            lines.append(f'# {kind} = ""  # not detected: set it to your {kind} command')
    return "\n".join(lines) + "\n"


def planned_files(project_root: Path, env: Mapping[str, str]) -> tuple[dict[str, str], list[AgentAvailability], RepoCommands]:
    """Every file init seeds (relative to ``.smithers/``) with its content, and what it detected."""
    agents = detect_agents(env)
    commands = detect_commands(project_root)
    planned = seeded_files()
    planned["agents.py"] = render_agents(agents)
    planned["config.toml"] = render_config(commands)
    planned["tickets/.gitkeep"] = ""
    return planned, agents, commands


def read_manifest(smithers_dir: Path) -> dict[str, str]:
    path = smithers_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}  # a damaged manifest only makes init more careful: every differing file counts as the user's
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def init_project(project_root: Path, *, force: bool = False, env: Mapping[str, str] | None = None) -> InitResult:
    """Write ``project_root/.smithers/`` as the module docstring describes; return what happened."""
    smithers_dir = project_root / ".smithers"
    planned, agents, commands = planned_files(project_root, os.environ if env is None else env)
    manifest = read_manifest(smithers_dir)
    result = InitResult(root=str(smithers_dir))
    for rel, content in planned.items():
        path = smithers_dir / rel
        if not path.exists():
            _write(path, content)
            result.wrote.append(rel)
            manifest[rel] = sha256(content)
            continue
        current = path.read_text(encoding="utf-8", errors="replace")
        if current == content:
            result.unchanged.append(rel)
            manifest[rel] = sha256(content)
        elif headers(current).get(SOURCE_HEADER) == "user":
            result.kept.append(rel)
        elif manifest.get(rel) == sha256(current):
            _write(path, content)
            result.updated.append(rel)
            manifest[rel] = sha256(content)
        elif force:
            _write(path.with_name(path.name + ".bak"), current)
            _write(path, content)
            result.replaced.append(rel)
            manifest[rel] = sha256(content)
        else:
            result.kept.append(rel)
    _write(smithers_dir / MANIFEST, json.dumps({"version": 1, "files": dict(sorted(manifest.items()))}, indent=2) + "\n")
    result.agents = [{"agent": item.option.key, "kind": item.option.kind, "available": item.available, "evidence": item.evidence}
                     for item in agents]
    result.commands = {kind: {"command": cmd, "source": commands.sources[kind]} for kind, cmd in commands.commands.items()}
    return result


def _write(path: Path, content: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)
