"""Cron schedules: run a workflow on a croniter pattern, started by ``smithers supervise``.

A schedule (``_smithers_cron``) holds the pattern, its time zone, the workflow and its input
(validated once, at ``cron add``) and ``next_run_at_ms``, the next due time. Each poll of a
supervisor calls :func:`fire_due`; for every enabled schedule whose due time has come it, in
**one transaction**:

1. claims the due time with a conditional update of ``next_run_at_ms`` (guarded by the value it
   read), so of several supervisors racing exactly one wins it and the others create nothing;
2. creates the run, ``queued`` and unowned, with ``triggered_by = "cron:ID"``, and its
   ``RunQueued`` event.

The supervisor then starts the queued run like any run it resumes (a ``smithers resume`` child
under a handoff lease). A supervisor that dies between the two leaves a queued run that the next
poll of any supervisor starts: the due time is never fired twice and its run is never lost.

After downtime the schedule fires **once**, for its latest due time (``catch_up: true``, with
the first missed due time), and ``next_run_at_ms`` moves to the first due time after now.
Patterns are croniter's: five fields, or six with seconds last (``*/5 * * * * *``), or
``@daily`` and friends; they are read in the schedule's time zone (UTC unless ``--tz``).

>>> schedule = add_schedule(store, "0 3 * * *", "nightly.py", raw_input={"repo": "."})  # doctest: +SKIP
>>> fire_due(store, now_ms())                                                           # doctest: +SKIP
[Fired(schedule_id='1f2e3d4c', run_id='20261204-030000-ab12cd', ...)]
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import ScheduleError, UnknownScheduleError, WorkflowLoadError
from .states import EventType, RunStatus
from .storage.lease import Owner
from .storage.store import Store, now_ms
from .storage.tx import Tx

DEFAULT_TIMEZONE = "UTC"
TRIGGER_PREFIX = "cron:"


@dataclass(frozen=True)
class Fired:
    """A due time a supervisor claimed, and the run it created for it."""

    schedule_id: str
    name: str
    run_id: str
    due_at_ms: int
    next_run_at_ms: int | None  # None: the pattern never comes due again
    catch_up: bool
    status: str  # queued, or failed when the workflow file is gone

    def line(self) -> str:
        late = " (catch-up after missed due times)" if self.catch_up else ""
        return f"cron {self.schedule_id} ({self.name}) fired for {_clock(self.due_at_ms)}{late}: run {self.run_id} {self.status}"


# -- patterns ----------------------------------------------------------------------------------


def _zone(timezone: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {timezone!r}", hint="use an IANA name such as UTC, Europe/Paris or America/New_York"
        ) from None


def check_pattern(pattern: str, timezone: str = DEFAULT_TIMEZONE) -> None:
    """Refuse (exit 4, naming it) a pattern croniter cannot read, or an unknown time zone."""
    from croniter import croniter

    _zone(timezone)
    if not croniter.is_valid(pattern):
        try:
            croniter(pattern)
        except (ValueError, KeyError) as err:  # croniter's errors are ValueErrors; the message says which field
            reason = f": {err}"
        else:
            reason = ""
        raise ScheduleError(
            f"invalid cron pattern {pattern!r}{reason}",
            hint='use five fields "MIN HOUR DAY MONTH WEEKDAY" (e.g. "0 3 * * *"), six with seconds last, or @daily/@hourly',
        )
    if next_due(pattern, timezone, now_ms()) is None:
        raise ScheduleError(f"cron pattern {pattern!r} never comes due after now", hint="check its day, month and year fields")


def next_due(pattern: str, timezone: str, after_ms: int) -> int | None:
    """The first due time strictly after ``after_ms`` (epoch ms); None if the pattern never comes
    due again (``"0 0 30 2 *"``, or a year field that has passed)."""
    from croniter import CroniterBadDateError, croniter

    start = datetime.fromtimestamp(after_ms / 1000, _zone(timezone))
    try:
        return int(croniter(pattern, start).get_next(float) * 1000)
    except CroniterBadDateError:
        return None


def latest_due(pattern: str, timezone: str, at_ms: int) -> int | None:
    """The last due time at or before ``at_ms``; None if there is none."""
    from croniter import CroniterBadDateError, croniter

    start = datetime.fromtimestamp(at_ms / 1000, _zone(timezone)) + timedelta(milliseconds=1)
    try:
        return int(croniter(pattern, start).get_prev(float) * 1000)
    except CroniterBadDateError:
        return None


# -- the verbs of `smithers cron` --------------------------------------------------------------


def add_schedule(
    store: Store, pattern: str, workflow: str, *, raw_input: dict[str, Any] | None = None, name: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
) -> dict[str, Any]:
    """Validate the pattern, the workflow (it loads, its input validates, it renders) and store
    the schedule, due next at the pattern's first due time from now. Returns :func:`describe`."""
    from .authoring.loader import load_workflow
    from .ops import check_first_render

    check_pattern(pattern, timezone)
    loaded = load_workflow(workflow)
    input_value, input_json = loaded.workflow.validate_input(raw_input)
    check_first_render(loaded, input_value, store)
    schedule_id = secrets.token_hex(4)
    with store.tx() as tx:
        tx.insert_schedule(
            schedule_id=schedule_id, name=name or loaded.workflow.name, pattern=pattern, timezone=timezone,
            workflow_spec=loaded.spec, workflow_name=loaded.workflow.name, input_json=json.dumps(input_json), cwd=os.getcwd(),
            max_concurrency=loaded.workflow.max_concurrency, next_run_at_ms=next_due(pattern, timezone, tx.ts),
        )
    return describe(get_schedule(store, schedule_id))


