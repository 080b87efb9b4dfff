"""The workflow pack's commands: ``init`` (seed ``.smithers/``) and ``workflow list|run|path|create|doctor``.

``workflow run`` is ``smithers up`` on the workflow's file: the same function, options and exit
codes, plus ``--prompt`` and the follow-up suggestions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import JsonOption, app
from .commands_run import HotOption, InputOption, up

workflow_app = typer.Typer(help="The workflows in .smithers/workflows: list, run, create, check.", no_args_is_help=True)
app.add_typer(workflow_app, name="workflow")


@app.command()
def init(
    force: Annotated[bool, typer.Option("--force", help="Also replace seeded files you changed (yours is saved as NAME.bak).")] = False,
    json_out: JsonOption = False,
) -> int:
    """Seed .smithers/ here: workflows, prompts, agents.py (tiers from the agent CLIs on PATH and
    API keys set), config.toml (the repository's lint/test/coverage commands) and tickets/.
    Runs nothing and needs no key; a file you changed is kept unless --force.

    Example: smithers init && smithers workflow list
    """
    from ..pack.init import init_project

    result = init_project(Path.cwd(), force=force)
    if json_out:
        typer.echo(json.dumps(result.to_json()))
        return 0
    rel = ".smithers/"
    for path in result.wrote:
        typer.echo(f"wrote {rel}{path}")
    for path in result.updated:
        typer.echo(f"updated {rel}{path}")
    for path in result.replaced:
        typer.echo(f"replaced {rel}{path} (your version is in {rel}{path}.bak)")
    for path in result.kept:
        typer.echo(f"kept {rel}{path} (you changed it; `smithers init --force` replaces it, saving yours as .bak)")
    if result.unchanged:
        typer.echo(f"{len(result.unchanged)} file(s) already up to date")
    usable = [str(a["agent"]) for a in result.agents if a["available"]]
    typer.echo(f"agents: {', '.join(usable)}" if usable else
               "agents: none found yet: workflows that need an agent will say so; see .smithers/agents.py or `smithers workflow doctor`")
    found = ", ".join(f"{kind} = {c['command']} ({c['source']})" for kind, c in result.commands.items())
    typer.echo(f"commands: {found}" if found else "commands: none detected; set them in .smithers/config.toml")
    typer.echo("next: smithers up .smithers/workflows/hello.py --input '{\"name\": \"world\"}'")
    typer.echo("then: smithers workflow list    (and `smithers workflow doctor` to check agents and commands)")
    return 0


@workflow_app.command("list")
def list_(json_out: JsonOption = False) -> int:
    """List the workflows in .smithers/workflows (id, display name, seeded or user, path).

    Example: smithers workflow list --json
    """
    from dataclasses import asdict

    from ..pack.workflows import find_smithers_dir, list_workflows

    entries = list_workflows(find_smithers_dir(Path.cwd()))
    if json_out:
        typer.echo(json.dumps([asdict(e) for e in entries]))
        return 0
    width = max((len(e.id) for e in entries), default=2)
    for entry in entries:
        typer.echo(f"{entry.id:<{width}}  {entry.source:<6}  {entry.display_name}")
    if not entries:
        typer.echo("no workflows; `smithers init` seeds the pack, `smithers workflow create ID` makes one")
    return 0


@workflow_app.command("path")
def path_(workflow_id: Annotated[str, typer.Argument(metavar="ID", help="The workflow id.")], json_out: JsonOption = False) -> int:
    """Print the file of a workflow.

    Example: smithers workflow path implement
    """
    from dataclasses import asdict

    from ..pack.workflows import find_smithers_dir, resolve_workflow

    entry = resolve_workflow(find_smithers_dir(Path.cwd()), workflow_id)
    typer.echo(json.dumps(asdict(entry)) if json_out else entry.path)
    return 0


@workflow_app.command("create")
def create(workflow_id: Annotated[str, typer.Argument(metavar="ID", help="A new id: lower-case words joined by dashes.")],
           json_out: JsonOption = False) -> int:
    """Create .smithers/workflows/ID.py from a template (one agent task on the `smart` tier).

    Example: smithers workflow create fix-flaky-tests
    """
    from dataclasses import asdict

    from ..pack.workflows import create_workflow, find_smithers_dir

    entry = create_workflow(find_smithers_dir(Path.cwd()), workflow_id)
    typer.echo(json.dumps(asdict(entry)) if json_out else f"wrote {entry.path}\nnext: smithers workflow run {entry.id} --prompt \"...\"")
    return 0


@workflow_app.command("doctor")
def doctor(json_out: JsonOption = False) -> int:
    """Explain the setup: what each agent tier resolves to, missing CLIs/keys and how to get
    them, the repository commands. Runs nothing. Exit 0 even when something is missing.

    Example: smithers workflow doctor --json
    """
    from ..pack.workflows import doctor as diagnose
    from ..pack.workflows import find_smithers_dir

    report = diagnose(find_smithers_dir(Path.cwd()))
    if json_out:
        typer.echo(json.dumps(report))
        return 0
    typer.echo(f"folder: {report['smithers_dir']}")
    tiers = report["tiers"]
    assert isinstance(tiers, dict)
    for name, chain in tiers.items():
        typer.echo(f"tier {name}: {' -> '.join(chain) if chain else '(empty)'}")
    for item in report["available"]:  # type: ignore[attr-defined]
        typer.echo(f"found {item['agent']}: {item['evidence']}")
    for item in report["missing"]:  # type: ignore[attr-defined]
        typer.echo(f"missing {item['agent']}: {item['why']}; to add it: {item['fix']}")
    commands = report["commands"]
    assert isinstance(commands, dict)
    for kind, command in commands.items():
        typer.echo(f"command {kind}: {command}")
    problems = report["problems"]
    assert isinstance(problems, list)
    typer.echo("problems:" if problems else "ok: every tier has an agent and a test command is set")
    for problem in problems:
        typer.echo(f"  - {problem}")
    return 0


@workflow_app.command("run")
def run(
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="The workflow id (see `smithers workflow list`).")],
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Sets the input's `prompt` field.", show_default=False)] = None,
    input: InputOption = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Use this run id (default: a new one).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the existing run given by --run-id.")] = False,
    max_concurrency: Annotated[int | None, typer.Option("--max-concurrency", help="Tasks running at once (default 4).")] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", metavar="PATH|URL", help="Database: a SQLite file or a postgresql:// URL (as for `up`).", show_default=False),
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background; print the run id and return.")] = False,
    allow_source_change: Annotated[bool, typer.Option("--allow-source-change", help="Resume even if the workflow source changed.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the outcome.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="When the run waits (approval, signal, timer), stay and continue it.")] = False,
    hot: HotOption = False,
    json_out: JsonOption = False,
    serve: Annotated[bool, typer.Option("--serve", help="Serve the HTTP API while the run goes (implies --wait).")] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --serve (0 picks a free one).")] = 7331,
    host: Annotated[str, typer.Option("--host", help="Address for --serve; beyond loopback needs a token.")] = "127.0.0.1",
    auth_token: Annotated[
        str | None,
        typer.Option("--auth-token", envvar="SMITHERS_API_KEY", show_envvar=True, help="Token --serve requires.", show_default=False),
    ] = None,
) -> int:
    """Run a workflow of .smithers/workflows by id: `smithers up` on its file, plus --prompt.

    Example: smithers workflow run implement --prompt "add a --verbose flag"
    """
    from .. import ops
    from ..errors import InputError
    from ..pack.workflows import find_smithers_dir, follow_ups, resolve_workflow

    smithers_dir = find_smithers_dir(Path.cwd())
    entry = resolve_workflow(smithers_dir, workflow_id)
    raw_input = ops.parse_input(input)
    if prompt is not None:
        if raw_input is not None and not isinstance(raw_input, dict):
            raise InputError("--prompt needs --input to be a JSON object", hint='e.g. --input \'{"tdd": true}\' --prompt "..."')
        raw_input = {**(raw_input or {}), "prompt": prompt}
    code = up(
        entry.path, input=None if raw_input is None else json.dumps(raw_input), run_id=run_id, resume=resume,
        max_concurrency=max_concurrency, db=db, detach=detach, allow_source_change=allow_source_change, quiet=quiet, wait=wait,
        hot=hot, json_out=json_out, serve=serve, port=port, host=host, auth_token=auth_token,
    )
    if code == 0 and not (json_out or quiet or detach):
        for follow in follow_ups(smithers_dir, entry.id):
            typer.echo(f"next: smithers workflow run {follow} --prompt \"...\"")
    return code
