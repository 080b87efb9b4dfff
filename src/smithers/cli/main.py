"""Entry point: run the Typer app with smithers' exit codes (usage errors exit 4, not 2).

Start-up is most of what a short command costs, so only the module that defines the command
being run is imported and built (``--help``, a bare ``smithers`` and an unknown command load
them all, in help order), and simple options are parsed without pydantic (see ``params``).
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

from typer.exceptions import Abort, Exit
from typer.main import get_command

from .app import EXIT_SIGINT, EXIT_USAGE, app

COMMAND_MODULES: dict[str, str] = {
    "init": "commands_workflow", "workflow": "commands_workflow", "up": "commands_run", "resume": "commands_run", "cancel": "commands_run",
    "ps": "commands_read", "inspect": "commands_read", "node": "commands_read", "events": "commands_read",
    "logs": "commands_read", "why": "commands_read", "graph": "commands_read",
    "approve": "commands_human", "deny": "commands_human", "signal": "commands_human", "inbox": "commands_human",
    "human": "commands_human",
    "agents": "commands_agents", "chat": "commands_agents",
    "supervise": "commands_supervise", "cron": "commands_cron",
    "worker": "commands_worker",
    "observability": "commands_observability",
    "serve": "commands_serve",
    "mcp": "commands_mcp",
    "skill": "commands_agent_drive", "ask": "commands_agent_drive",
    "memory": "commands_memory",
    "cache": "commands_cache",
    "scores": "commands_scores", "eval": "commands_eval",
    "diff": "commands_timetravel", "revert": "commands_timetravel", "gc": "commands_timetravel",
    "timeline": "commands_history", "fork": "commands_history", "replay": "commands_history", "retry-task": "commands_history",
    "rewind": "commands_history",
    "daemon": "commands_daemon",
    "db": "commands_db",
}
"""Every top-level command and the module that registers it; the modules' order is the help order."""


def register_commands(argv: list[str]) -> None:
    """Import the module of the command ``argv`` names, or every module when it names none we know."""
    name = next((arg for arg in argv if not arg.startswith("-")), None)
    if name in COMMAND_MODULES:
        import_module(f"{__package__}.{COMMAND_MODULES[name]}")
    else:
        register_all_commands()


def register_all_commands() -> None:
    """Register every command on :data:`smithers.cli.app.app`, in help order (docs and tools walk it)."""
    for module in dict.fromkeys(COMMAND_MODULES.values()):
        import_module(f"{__package__}.{module}")


_prebuilt: Any = None  # the whole command tree, built once by the warm daemon (cli/daemon.py)


def prebuild_command() -> None:
    """Register every command and build the Click tree now (the daemon does, once, before it forks)."""
    global _prebuilt
    register_all_commands()
    _prebuilt = get_command(app)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if _prebuilt is not None:
        command = _prebuilt
    else:
        register_commands(args)
        command = get_command(app)
    from .params import parse_without_pydantic

    parse_without_pydantic(command, args)
    try:
        result = command.main(args=args, prog_name="smithers", standalone_mode=False)
    except Exit as done:
        return _exit(done.exit_code)
    except Abort:
        return _exit(EXIT_SIGINT)
    except Exception as err:  # every error leaves through one place with the documented exit code
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
