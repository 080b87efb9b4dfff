"""``smithers cron``: schedules that start a workflow on a cron pattern (``smithers supervise`` fires them)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .app import DbOption, JsonOption, app
from .format import table, when

cron_app = typer.Typer(
    help="Cron schedules: start a workflow on a pattern. `smithers supervise` fires them.", no_args_is_help=True,
)
app.add_typer(cron_app, name="cron")

IdArg = Annotated[str, typer.Argument(help="The schedule id (see `smithers cron list`).", show_default=False)]


def _print(schedule: dict[str, Any], json_out: bool, line: str) -> None:
    typer.echo(json.dumps(schedule) if json_out else line)


@cron_app.command("add")
def cron_add(
    pattern: Annotated[str, typer.Argument(help='A cron pattern: "0 3 * * *", six fields with seconds last, or @daily.')],
    workflow: Annotated[str, typer.Argument(help="The workflow file (path.py or path.py:name).")],
    input_json: Annotated[
        str | None, typer.Option("--input", "-i", help="Each run's input: a JSON object, or @file.json.", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the schedule (default: the workflow's).")] = None,
    tz: Annotated[str, typer.Option("--tz", help="The time zone the pattern is read in (an IANA name).")] = "UTC",
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Add a schedule and print its id. The pattern, the workflow and its input are checked now (exit 4).

    Example: smithers cron add "0 3 * * *" nightly.py --input '{"repo": "."}' --name nightly
    """
    from .. import ops
    from ..cron import add_schedule

    store = ops.open_store(db)
    schedule = add_schedule(store, pattern, workflow, raw_input=ops.parse_input(input_json), name=name, timezone=tz)
    _print(schedule, json_out, schedule["id"])
    return 0


@cron_app.command("list")
def cron_list(db: DbOption = None, json_out: JsonOption = False) -> int:
    """List the schedules with their next due time and last run.

    Example: smithers cron list --json
    """
    from .. import ops
    from ..cron import list_schedules

    schedules = list_schedules(ops.open_store(db))
    if json_out:
        typer.echo(json.dumps(schedules, indent=2))
        return 0
    if not schedules:
        typer.echo('no cron schedules; add one with: smithers cron add "0 3 * * *" WORKFLOW.py')
        return 0
    rows = [
        [s["id"], s["name"], s["pattern"] + ("" if s["timezone"] == "UTC" else f" ({s['timezone']})"), s["workflow"],
         "yes" if s["enabled"] else "paused", when(s["next_run_at_ms"]) if s["next_run_at_ms"] else "-", s["last_run_id"] or "-"]
        for s in schedules
    ]
    for line in table(["ID", "NAME", "PATTERN", "WORKFLOW", "ENABLED", "NEXT RUN", "LAST RUN"], rows):
        typer.echo(line)
    return 0


@cron_app.command("rm")
def cron_rm(schedule_id: IdArg, db: DbOption = None, json_out: JsonOption = False) -> int:
    """Remove a schedule. The runs it started stay.

    Example: smithers cron rm 1f2e3d4c
    """
    from .. import ops
    from ..cron import remove_schedule

    _print(remove_schedule(ops.open_store(db), schedule_id), json_out, f"removed cron schedule {schedule_id}")
    return 0


@cron_app.command("pause")
def cron_pause(schedule_id: IdArg, db: DbOption = None, json_out: JsonOption = False) -> int:
    """Stop a schedule firing. Due times while it is paused are skipped, not caught up.

    Example: smithers cron pause 1f2e3d4c
    """
    from .. import ops
    from ..cron import pause_schedule

    _print(pause_schedule(ops.open_store(db), schedule_id), json_out, f"paused cron schedule {schedule_id}")
    return 0


@cron_app.command("resume")
def cron_resume(schedule_id: IdArg, db: DbOption = None, json_out: JsonOption = False) -> int:
    """Fire a paused schedule again, from its first due time after now.

    Example: smithers cron resume 1f2e3d4c
    """
    from .. import ops
    from ..cron import resume_schedule

    schedule = resume_schedule(ops.open_store(db), schedule_id)
    _print(schedule, json_out, f"resumed cron schedule {schedule_id}; next run {when(schedule['next_run_at_ms'])}")
    return 0


@cron_app.command("run-now")
def cron_run_now(schedule_id: IdArg, db: DbOption = None, json_out: JsonOption = False) -> int:
    """Start the schedule's workflow now, in the background (its due times are unchanged); prints the run id.

    Example: smithers cron run-now 1f2e3d4c
    """
    from pathlib import Path

    from .. import ops
    from ..background import spawn, wait_started
    from ..cron import get_schedule, run_now

    store = ops.open_store(db)
    run_id, lease = run_now(store, schedule_id)
    cwd = Path(get_schedule(store, schedule_id)["cwd"])  # where `cron add` ran, as `up` would have run
    cwd = cwd if cwd.is_dir() else Path.cwd()
    child, log = spawn(["resume", run_id, "--lease-token", lease.id], store=store, run_id=run_id, cwd=cwd)
    status = wait_started(child, log, store, run_id)
    result = {"run_id": run_id, "schedule_id": schedule_id, "status": status, "triggered_by": f"cron:{schedule_id}", "log": str(log)}
    _print(result, json_out, f"run {run_id} {status} (cron:{schedule_id}); follow it with: smithers logs {run_id} -f")
    return 0
