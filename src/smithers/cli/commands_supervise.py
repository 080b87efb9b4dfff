"""``smithers supervise``: resume crashed runs, due timers and answered waits in the background."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import DbOption, app


@app.command()
def supervise(
    interval: Annotated[str, typer.Option("--interval", help="Time between polls: seconds or e.g. 500ms, 10s, 1m.")] = "10s",
    stale_threshold: Annotated[
        str,
        typer.Option(
            "--stale-threshold", help="An owner on another host (or a handoff lease) is gone after this long without a heartbeat.",
        ),
    ] = "30s",
    max_concurrent: Annotated[int, typer.Option("--max-concurrent", help="Resume processes running at once.")] = 3,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be resumed; take no lease, start nothing and write nothing.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Poll once, wait for the resumes it started, then exit.")] = False,
    db: DbOption = None,
) -> int:
    """Resume runs whose owner died, whose timer is due, or whose approval, answer or signal arrived.

    Each run is handed to a `smithers resume` child process under a lease taken atomically, so a
    run never has two owners. Stops on Ctrl-C or SIGTERM (exit 0); runs already resumed go on.

    Example: smithers supervise --interval 10s --max-concurrent 3
    """
    import signal

    from .. import ops
    from ..authoring.policies import parse_duration
    from ..errors import UserError
    from ..supervisor import Supervisor

    try:
        every = parse_duration(interval, field="--interval")
        stale = parse_duration(stale_threshold, field="--stale-threshold")
    except ValueError as err:
        raise UserError(str(err)) from None
    if not every or every <= 0:
        raise UserError("--interval must be more than 0")
    if not stale or stale <= 0:
        raise UserError("--stale-threshold must be more than 0")
    if max_concurrent < 1:
        raise UserError(f"--max-concurrent must be at least 1, got {max_concurrent}")
    store = ops.open_store(db)
    supervisor = Supervisor(
        store, stale_ms=int(stale * 1000), max_concurrent=max_concurrent, dry_run=dry_run, echo=lambda line: typer.echo(line, nl=True),
    )

    def stop(_signum: int, _frame: object) -> None:
        supervisor.stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    mode = "once" if once else f"every {interval}"
    dry = "; dry run" if dry_run else ""
    typer.echo(f"supervising {store.label} ({mode}; stale after {stale_threshold}; at most {max_concurrent} at once{dry})")
    supervisor.run(interval=every, once=once)
    if supervisor.children:
        typer.echo(f"stopped; {len(supervisor.children)} resumed run(s) go on: " + ", ".join(supervisor.children))
    return 0
