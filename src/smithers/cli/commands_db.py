"""``smithers db upgrade|copy``: the database itself — apply its migrations, copy it to another
backend (a SQLite file into PostgreSQL to grow up). The verbs are in :mod:`smithers.dbtools`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import DbOption, JsonOption, app

db_app = typer.Typer(help="The database: apply its migrations, copy it between SQLite and PostgreSQL.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None, json_out: JsonOption = False) -> int:
    """Apply the migrations the database lacks (every command also does on open); say which.

    Example: smithers db upgrade --db postgresql://smithers@db.internal/smithers
    """
    from .. import dbtools

    result = dbtools.upgrade(db)
    if json_out:
        typer.echo(json.dumps(result))
        return 0
    for migration in result["applied"]:
        typer.echo(f"applied migration {migration['version']}: {migration['name']}")
    state = "up to date" if result["up_to_date"] else "upgraded"
    typer.echo(f"{result['db']}: {state} (schema version {result['version']})")
    for migration in result.get("newer", []):
        typer.echo(f"note: migration {migration['version']} ({migration['name']}) is from a newer smithers", err=True)
    return 0


@db_app.command("copy")
def db_copy(
    to: Annotated[
        str, typer.Option("--to", metavar="PATH|URL", help="The destination: a new SQLite path or an empty PostgreSQL database.")
    ],
    source: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="PATH|URL", show_default=False,
            help="The database to copy (default: $SMITHERS_DB, else the nearest smithers.db walking up).",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> int:
    """Copy every run, event, wait, schedule, memory fact, cache entry and output table into an
    empty database, in one transaction; each table's row count is checked before the commit.

    Stop smithers processes writing to the source first. The destination must hold no data.
    Example: smithers db copy --from smithers.db --to postgresql://smithers@db.internal/smithers
    """
    from .. import dbtools

    result = dbtools.copy(source, to)
    if json_out:
        typer.echo(json.dumps(result))
        return 0
    from .format import table

    typer.echo(f"copied {result['from']} -> {result['to']}")
    rows = [(name, str(count)) for name, count in result["tables"].items()]
    for line in table(("TABLE", "ROWS"), rows, right=("ROWS",)):
        typer.echo("  " + line)
    typer.echo(f"{result['rows']} rows in {len(result['tables'])} tables, each count checked against the source")
    return 0
