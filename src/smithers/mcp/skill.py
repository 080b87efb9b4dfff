"""The agent skill (``smithers skill add``): a ``SKILL.md`` whose body is
``smithers/templates/agent_guide.md`` — the same text ``docs/agents-driving.md`` embeds between
its ``agent-guide`` markers (a test keeps the two identical), so the skill cannot drift from the docs."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SKILL_NAME = "smithers"
SKILL_DESCRIPTION = (
    "Author, run, watch and answer smithers workflows (durable AI-agent workflows in Python): write a "
    "@workflow file, start it with `smithers up --detach` or the smithers MCP tools, read `smithers why`, "
    "and answer approvals, human tasks and signals."
)
AGENT_DIRS = {"claude-code": Path(".claude") / "skills"}


def guide() -> str:
    """The shared text: how to author, run, watch and answer workflows."""
    return files("smithers.templates").joinpath("agent_guide.md").read_text(encoding="utf-8")


def render() -> str:
    """The whole ``SKILL.md``: front matter (``name``, ``description``), a title, the guide."""
    return (
        f"---\nname: {SKILL_NAME}\ndescription: {SKILL_DESCRIPTION}\n---\n\n"
        "# smithers: durable workflows for coding agents\n\n"
        "Use smithers when a job has several steps, needs approvals or must survive crashes. State lives in "
        "`smithers.db`; most commands take `--json` (machine-readable output) and `--db PATH|URL`.\n\n"
        + guide()
    )


def skill_path(agent: str, base: Path) -> Path:
    """Where ``agent`` finds project skills under ``base``: ``.claude/skills/smithers/SKILL.md``."""
    from ..errors import UserError

    if agent not in AGENT_DIRS:
        raise UserError(f"no skill location known for agent {agent!r}", hint=f"use --agent {' or '.join(AGENT_DIRS)}, or --path DIR")
    return base / AGENT_DIRS[agent] / SKILL_NAME / "SKILL.md"
