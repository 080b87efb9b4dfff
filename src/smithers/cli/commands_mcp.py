"""``smithers mcp``: serve the MCP tools over stdio; ``mcp add|remove`` register the server in a
coding agent's own configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import DbOption, JsonOption, app

mcp_app = typer.Typer(
    help="The MCP server for coding agents: `smithers mcp` serves it over stdio; add/remove register it in an agent's config.",
    invoke_without_command=True,
)
app.add_typer(mcp_app, name="mcp")

AgentOpt = Annotated[str, typer.Option("--agent", help="claude-code, codex or gemini.")]
ScopeOpt = Annotated[str, typer.Option("--scope", help="project (files in this folder) or user (your home folder).")]
ProjectOpt = Annotated[Path | None, typer.Option("--project", help="The project folder (default: the current one).", show_default=False)]


@mcp_app.callback()
def mcp(
    ctx: typer.Context,
    db: DbOption = None,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="The project: where .smithers/workflows is and runs start (default: cwd).", show_default=False),
    ] = None,
) -> int:
    """Serve smithers' MCP tools over stdio (what an agent's MCP config starts).

    Example: smithers mcp --db .smithers/smithers.db
    """
    if ctx.invoked_subcommand is not None:
        return 0
    from ..storage.target import db_target

    try:
        from ..mcp.server import serve_stdio
    except ImportError as err:
        from ..errors import UserError

        raise UserError(f"the MCP server needs the mcp package ({err})", hint="pip install 'smithers-orchestrator[mcp]'") from None
    serve_stdio(db_target(db), (root or Path.cwd()).resolve())
    return 0


@mcp_app.command("add")
def mcp_add(
    agent: AgentOpt,
    scope: ScopeOpt = "project",
    project: ProjectOpt = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Register `smithers mcp` in the agent's own configuration (idempotent).

    Example: smithers mcp add --agent claude-code
    """
    from ..mcp.register import ServerCommand, add

    result = add(agent, scope, (project or Path.cwd()).resolve(), ServerCommand.default(db))
    _report(result, json_out, "added smithers to" if result["changed"] else "smithers is already in")
    return 0


@mcp_app.command("remove")
def mcp_remove(agent: AgentOpt, scope: ScopeOpt = "project", project: ProjectOpt = None, json_out: JsonOption = False) -> int:
    """Take `smithers mcp` out of the agent's configuration (idempotent).

    Example: smithers mcp remove --agent codex --scope user
    """
    from ..mcp.register import remove

    result = remove(agent, scope, (project or Path.cwd()).resolve())
    _report(result, json_out, "removed smithers from" if result["changed"] else "smithers was not in")
    return 0


def _report(result: dict[str, Any], json_out: bool, what: str) -> None:
    if json_out:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"{what} {result['path']} ({result['agent']}, {result['scope']} scope)")
