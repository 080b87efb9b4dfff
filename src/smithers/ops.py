"""Verbs for every front end (CLI today, HTTP later): start, resume, cancel, list, inspect.

Each verb validates everything it can before it writes anything, so bad input leaves no
partial run behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .authoring.context import Ctx
from .authoring.loader import LoadedWorkflow, load_workflow, source_fingerprint
from .engine.file_snapshots import snapshots_off_by_env
from .engine.loop import RunLoop
from .engine.recovery import recover
from .engine.render import render
from .engine.state import RunState
from .errors import (
    ErrorCode,
    InputError,
    RunOwnedError,
    SmithersError,
    UnknownRunError,
    UserError,
)
from .events.ndjson import NdjsonSink, run_dir
from .states import ENDED_RUN_STATUSES, WAITING_RUN_STATUSES, AttemptStatus, EventType, NodeStatus, RunStatus
from .storage.lease import Owner, owner_alive, release_run
from .storage.store import Store, now_ms

EventCallback = Callable[[list[dict[str, Any]]], None]


@dataclass
class RunOutcome:
    run_id: str
    status: str
    error: dict[str, Any] | None = None
    exit_signal: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def parse_input(raw: str | None) -> dict[str, Any] | None:
    """``--input`` is JSON text or ``@file.json``."""
    if raw is None:
        return None
    source = "--input"
    text = raw
    if raw.startswith("@"):
        path = Path(raw[1:]).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise InputError(f"cannot read input file {path}: {err.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"{source} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}",
            hint="""pass a JSON object, e.g. --input '{"name": "world"}' or --input @input.json""",
        ) from None
    if not isinstance(value, dict):
        raise InputError(f"{source} must be a JSON object, got {type(value).__name__}")
    return value


def open_store(db: str | Path | None) -> Store:
    """The store ``--db`` names (a SQLite path or a ``postgresql://`` URL), else the default
    (``$SMITHERS_DB``, else the nearest smithers.db); created and migrated if need be."""
    from .storage.target import db_target

    return Store.open(db_target(db))


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"no run {run_id!r} in {store.label}", hint="list runs with: smithers ps")
    return run


def validate_new_run(
    loaded: LoadedWorkflow, raw_input: Any, store: Store, max_concurrency: int | None, run_id: str | None
) -> tuple[Any, dict[str, Any], str]:
    """What every new run checks before it is created (``up`` and ``up --queue``): the input
    against the workflow's model, a first render, the limits and the run id. Returns the input
    value, its JSON-ready form and the run id (a new one when none was given)."""
    input_value, input_json = loaded.workflow.validate_input(raw_input)
    check_first_render(loaded, input_value, store)
    if max_concurrency is not None and max_concurrency < 1:
        raise UserError(f"--max-concurrency must be at least 1, got {max_concurrency}")
    run_id = run_id or new_run_id()
    if len(run_id) > 256 or not run_id.strip():
        raise UserError("--run-id must be 1 to 256 characters")
    return input_value, input_json, run_id


def check_first_render(loaded: LoadedWorkflow, input_value: Any, store: Store) -> None:
    """Render once against an empty run so render errors exit 4 before a run exists."""
    state = RunState(store, "\x00no-run", loaded.models)
    ctx = Ctx(input=input_value, run_id="(not yet created)", reader=state)
    render(loaded.workflow, ctx, state.loop_state)


def start_run(
    spec: str,
    *,
    store: Store,
    raw_input: dict[str, Any] | None,
    run_id: str | None = None,
    resume: bool = False,
    max_concurrency: int | None = None,
    allow_source_change: bool = False,
    on_events: EventCallback | None = None,
    on_started: Callable[[str], None] | None = None,
    handle_signals: bool = False,
    stay_alive: bool = False,
    hot: bool = False,
    no_cache: bool = False,
) -> RunOutcome:
    """``smithers up``: validate, create the run, and drive it to the end (or until it waits,
    unless ``stay_alive``). ``no_cache``: look nothing up in the task cache, in this run and
    its resumes (recorded with the run)."""
    loaded = load_workflow(spec)
    if run_id is not None and store.get_run(run_id) is not None:
        if not resume:
            raise UserError(
                f"run {run_id!r} already exists in {store.label}",
                hint=f"resume it with: smithers up {spec} --run-id {run_id} --resume   (or: smithers resume {run_id})",
            )
        return resume_run(
            run_id, store=store, raw_input=raw_input, loaded=loaded, max_concurrency=max_concurrency,
            allow_source_change=allow_source_change, on_events=on_events, on_started=on_started, handle_signals=handle_signals,
            stay_alive=stay_alive, hot=hot, no_cache=no_cache,
        )
    if resume and run_id is None:
        raise UserError("--resume needs --run-id RUN_ID", hint="or use: smithers resume RUN_ID")
    input_value, input_json, run_id = validate_new_run(loaded, raw_input, store, max_concurrency, run_id)
    owner = Owner.this_process()
    concurrency = max_concurrency or loaded.workflow.max_concurrency
    with store.tx(run_id) as tx:
        tx.create_run(
            workflow=loaded.workflow.name, workflow_spec=loaded.spec, input_json=json.dumps(input_json),
            source_json=json.dumps(source_fingerprint(loaded.path)), cwd=os.getcwd(), max_concurrency=concurrency, owner=owner,
        )
        if no_cache:
            tx.set_no_cache()
        tx.event(EventType.RUN_STARTED, workflow=loaded.workflow.name, resumed=False, owner_pid=owner.pid)
        if snapshots_off_by_env():  # `up --no-snapshots` / SMITHERS_SNAPSHOTS=off: kept on the run for every resume
            tx.set_snapshots_off()
    return _drive(store, run_id, loaded, input_value, owner, concurrency, on_events, on_started, handle_signals, 0, stay_alive, hot)


def resume_run(
    run_id: str,
    *,
    store: Store,
    raw_input: dict[str, Any] | None = None,
    loaded: LoadedWorkflow | None = None,
    max_concurrency: int | None = None,
    allow_source_change: bool = False,
    on_events: EventCallback | None = None,
    on_started: Callable[[str], None] | None = None,
    handle_signals: bool = False,
    stay_alive: bool = False,
    lease_token: str | None = None,
    hot: bool = False,
    no_cache: bool = False,
) -> RunOutcome:
    """``smithers resume``: check input and source are unchanged, take the lease, continue.
    ``lease_token``: the handoff lease ``smithers supervise`` took for this process.
    ``no_cache``: from now on the run looks nothing up in the task cache (recorded with it; a
    run started with ``--no-cache`` keeps it on every resume)."""
    run = get_run(store, run_id)
    if run["status"] == RunStatus.CONTINUED:
        raise UserError(
            f"run {run_id} continued as a new run; it is over",
            hint=f"see the chain with: smithers logs {run_id} --follow-ancestry",
        )
    loaded = loaded or load_workflow(run["workflow_spec"])
    stored_input = json.loads(run["input_json"])
    input_value, input_json = loaded.workflow.validate_input(stored_input if raw_input is None else raw_input)
    if raw_input is not None and input_json != stored_input:
        raise InputError(
            f"run {run_id} was started with different input; a run's input never changes",
            hint=f"drop --input to resume with the stored input, or start a new run. Stored: {json.dumps(stored_input)[:200]}",
            code=ErrorCode.INPUT_CHANGED,
        )
    if not allow_source_change:
        before = json.loads(run["source_json"])
        after = source_fingerprint(loaded.path)
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        if changed:
            raise UserError(
                f"the workflow source changed since run {run_id} started: {', '.join(changed)}",
                hint="pass --allow-source-change to resume with the new code anyway",
                details={"changed": changed},
                code=ErrorCode.SOURCE_CHANGED,
            )
    owner = Owner.this_process()
    seen = store.last_event_seq(run_id)
    recover(store, run_id, owner, takeover_from=lease_token)
    if no_cache:
        with store.tx(run_id, owner_id=owner.id) as tx:
            tx.set_no_cache()
    concurrency = max_concurrency or run["max_concurrency"]
    return _drive(store, run_id, loaded, input_value, owner, concurrency, on_events, on_started, handle_signals, seen, stay_alive, hot)


def _drive(
    store: Store, run_id: str, loaded: LoadedWorkflow, input_value: Any, owner: Owner, concurrency: int,
    on_events: EventCallback | None, on_started: Callable[[str], None] | None, handle_signals: bool, replay_after: int,
    stay_alive: bool = False, hot: bool = False,
) -> RunOutcome:
    sink = NdjsonSink(run_dir(store.home, run_id) / "events.ndjson", run_id)
    tracer = None
    if os.environ.get("SMITHERS_OTEL_ENABLED"):  # tracing is imported only when it may be on
        from .observability.tracing import attach_tracing

        tracer = attach_tracing(store, run_id)  # None unless SMITHERS_OTEL_ENABLED=1
    listeners = [sink] + ([tracer] if tracer else []) + ([on_events] if on_events else [])
    if on_started:
        on_started(run_id)
    already = store.events(run_id, after_seq=replay_after)  # committed before the listeners were attached
    for listener in listeners:
        listener(already)
    store.commit_listeners.extend(listeners)
    state = RunState(store, run_id, loaded.models)
    engine = RunLoop(
        store=store, run_id=run_id, workflow=loaded.workflow, input_value=input_value, owner=owner, state=state,
        max_concurrency=concurrency, cwd=str(loaded.workflow.working_dir(loaded.path)), handle_signals=handle_signals,
        stay_alive=stay_alive,
    )
    _lineage(store, run_id, engine)
    if hot:  # `--hot`: watch the workflow's files and go on with each edit (imported only then)
        from .engine.hot import HotReload

        engine.reloader = HotReload(loaded)
    engine.cache.lookups = not store.run_no_cache(run_id)
    try:
        try:
            status = asyncio.run(engine.run())
        except SmithersError as err:
            record = err.to_record()
            _fail_run(store, run_id, owner, record)
            return RunOutcome(run_id=run_id, status=RunStatus.FAILED, error=record)
        row = store.get_run(run_id) or {}
        error = json.loads(row["error_json"]) if row.get("error_json") else None
        outcome = RunOutcome(run_id=run_id, status=status, error=error, exit_signal=engine.exit_signal)
        if status in WAITING_RUN_STATUSES:
            from .decisions import waiting_for  # the verbs that answer waits; loaded only when the run waits

            outcome.extra["waiting"] = waiting_for(store, run_id)
        if status == RunStatus.CONTINUED:
            outcome.extra["next_run_id"] = engine.next_run_id
        return outcome
    finally:
        for listener in listeners:
            store.commit_listeners.remove(listener)
        sink.close()
        if tracer:
            tracer.close()


def _lineage(store: Store, run_id: str, engine: RunLoop) -> None:
    row = store.get_run(run_id)
    if row is not None:
        engine.carried = json.loads(row["carried_json"]) if row["carried_json"] else None
        engine.continued_from = row["continued_from"]


def follow_chain(
    outcome: RunOutcome, *, store: Store, on_events: EventCallback | None = None, on_started: Callable[[str], None] | None = None,
    handle_signals: bool = False, stay_alive: bool = False, on_continue: Callable[[str, str], None] | None = None,
    hot: bool = False,
) -> RunOutcome:
    """Continue-as-new chains run on in the same process: resume each next run until one ends
    otherwise. Returns the last run's outcome (``extra["chain"]`` lists every run id)."""
    chain = [outcome.run_id]
    while outcome.status == RunStatus.CONTINUED and outcome.extra.get("next_run_id"):
        next_id = outcome.extra["next_run_id"]
        if on_continue:
            on_continue(outcome.run_id, next_id)
        outcome = resume_run(
            next_id, store=store, on_events=on_events, on_started=on_started, handle_signals=handle_signals, stay_alive=stay_alive,
            allow_source_change=True, hot=hot,
        )
        chain.append(outcome.run_id)
    outcome.extra["chain"] = chain
    return outcome


def _fail_run(store: Store, run_id: str, owner: Owner, error: dict[str, Any]) -> None:
    """A render error after the first render fails the run, keeping every finished row."""
    try:
        with store.tx(run_id) as tx:  # not fenced: the loop released the lease as it stopped
            tx.set_run(RunStatus.FAILED, error=error, finished=True)
            tx.event(EventType.RUN_FAILED, status=RunStatus.FAILED, error=error)
    finally:
        release_run(store, run_id, owner)


def request_cancel(store: Store, run_id: str) -> str:
    """Cancel a run. A live owner stops within a second; without one the run is marked at once.
    Returns the run's status when it had already ended (the caller refuses those), else
    ``cancelling`` or ``cancelled``."""
    status: str = get_run(store, run_id)["status"]
    if status in ENDED_RUN_STATUSES:
        return status
    with store.tx(run_id) as tx:
        current = tx.run_row()
        assert current is not None  # runs are never deleted
        status = current["status"]
        if status in ENDED_RUN_STATUSES:  # it ended between the check and the lock
            return status
        if owner_alive(current):
            tx.request_cancel()
            tx.event(EventType.RUN_CANCEL_REQUESTED)
            return "cancelling"
        for node_id, iteration, attempt in tx.end_running_attempts(AttemptStatus.CANCELLED):
            tx.set_node(node_id, iteration, NodeStatus.CANCELLED)
            tx.event(EventType.NODE_CANCELLED, node_id=node_id, iteration=iteration, attempt=attempt, reason="cancel requested")
        tx.set_run(RunStatus.CANCELLED, finished=True)
        tx.event(EventType.RUN_CANCELLED, status=RunStatus.CANCELLED, reason="cancel requested")
    return RunStatus.CANCELLED


def wait_for_status(store: Store, run_id: str, statuses: set[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status: str = get_run(store, run_id)["status"]
        if status in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def ensure_not_owned(store: Store, run_id: str) -> None:
    run = get_run(store, run_id)
    if owner_alive(run):
        raise RunOwnedError(f"run {run_id} is being run by pid {run['owner_pid']}")


__all__ = ["RunOutcome", "get_run", "now_ms", "open_store", "parse_input", "request_cancel", "resume_run", "start_run"]