def get_schedule(store: Store, schedule_id: str) -> dict[str, Any]:
    """The schedule's row, or :class:`UnknownScheduleError` (exit 4) naming the id."""
    schedule = store.schedule(schedule_id)
    if schedule is None:
        raise UnknownScheduleError(f"no cron schedule {schedule_id!r} in {store.label}", hint="list them with: smithers cron list")
    return schedule


def describe(schedule: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``cron list --json``: ``{id, name, pattern, workflow, enabled, next_run_at_ms,
    last_run_id}`` plus ``timezone, input, last_fired_for_ms, created_at_ms``."""
    return {
        "id": schedule["id"],
        "name": schedule["name"],
        "pattern": schedule["pattern"],
        "workflow": schedule["workflow_spec"],
        "enabled": schedule["enabled"],
        "next_run_at_ms": schedule["next_run_at_ms"],
        "last_run_id": schedule["last_run_id"],
        "timezone": schedule["timezone"],
        "input": json.loads(schedule["input_json"]),
        "last_fired_for_ms": schedule["last_fired_for_ms"],
        "created_at_ms": schedule["created_at_ms"],
    }


def list_schedules(store: Store) -> list[dict[str, Any]]:
    return [describe(s) for s in store.schedules()]


def remove_schedule(store: Store, schedule_id: str) -> dict[str, Any]:
    """Delete the schedule; the runs it started stay (their ``triggered_by`` still names it)."""
    schedule = get_schedule(store, schedule_id)
    with store.tx() as tx:
        if not tx.delete_schedule(schedule_id):
            raise UnknownScheduleError(f"no cron schedule {schedule_id!r} in {store.label}")
    return describe(schedule)


def pause_schedule(store: Store, schedule_id: str) -> dict[str, Any]:
    """Stop firing; due times while paused are skipped, not caught up."""
    get_schedule(store, schedule_id)
    with store.tx() as tx:
        tx.set_schedule_enabled(schedule_id, False, None)
    return describe(get_schedule(store, schedule_id))


def resume_schedule(store: Store, schedule_id: str) -> dict[str, Any]:
    """Fire again, from the first due time after now."""
    schedule = get_schedule(store, schedule_id)
    with store.tx() as tx:
        tx.set_schedule_enabled(schedule_id, True, next_due(schedule["pattern"], schedule["timezone"], tx.ts))  # None: never again
    return describe(get_schedule(store, schedule_id))


def run_now(store: Store, schedule_id: str) -> tuple[str, Owner]:
    """Create the schedule's run now (its due times are untouched), held by a handoff lease for the
    process that will drive it: pass the lease's id to ``smithers resume RUN --lease-token``. If that
    process never takes it, the lease goes stale and ``smithers supervise`` starts the run."""
    schedule = get_schedule(store, schedule_id)
    lease = Owner.handoff()
    run_id = _new_run_id()
    fingerprint = _fingerprint(schedule)
    with store.tx(run_id) as tx:
        if not tx.set_last_run(schedule_id, run_id):
            raise UnknownScheduleError(f"no cron schedule {schedule_id!r} in {store.label}")
        _create_run(tx, schedule, fingerprint, owner=lease, due_at_ms=tx.ts, run_now=True)
    return run_id, lease


# -- firing (the supervisor's side) ------------------------------------------------------------


def fire_due(store: Store, now: int | None = None) -> list[Fired]:
    """Create one run for each schedule due at ``now`` (default: the clock), each claim in one
    transaction with its run; a due time another process claimed first is left out."""
    now = now_ms() if now is None else now
    fired = []
    for schedule in store.due_schedules(now):
        result = fire(store, schedule, now)
        if result is not None:
            fired.append(result)
    return fired


def fire(store: Store, schedule: dict[str, Any], now: int) -> Fired | None:
    """Claim ``schedule``'s due time as read (``schedule["next_run_at_ms"]``, at or before ``now``)
    and create its run; None when another process claimed it first."""
    expected = schedule["next_run_at_ms"]
    due = max(expected, latest_due(schedule["pattern"], schedule["timezone"], now) or expected)
    upcoming = next_due(schedule["pattern"], schedule["timezone"], now)
    fingerprint = _fingerprint(schedule)  # file reads before the write lock
    run_id = _new_run_id()
    with store.tx(run_id) as tx:
        if not tx.claim_tick(schedule["id"], expected_next_ms=expected, fired_for_ms=due, next_run_at_ms=upcoming, run_id=run_id):
            return None
        catch_up = due != expected
        extra = {"first_missed_at_ms": expected} if catch_up else {}
        status = _create_run(tx, schedule, fingerprint, owner=None, due_at_ms=due, catch_up=catch_up, **extra)
    return Fired(schedule["id"], schedule["name"], run_id, due, upcoming, catch_up, status)


def drives(run: dict[str, Any]) -> bool:
    """Whether ``smithers supervise`` starts this queued run: one a schedule created."""
    return run["status"] == RunStatus.QUEUED and str(run.get("triggered_by") or "").startswith(TRIGGER_PREFIX)


def _create_run(tx: Tx, schedule: dict[str, Any], fingerprint: dict[str, str] | None, *, owner: Owner | None, **payload: Any) -> str:
    """The run row (``queued``, ``triggered_by``) and its ``RunQueued`` event, in ``tx``. A workflow
    file that is gone fails the run at once, naming the file, instead of queueing work that cannot start."""
    trigger = TRIGGER_PREFIX + schedule["id"]
    tx.create_run(
        workflow=schedule["workflow_name"], workflow_spec=schedule["workflow_spec"], input_json=schedule["input_json"],
        source_json=json.dumps(fingerprint or {}), cwd=schedule["cwd"], max_concurrency=schedule["max_concurrency"], owner=owner,
    )
    tx.set_triggered_by(trigger)
    tx.set_run(RunStatus.QUEUED)
    tx.event(EventType.RUN_QUEUED, triggered_by=trigger, schedule_id=schedule["id"], pattern=schedule["pattern"], **payload)
    if fingerprint is not None:
        return RunStatus.QUEUED
    error = WorkflowLoadError(
        f"workflow file not found: {_workflow_path(schedule)} (cron schedule {schedule['id']})",
        hint=f"restore the file, or remove the schedule with: smithers cron rm {schedule['id']}",
    ).to_record()
    tx.set_run(RunStatus.FAILED, error=error, finished=True)
    tx.event(EventType.RUN_FAILED, status=RunStatus.FAILED, error=error)
    return RunStatus.FAILED


def _workflow_path(schedule: dict[str, Any]) -> Path:
    from .authoring.loader import split_spec

    return split_spec(schedule["workflow_spec"])[0]


def _fingerprint(schedule: dict[str, Any]) -> dict[str, str] | None:
    """The workflow's source fingerprint as ``resume`` checks it, or None when its file is gone."""
    from .authoring.loader import source_fingerprint

    path = _workflow_path(schedule)
    return source_fingerprint(path) if path.is_file() else None


def _new_run_id() -> str:
    """A run id in the format of :func:`smithers.ops.new_run_id` (without importing the engine)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _clock(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


__all__ = [
    "Fired", "add_schedule", "check_pattern", "describe", "drives", "fire", "fire_due", "get_schedule", "latest_due",
    "list_schedules", "next_due", "pause_schedule", "remove_schedule", "resume_schedule", "run_now",
]
