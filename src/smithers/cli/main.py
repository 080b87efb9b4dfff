"""Entry point: run the Typer app with smithers' exit codes (usage errors exit 4, not 2)."""

from __future__ import annotations

import sys

from typer.exceptions import Abort, Exit
from typer.main import get_command

from . import commands_run, commands_read, commands_human, commands_agents, commands_supervise, commands_observability, commands_serve, commands_mcp, commands_agent_drive  # noqa: F401, I001  (registers the commands, in help order)
from .app import EXIT_SIGINT, EXIT_USAGE, app


def main(argv: list[str] | None = None) -> int:
    command = get_command(app)
    try:
        result = command.main(args=argv if argv is not None else sys.argv[1:], prog_name="smithers", standalone_mode=False)
    except Exit as done:
        return _exit(done.exit_code)
    except Abort:
        return _exit(EXIT_SIGINT)
    except Exception as err:  # noqa: BLE001 - every error leaves through one place with the documented exit code
        return _exit(_report(err))
    return _exit(result if isinstance(result, int) else 0)


def _report(err: Exception) -> int:
    from typer._click.exceptions import ClickException, UsageError

    from ..errors import SmithersError, UserError

    if isinstance(err, UsageError):
        err.show()
        return EXIT_USAGE
    if isinstance(err, ClickException):
        err.show()
        return EXIT_USAGE
    if isinstance(err, SmithersError):
        sys.stderr.write(f"error: {err.message}\n")
        if err.hint:
            sys.stderr.write(f"  hint: {err.hint}\n")
        tb = err.details.get("traceback") if err.details else None
        if tb:
            sys.stderr.write(tb if tb.endswith("\n") else tb + "\n")
        return EXIT_USAGE if isinstance(err, UserError) else 1
    raise err


def _exit(code: int) -> int:
    sys.stdout.flush()
    return code


def entry() -> None:
    sys.exit(main())
