"""Commands that start or change runs: up, resume, cancel (``init`` is in commands_workflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import EXIT_FAILED, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, STATUS_EXIT, DbOption, JsonOption, app
from .cassette_options import RecordOption, ReplayOption, open_cassette

if TYPE_CHECKING:
    from ..storage.store import Store

InputOption = Annotated[
    str | None, typer.Option("--input", "-i", help="Run input: a JSON object, or @file.json.", show_default=False)
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Look nothing up in the task cache (kept for the run's resumes); results are still stored.")
]

HotOption = Annotated[
    bool, typer.Option("--hot", help="Reload the workflow when its file or a local module it imports changes (new attempts use it).")
]


@app.command()
def up(
    file: Annotated[str, typer.Argument(help="Workflow file, or file.py:name when it has several workflows.")],
    input: InputOption = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Use this run id (default: a new one).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the existing run given by --run-id.")] = False,
    max_concurrency: Annotated[int | None, typer.Option("--max-concurrency", help="Tasks running at once (default 4).")] = None,
    db: DbOption = None,
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background; print the run id and return.")] = False,
    allow_source_change: Annotated[bool, typer.Option("--allow-source-change", help="Resume even if the workflow source changed.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the outcome.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="When the run waits (approval, signal, timer), stay and continue it.")] = False,
    hot: HotOption = False,
    json_out: JsonOption = False,
    serve: Annotated[bool, typer.Option("--serve", help="Serve the HTTP API while the run goes (implies --wait).")] = False,
    no_snapshots: Annotated[
        bool, typer.Option("--no-snapshots", help="Take no snapshots of the working tree for this run (revert/diff then have none).")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --serve (0 picks a free one).")] = 7331,
    host: Annotated[str, typer.Option("--host", help="Address for --serve; beyond loopback needs a token.")] = "127.0.0.1",
    auth_token: Annotated[
        str | None,
        typer.Option("--auth-token", envvar="SMITHERS_API_KEY", show_envvar=True, help="Token --serve requires.", show_default=False),
    ] = None,
    record: RecordOption = None,
    replay: ReplayOption = None,
    no_cache: NoCacheOption = False,
    queue: Annotated[
        bool, typer.Option("--queue", help="Create the run queued and return: a `smithers worker` drives it.")
    ] = False,
) -> int:
    """Run a workflow to the end (or until it fails, is cancelled or waits).

    Example: smithers up workflow.py --input '{"repo": "."}'
    """
    from .. import ops
    from ..errors import UserError

    raw_input = ops.parse_input(input)
    store = ops.open_store(db)
    if no_snapshots:  # read by the engine; a new run records it, so its resumes take none either
        os.environ["SMITHERS_SNAPSHOTS"] = "off"
    if queue:  # `up --queue`: a worker drives it (smithers/worker.py, imported only here)
        return _enqueue(file, raw_input, run_id, max_concurrency, store, no_cache, json_out, detach or serve or resume or wait or hot)
    if detach and serve:
        raise UserError("--serve cannot be combined with --detach", hint="serve the database instead: smithers serve")
    cassette = open_cassette(record, replay, append=resume, background=detach)  # a bad cassette exits 4 before anything starts
    if detach:
        return _detach(file, raw_input, run_id, resume, max_concurrency, store, allow_source_change, json_out, hot, no_cache)
    from .views import make_view

    server = None
    if serve:  # the API in a daemon thread for as long as the run goes (see commands_serve)
        from .commands_serve import start_background_server

        server = start_background_server(store.target, host, port, auth_token)
        wait = True
    view = make_view(quiet=quiet or json_out, store=store)
    try:
        outcome = ops.start_run(
            file, store=store, raw_input=raw_input, run_id=run_id, resume=resume, max_concurrency=max_concurrency,
            allow_source_change=allow_source_change, on_events=view.on_events, on_started=view.started, handle_signals=True,
            stay_alive=wait, hot=hot, no_cache=no_cache,
        )
        outcome = ops.follow_chain(
            outcome, store=store, on_events=view.on_events, on_started=view.started, handle_signals=True, stay_alive=wait,
            on_continue=None if json_out else _print_continue, hot=hot,  # --json: the chain is in the one document
        )
    finally:
        view.close()
        cassette.close()
        if server is not None:
            server.stop()
    return _report_outcome(outcome, json_out)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue.")],
    db: DbOption = None,
    max_concurrency: Annotated[int | None, typer.Option("--max-concurrency", help="Tasks running at once.")] = None,
    allow_source_change: Annotated[bool, typer.Option("--allow-source-change", help="Resume even if the workflow source changed.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the outcome.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="When the run waits (approval, signal, timer), stay and continue it.")] = False,
    hot: HotOption = False,
    json_out: JsonOption = False,
    lease_token: Annotated[str | None, typer.Option("--lease-token", hidden=True)] = None,  # a supervisor's handoff lease
    record: RecordOption = None,
    replay: ReplayOption = None,
    no_cache: NoCacheOption = False,
) -> int:
    """Continue a run after a crash, a failure or a cancel; the workflow file is found from the run.

    Example: smithers resume 20261203-101500-ab12cd
    """
    from .. import ops
    from .views import make_view

    store = ops.open_store(db)
    cassette = open_cassette(record, replay, append=True)  # a resumed run adds its calls to the recording
    view = make_view(quiet=quiet or json_out, store=store)
    try:
        outcome = ops.resume_run(
            run_id, store=store, max_concurrency=max_concurrency, allow_source_change=allow_source_change,
            on_events=view.on_events, on_started=view.started, handle_signals=True, stay_alive=wait, lease_token=lease_token,
            hot=hot,
            no_cache=no_cache,
        )
        outcome = ops.follow_chain(
            outcome, store=store, on_events=view.on_events, on_started=view.started, handle_signals=True, stay_alive=wait,
            on_continue=None if json_out else _print_continue, hot=hot,  # --json: the chain is in the one document
        )
    finally:
        view.close()
        cassette.close()
    return _report_outcome(outcome, json_out)


@app.command()
def cancel(run_id: Annotated[str, typer.Argument(help="The run to cancel.")], db: DbOption = None, json_out: JsonOption = False) -> int:
    """Cancel a run: a running owner stops within a second and marks in-flight attempts cancelled.

    A run that is already over (finished, failed, cancelled, continued) is left as it is (exit 4).

    Example: smithers cancel 20261203-101500-ab12cd
    """
    from .. import ops
    from ..states import ENDED_RUN_STATUSES, RunStatus

    store = ops.open_store(db)
    before = ops.get_run(store, run_id)["status"]
    if before in ENDED_RUN_STATUSES:  # checked here: request_cancel reports "cancelled" for a cancelled run alike
        _say_cancel(run_id, before, json_out, note="already over; nothing changed")
        return EXIT_USAGE
    status = ops.request_cancel(store, run_id)
    if status == "cancelling":
        status = ops.wait_for_status(store, run_id, {RunStatus.CANCELLED, RunStatus.FINISHED, RunStatus.FAILED}, timeout=5.0)
    ended_otherwise = status in ENDED_RUN_STATUSES and status != RunStatus.CANCELLED  # it ended on its own meanwhile
    _say_cancel(run_id, status, json_out, note="it ended before the cancel took effect" if ended_otherwise else None)
    if status == RunStatus.CANCELLED:
        return 0
    return EXIT_USAGE if ended_otherwise else EXIT_FAILED


def _say_cancel(run_id: str, status: str, json_out: bool, note: str | None) -> None:
    if json_out:
        typer.echo(json.dumps({"run_id": run_id, "status": status}))
    else:
        typer.echo(f"run {run_id}: {status}" + (f" ({note})" if note else ""))


def _enqueue(
    file: str, raw_input: dict[str, Any] | None, run_id: str | None, max_concurrency: int | None, store: Any, no_cache: bool,
    json_out: bool, conflicting: bool,
) -> int:
    from ..errors import UserError
    from ..worker import enqueue_run

    if conflicting:
        raise UserError("--queue cannot be combined with --detach, --serve, --resume, --wait or --hot", hint="a worker drives a queued run")
    queued = enqueue_run(file, store=store, raw_input=raw_input, run_id=run_id, max_concurrency=max_concurrency, no_cache=no_cache)
    if json_out:
        typer.echo(json.dumps({"run_id": queued, "status": "queued"}))
    else:
        typer.echo(f"run {queued} queued")
        typer.echo(f"  a worker drives it: smithers worker    (watch it: smithers logs {queued} -f)")
    return 0


def _print_continue(old: str, new: str) -> None:
    typer.echo(f"run {old} continued as {new}")


def _report_outcome(outcome: object, json_out: bool) -> int:
    from ..ops import RunOutcome

    assert isinstance(outcome, RunOutcome)
    if json_out:
        typer.echo(json.dumps({"run_id": outcome.run_id, "status": outcome.status, "error": outcome.error, **outcome.extra}))
    else:
        line = f"run {outcome.run_id} {outcome.status}"
        if outcome.error:
            line += f": {outcome.error.get('message')}"
        typer.echo(line)
        if outcome.status in ("failed", "cancelled"):
            typer.echo(f"  continue it with: smithers resume {outcome.run_id}    (see why: smithers why {outcome.run_id})")
        for item in outcome.extra.get("waiting", []):
            what = item.get("title") or item.get("signal") or item["kind"]
            ident = f" (request {item['request_id']})" if item.get("request_id") else ""
            typer.echo(f"  waiting for {item['kind']} {item['node_id']}[{item['iteration']}]: {what}{ident}")
            for command in item["commands"]:
                typer.echo(f"    {command}")
    if outcome.exit_signal is not None:
        return EXIT_SIGINT if outcome.exit_signal == 2 else EXIT_SIGTERM
    return STATUS_EXIT.get(outcome.status, EXIT_FAILED)


def _detach(
    file: str, raw_input: dict[str, Any] | None, run_id: str | None, resume: bool, max_concurrency: int | None, store: Store,
    allow_source_change: bool, json_out: bool, hot: bool = False, no_cache: bool = False,
) -> int:
    """Validate here (so errors still exit 4), then run in a new session in the background."""
    from .. import ops
    from ..authoring.loader import load_workflow
    from ..errors import UserError
    from ..events.ndjson import run_dir

    loaded = load_workflow(file)
    if not (resume and run_id):
        input_value, _ = loaded.workflow.validate_input(raw_input)
        ops.check_first_render(loaded, input_value, store)
        if run_id is not None and store.get_run(run_id) is not None:
            raise UserError(f"run {run_id!r} already exists", hint=f"resume it with: smithers resume {run_id}")
    run_id = run_id or ops.new_run_id()
    log_path = run_dir(store.home, run_id) / "output.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # -P: a user file named like a stdlib module (signal.py) in the cwd must not shadow it
    from ..storage.target import child_db

    db_args, db_env = child_db(store.target)
    argv = [sys.executable, "-P", "-m", "smithers", "up", file, "--run-id", run_id, *db_args, "--quiet"]
    if raw_input is not None:
        argv += ["--input", json.dumps(raw_input)]
    if resume:
        argv.append("--resume")
    if max_concurrency:
        argv += ["--max-concurrency", str(max_concurrency)]
    if allow_source_change:
        argv.append("--allow-source-change")
    if hot:
        argv.append("--hot")
    if no_cache:
        argv.append("--no-cache")
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        child = subprocess.Popen(
            argv, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **db_env},
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if (run is not None and run["owner_pid"] == child.pid) or (run is not None and run["status"] != "running"):
            break
        if child.poll() is not None:
            typer.echo(f"error: the background run exited with code {child.returncode}; see {log_path}", err=True)
            return child.returncode or EXIT_FAILED
        time.sleep(0.05)
    if json_out:
        typer.echo(json.dumps({"run_id": run_id, "pid": child.pid, "log": str(log_path)}))
    else:
        typer.echo(f"run {run_id} started in the background (pid {child.pid}, output in {log_path})")
        typer.echo(f"  watch it: smithers logs {run_id} -f")
    return 0
