"""Commands over what attempts did to the files: diff, revert, gc (docs/time-travel.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .app import DbOption, JsonOption, app

RunArg = Annotated[str, typer.Argument(help="The run.")]
NodeOpt = Annotated[str, typer.Option("--node", help="The task whose attempt it is.", show_default=False)]
IterOpt = Annotated[int | None, typer.Option("--iteration", help="The node's iteration (default: its newest).", show_default=False)]
AttemptOpt = Annotated[int | None, typer.Option("--attempt", help="The attempt, 1-based (default: the newest).", show_default=False)]


def _stat_lines(files: list[dict[str, Any]]) -> list[str]:
    marks = {"added": "A", "modified": "M", "deleted": "D"}
    width = max((len(f["path"]) for f in files), default=0)
    lines = []
    for f in files:
        counts = "binary" if f["additions"] is None else f"+{f['additions']} -{f['deletions']}"
        lines.append(f" {marks[f['status']]} {f['path']:<{width}}  {counts}")
    plus = sum(f["additions"] or 0 for f in files)
    minus = sum(f["deletions"] or 0 for f in files)
    lines.append(f" {len(files)} file{'s' if len(files) != 1 else ''} changed, +{plus} -{minus}")
    return lines


@app.command()
def diff(
    run_id: RunArg,
    node: NodeOpt,
    iteration: IterOpt = None,
    attempt: AttemptOpt = None,
    stat: Annotated[bool, typer.Option("--stat", help="Only the changed files and their +/- counts.")] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """What one attempt changed in the working tree (its snapshot before → after).

    Example: smithers diff 20261203-101500-ab12cd --node build --stat
    """
    from .. import ops, undo

    result = undo.diff(ops.open_store(db), run_id, node, iteration, attempt)
    if json_out:
        if stat:
            result = {k: v for k, v in result.items() if k != "patch"}
        typer.echo(json.dumps(result))
        return 0
    span = f"{(result['before'] or 'empty')[:12]}..{result['after'][:12]}"
    head = f"{result['node_id']}[{result['iteration']}] attempt {result['attempt']}: {span}"
    if not result["files"]:
        typer.echo(f"{head}: no changes")
        return 0
    if stat:
        typer.echo(head)
        typer.echo("\n".join(_stat_lines(result["files"])))
    else:
        typer.echo(result["patch"], nl=False)
    return 0


@app.command()
def revert(
    run_id: RunArg,
    node: NodeOpt,
    iteration: IterOpt = None,
    attempt: AttemptOpt = None,
    before: Annotated[bool, typer.Option("--before", help="Go back to the snapshot before the attempt (default: after it).")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Revert even if the tree has changes no snapshot holds (they are saved as a snapshot first).")
    ] = False,
    by: Annotated[str | None, typer.Option("--by", help="Who reverts (recorded in the audit; default: your login).")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Put the working tree back to the snapshot after an attempt (--before: before it).

    Refuses (exit 4) when the tree has changes that no snapshot of the run holds, unless --force.
    Example: smithers revert 20261203-101500-ab12cd --node build --before
    """
    from .. import ops, undo

    result = undo.revert(ops.open_store(db), run_id, node, iteration, attempt, before=before, force=force, actor=by)
    if json_out:
        typer.echo(json.dumps(result))
        return 0
    side = "before" if before else "after"
    where = f"{result['node_id']}[{result['iteration']}] attempt {result['attempt']}"
    if result["saved"]:
        typer.echo(f"saved the tree as it was as snapshot {result['saved'][:12]} of run {run_id}")
    if not result["files"]:
        typer.echo(f"{result['folder']} already matches the snapshot {side} {where}; nothing changed")
        return 0
    typer.echo(f"reverted {result['folder']} to the snapshot {side} {where} ({result['commit'][:12]}):")
    for path in result["files"]:
        typer.echo(f"  {path}")
    return 0


@app.command()
def gc(
    older_than: Annotated[str, typer.Option("--older-than", help="Prune runs that ended longer ago than this (30d, 12h, 90m).")] = "30d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be pruned.")] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Prune the snapshot refs (refs/smithers/<run>/…) of runs that ended long ago.

    The commits then become garbage that `git gc` collects. Example: smithers gc --older-than 7d
    """
    from .. import ops, undo
    from ..authoring.policies import parse_duration
    from ..errors import UserError

    try:
        seconds = parse_duration(older_than, field="--older-than")
    except ValueError as err:
        raise UserError(str(err)) from None
    assert seconds is not None
    result = undo.gc(ops.open_store(db), older_than_ms=int(seconds * 1000), dry_run=dry_run)
    if json_out:
        typer.echo(json.dumps(result))
        return 0
    verb = "would prune" if dry_run else "pruned"
    for run in result["pruned"]:
        refs = f"{len(run['refs'])} ref{'s' if len(run['refs']) != 1 else ''}" if not dry_run else ", ".join(run["folders"]) or "no folders"
        typer.echo(f"{verb} {run['run_id']} ({run['status']}): {refs}")
    runs = len(result["pruned"])
    typer.echo(f"{verb} the snapshots of {runs} run{'s' if runs != 1 else ''} that ended over {older_than} ago")
    return 0
