"""``smithers cache list|clear``: the task cache's entries (see docs/cache-memory-cron.md).

Light on purpose: the store and the duration parser only, no engine and no pydantic.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from .app import DbOption, JsonOption, app

cache_app = typer.Typer(help="The task cache: outputs reused across runs (Task(..., cache=...)).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

WorkflowOption = Annotated[
    str | None, typer.Option("--workflow", "-w", help="Only the entries of this workflow (its name).", show_default=False)
]


def _store(db: str | None) -> Any:
    """The store, or None when there is no database file (a read never creates one)."""
    from ..storage.target import db_target, open_existing

    return open_existing(db_target(db))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _older_than_ms(raw: str) -> int:
    """``--older-than 7d`` as milliseconds; a bad value exits 4 naming the flag."""
    from ..authoring.policies import parse_duration
    from ..errors import UserError

    try:
        seconds = parse_duration(raw, field="--older-than")
    except ValueError as err:
        raise UserError(str(err), hint="e.g. --older-than 7d, --older-than 12h, --older-than 30m") from None
    assert seconds is not None
    return int(seconds * 1000)


@cache_app.command("list")
def cache_list(workflow: WorkflowOption = None, db: DbOption = None, json_out: JsonOption = False) -> int:
    """List the task cache's entries, newest first (expired ones are marked and never used).

    Example: smithers cache list --workflow bugfix
    """
    store = _store(db)
    entries = store.cache_entries(workflow=workflow) if store is not None else []
    now = _now_ms()
    for entry in entries:
        entry["expired"] = entry["expires_at_ms"] is not None and entry["expires_at_ms"] <= now
    if json_out:
        typer.echo(json.dumps(entries, indent=2))
        return 0
    if not entries:
        typer.echo("the task cache is empty" + (f" for workflow {workflow!r}" if workflow else ""))
        return 0
    from .format import table, when

    rows = [
        (
            e["key"][:12], e["workflow"], e["node_id"], e["from_run_id"], when(e["created_at_ms"]),
            "expired" if e["expired"] else (when(e["expires_at_ms"]) if e["expires_at_ms"] else "never"), str(e["hits"]),
        )
        for e in entries
    ]
    for line in table(("KEY", "WORKFLOW", "NODE", "FROM RUN", "CREATED", "EXPIRES", "HITS"), rows, right=("HITS",)):
        typer.echo(line)
    return 0


@cache_app.command("clear")
def cache_clear(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Only entries created longer ago than this (90s, 30m, 12h, 7d).", show_default=False),
    ] = None,
    workflow: WorkflowOption = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Delete task cache entries (all of them, or those matching the options); runs are untouched.

    Example: smithers cache clear --older-than 7d
    """
    before = _now_ms() - _older_than_ms(older_than) if older_than is not None else None
    store = _store(db)
    deleted = 0
    if store is not None:
        with store.tx() as tx:
            deleted = tx.clear_cache(workflow=workflow, created_before_ms=before)
    if json_out:
        typer.echo(json.dumps({"deleted": deleted}))
    else:
        typer.echo(f"deleted {deleted} cache entr{'y' if deleted == 1 else 'ies'}")
    return 0
