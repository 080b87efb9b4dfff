"""``smithers workflow``: find the workflows in ``.smithers/workflows/``, create a new one, and
explain the setup (doctor). Nothing here runs a workflow: ``workflow run`` hands the file to
``smithers up``'s own implementation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ErrorCode, UserError
from .registry import FOLLOW_UPS, NAME_HEADER, SOURCE_HEADER, headers, new_workflow_template

WORKFLOW_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class WorkflowEntry:
    id: str
    display_name: str
    source: str  # "seeded" | "user"
    path: str


def find_smithers_dir(start: Path) -> Path:
    """The nearest ``.smithers/`` at or above ``start``."""
    start = start.resolve()
    for folder in [start, *start.parents]:
        if (folder / ".smithers").is_dir():
            return folder / ".smithers"
    raise UserError(f"no .smithers/ folder at or above {start}", hint="run `smithers init` first", code=ErrorCode.INVALID_INPUT)


def title_of(workflow_id: str) -> str:
    """>>> title_of("tickets-create")
    'Tickets Create'"""
    return " ".join(part.capitalize() for part in workflow_id.split("-"))


def list_workflows(smithers_dir: Path) -> list[WorkflowEntry]:
    """Every ``workflows/*.py`` (no recursion; ``_``-prefixed helper modules are skipped), sorted by id."""
    folder = smithers_dir / "workflows"
    entries = []
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        if path.name.startswith("_") or not path.is_file():
            continue
        found = headers(path.read_text(encoding="utf-8", errors="replace")[:4000])
        source = "seeded" if found.get(SOURCE_HEADER) == "seeded" else "user"
        entries.append(WorkflowEntry(path.stem, found.get(NAME_HEADER) or title_of(path.stem), source, str(path)))
    return entries


def resolve_workflow(smithers_dir: Path, workflow_id: str) -> WorkflowEntry:
    entries = list_workflows(smithers_dir)
    for entry in entries:
        if entry.id == workflow_id:
            return entry
    known = ", ".join(e.id for e in entries) or "none (run `smithers init`)"
    raise UserError(
        f"unknown workflow {workflow_id!r} in {smithers_dir / 'workflows'}",
        hint=f"known workflows: {known}; `smithers workflow create {workflow_id}` makes a new one",
        code=ErrorCode.INVALID_INPUT,
    )


def follow_ups(smithers_dir: Path, workflow_id: str) -> list[str]:
    """The workflows worth running after ``workflow_id`` that this folder has."""
    present = {e.id for e in list_workflows(smithers_dir)}
    return [w for w in FOLLOW_UPS.get(workflow_id, ()) if w in present]


def create_workflow(smithers_dir: Path, workflow_id: str) -> WorkflowEntry:
    """Write ``workflows/<id>.py`` from the template; a bad or taken id is a UserError (exit 4)."""
    if not WORKFLOW_ID.match(workflow_id):
        raise UserError(
            f"invalid workflow id {workflow_id!r}",
            hint="use lower-case letters and digits in dash-separated words, e.g. fix-flaky-tests",
            code=ErrorCode.INVALID_INPUT,
        )
    path = smithers_dir / "workflows" / f"{workflow_id}.py"
    if path.exists():
        raise UserError(f"workflow {workflow_id!r} already exists: {path}", hint="pick another id, or edit that file",
                        code=ErrorCode.INVALID_INPUT)
    source = (new_workflow_template().replace("__ID__", workflow_id).replace("__TITLE__", title_of(workflow_id))
              .replace("__FUNC__", workflow_id.replace("-", "_")))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as out:  # "x": never clobber a file created meanwhile
        out.write(source)
    return WorkflowEntry(workflow_id, title_of(workflow_id), "user", str(path))


def doctor(smithers_dir: Path, env: Mapping[str, str] | None = None) -> dict[str, object]:
    """What each tier resolves to, which agents are missing (with how to get them), the
    repository's commands, and the workflows. Loads ``agents.py`` (it builds agent objects but
    starts nothing); runs no workflow and no agent."""
    from .detect import detect_agents, detect_commands
    from .project import TIER_NAMES, Project

    env = os.environ if env is None else env
    project = Project(smithers_dir)
    tiers: dict[str, object] = {}
    problems: list[str] = []
    agents_error = None
    try:
        module = project.agents_module()
    except UserError as err:
        module, agents_error = None, err.message
        problems.append(f"{err.message} ({err.hint})" if err.hint else err.message)
    for name in TIER_NAMES:
        chain = getattr(module, name, None) if module is not None else None
        members = list(chain) if isinstance(chain, (list, tuple)) else ([] if chain is None else [chain])
        tiers[name] = [_describe_agent(agent) for agent in members]
        if module is not None and not members:
            problems.append(f"tier {name} has no agent: a workflow using it stops before starting")
    found = detect_agents(env)
    missing = [{"agent": a.option.key, "kind": a.option.kind, "why": a.evidence, "fix": a.option.install} for a in found if not a.available]
    available = [{"agent": a.option.key, "kind": a.option.kind, "evidence": a.evidence} for a in found if a.available]
    if not available:
        problems.append("no agent CLI on PATH and no API key set: install one (see `missing`), then `smithers init`")
    configured = project.commands()
    detected = detect_commands(project.repo_root)
    if "test" not in configured:
        hint = f" (init found {detected.commands['test']!r} in {detected.sources['test']})" if "test" in detected.commands else ""
        problems.append(f"no test command in {smithers_dir / 'config.toml'}: validation has nothing to run{hint}")
    found_commands = {k: {"command": v, "source": detected.sources[k]} for k, v in detected.commands.items()}
    return {
        "smithers_dir": str(smithers_dir), "tiers": tiers, "agents_error": agents_error, "available": available, "missing": missing,
        "commands": configured, "detected_commands": found_commands,
        "workflows": [asdict(e) for e in list_workflows(smithers_dir)], "problems": problems,
    }


def _describe_agent(agent: object) -> str:
    model = getattr(agent, "model", None)
    name = getattr(agent, "name", None) or type(agent).__name__
    return f"{name} ({model})" if isinstance(model, str) and model else str(name)
