"""Commands for coding agents that drive smithers: ``skill add`` and ``ask``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import DbOption, JsonOption, app

skill_app = typer.Typer(help="The agent skill that teaches a coding agent to use smithers.", no_args_is_help=True)
app.add_typer(skill_app, name="skill")


@skill_app.command("add")
def skill_add(
    agent: Annotated[str, typer.Option("--agent", help="Whose skill folder to write to.")] = "claude-code",
    path: Annotated[Path | None, typer.Option("--path", help="Write SKILL.md into this folder instead.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a SKILL.md that differs.")] = False,
    json_out: JsonOption = False,
) -> int:
    """Write a SKILL.md teaching an agent to author, run, watch and answer workflows.

    Example: smithers skill add --agent claude-code
    """
    from ..errors import UserError
    from ..mcp.skill import render, skill_path

    target = (path / "SKILL.md") if path is not None else skill_path(agent, Path.cwd())
    text = render()
    if target.exists() and target.read_text(encoding="utf-8") != text and not force:
        raise UserError(f"{target} exists and differs", hint="pass --force to overwrite it")
    changed = not target.exists() or target.read_text(encoding="utf-8") != text
    if changed:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    if json_out:
        typer.echo(json.dumps({"path": str(target), "changed": changed}))
    else:
        typer.echo(f"{'wrote' if changed else 'unchanged:'} {target}")
    return 0


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What to ask about your runs and workflows.")],
    agent: Annotated[str | None, typer.Option("--agent", help="claude-code, codex or gemini (default: the best installed).")] = None,
    db: DbOption = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Give up after this many seconds.")] = 600.0,
) -> int:
    """Ask a coding agent about your runs: it gets the smithers MCP tools and its answer is printed.

    Example: smithers ask "why did my last run fail?"
    """
    from ..mcp.ask import ask_agent, pick_agent

    chosen = pick_agent(agent)
    answer = ask_agent(chosen, question, db=db, cwd=Path.cwd(), timeout=timeout)
    typer.echo(answer)
    return 0

