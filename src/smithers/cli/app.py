"""The Typer app and the options every command shares. Import nothing heavy here: ``--help``
must stay instant, so commands import the engine inside their bodies."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="smithers",
    help="A durable runtime for long-running AI coding-agent workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", metavar="PATH|URL",
        help="Database: a SQLite file or a postgresql:// URL (default: $SMITHERS_DB, else the nearest smithers.db walking up).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _print_version(asked: bool) -> None:
    if asked:
        from .. import __version__

        typer.echo(f"smithers {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", "-V", help="Print the version and exit.", is_eager=True, callback=_print_version)
    ] = False,
) -> None:
    """Options before the command (the app's help is set on the Typer app above)."""

# exit codes (DESIGN §6)
EXIT_FINISHED, EXIT_FAILED, EXIT_CANCELLED, EXIT_WAITING, EXIT_USAGE = 0, 1, 2, 3, 4
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
STATUS_EXIT = {
    "finished": EXIT_FINISHED, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED, "continued": EXIT_FINISHED,
    "waiting-approval": EXIT_WAITING, "waiting-event": EXIT_WAITING, "waiting-timer": EXIT_WAITING,
    "lease-lost": EXIT_FAILED,
}
