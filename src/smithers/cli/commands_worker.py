"""``smithers worker``: drive queued and orphaned runs, and execute task attempts from the shared queue."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .app import DbOption, JsonOption, app


@app.command()
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Task attempts this worker runs at once (its slots; 0: only own runs).")
    ] = 4,
    name: Annotated[
        str | None, typer.Option("--name", help="How this worker appears in claims and logs (default: host:pid).", show_default=False)
    ] = None,
    lease_timeout: Annotated[
        str,
        typer.Option(
            "--lease-timeout",
            help="A claim (or run lease on another host) not renewed for this long is taken over: seconds or e.g. 30s, 500ms.",
        ),
    ] = "30s",
    grace: Annotated[
        str, typer.Option("--grace", help="On SIGTERM, how long in-flight attempts may finish before they are handed back.")
    ] = "10s",
    no_runs: Annotated[
        bool, typer.Option("--no-runs", help="Only execute attempts from the queue; adopt and drive no runs.")
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Drive queued runs (`up --queue`) and runs whose owner died, and run their tasks from the shared queue.

    Start one per machine (or several): each claims attempts with its --concurrency slots, so one
    run's parallel tasks spread over every worker. Stops on SIGTERM or Ctrl-C: in-flight attempts
    get --grace to finish, the rest go back to the queue, owned runs are released; exit 0.

    Example: smithers worker --concurrency 16 --name build-box-1
    """
    import asyncio

    from .. import ops
    from ..authoring.policies import parse_duration
    from ..errors import UserError
    from ..worker import Worker

    try:
        lease = parse_duration(lease_timeout, field="--lease-timeout")
        grace_s = parse_duration(grace, field="--grace")
    except ValueError as err:
        raise UserError(str(err)) from None
    assert lease is not None and grace_s is not None
    store = ops.open_store(db)

    def echo(record: dict[str, Any]) -> None:
        if json_out:
            typer.echo(json.dumps(record))
            return
        event = record.pop("event")
        who = record.pop("worker")
        record.pop("at_ms", None)
        detail = " ".join(f"{k}={v}" for k, v in record.items() if v is not None)
        typer.echo(f"worker {who}: {event}" + (f" {detail}" if detail else ""))

    runner = Worker(
        store, concurrency=concurrency, name=name, lease_timeout_s=lease, grace_s=grace_s, echo=echo, drive_runs=not no_runs,
    )
    asyncio.run(runner.run())
    return 0
