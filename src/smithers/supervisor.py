"""The supervisor: resume runs that nobody is running but that could go on.

A poll finds three kinds of runs:

- ``running`` runs whose owner is gone (on this host its pid is dead; on another host its
  lease is older than the stale threshold; with no owner at all, for longer than that);
- waiting runs whose timer (or signal timeout) is due;
- waiting runs with no live owner where what they wait for has arrived: an approval decided,
  a human request answered, an unconsumed signal matching a waiting node.

Each is resumed in a child process (``smithers resume RUN --lease-token T``), at most
``max_concurrent`` at once. Ownership is handed over, never shared: in one ``BEGIN IMMEDIATE``
transaction the supervisor checks that the run is as it was when assessed (status, owner,
``updated_at_ms``), takes a *handoff* lease ``supervisor:<host>:<pid>:<token>`` (refused while
a live owner or another fresh handoff holds it), starts the child and records
``RunAutoResumed``. The child takes the lease over from exactly that token. A handoff lease is
alive only while fresh (see :mod:`smithers.storage.lease`); the supervisor renews it until the
child has taken over, and releases it if the child exits first.

Every decision is a run event — ``RunAutoResumed`` (reason, child pid) or
``RunAutoResumeSkipped`` (reason) — and ``RunAutoResumeFailed`` when a child exits without
taking the run over (or dies). A skip is recorded only when its reason changes for that run
(remembered in memory, and checked against the run's last supervisor event so that repeated
``--once`` invocations do not repeat it either).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cron
from .errors import RunOwnedError
from .events.ndjson import run_dir
from .states import WAITING_RUN_STATUSES, EventType, RunStatus
from .storage.lease import (
    DEFAULT_STALE_MS,
    HANDOFF_PREFIX,
    Owner,
    claim_run,
    owner_alive,
    release_run,
    renew_lease,
)
from .storage.store import Store, now_ms
from .storage.target import child_db

EVENT_TYPES = (EventType.RUN_AUTO_RESUMED, EventType.RUN_AUTO_RESUME_SKIPPED, EventType.RUN_AUTO_RESUME_FAILED)
CHILD_OK_EXITS = frozenset({0, 1, 2, 3, 130, 143})  # the run ended, failed, was cancelled, waits or was interrupted
RETRY_BACKOFF_MS = (60_000, 30 * 60_000)  # after a failed resume: first delay, cap (doubling in between)
RENEW_EVERY_S = 1.0

# skip reasons (stable strings: a skip is recorded again only when its reason changes)
OWNER_ALIVE = "owner alive"
OTHER_SUPERVISOR = "another supervisor holds it"
DRY_RUN = "dry run"
MAX_CONCURRENT = "max concurrent reached"
NOT_DUE = "timer not due"
CANCEL_REQUESTED = "cancel requested"
SUBFLOW = "subflow run: its parent resumes it"
BACKING_OFF = "last auto-resume failed; retrying later"
SPAWN_FAILED = "could not start the resume process"


@dataclass
class Decision:
    """What the supervisor decided about one run in one poll."""

    run_id: str
    action: str  # "resume" | "skip" | "failed" | "exited"
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    recorded: bool = False  # an event was written for it

    def line(self) -> str:
        if self.action == "fired":  # a cron schedule's due time (smithers.cron): the reason is the whole line
            return self.reason
        shown = ("pid", "exit_code", "would_resume", "would_fire", "log", "fires_at", "retry_at")
        extra = ", ".join(f"{k}={v}" for k, v in self.detail.items() if k in shown)
        tail = f" ({extra})" if extra else ""
        verbs = {"resume": "resumed", "skip": "skipped", "failed": "auto-resume failed", "exited": "resume process exited"}
        return f"{verbs.get(self.action, self.action)} {self.run_id}: {self.reason}{tail}"


@dataclass
class Child:
    run_id: str
    lease: Owner
    proc: subprocess.Popen[bytes]
    reason: str
    log: Path
    taken_over: bool = False


class Supervisor:
    """One supervisor over one store. :meth:`poll` once, or :meth:`run` until stopped."""

    def __init__(
        self,
        store: Store,
        *,
        stale_ms: int = DEFAULT_STALE_MS,
        max_concurrent: int = 3,
        dry_run: bool = False,
        echo: Callable[[str], None] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.store = store
        self.stale_ms = stale_ms
        self.max_concurrent = max_concurrent
        self.dry_run = dry_run
        self.echo = echo or (lambda _line: None)
        self.python = python
        self.children: dict[str, Child] = {}
        self.stopping = False
        self._said: dict[str, str] = {}  # run id -> last reason printed (decisions are printed when they change)
        self._recorded: dict[str, str | None] = {}  # run id -> last skip reason recorded (or the last event type)
        self._failures: dict[str, tuple[int, int]] = {}  # run id -> (failed resumes in a row, retry not before ms)
        self._renewed_at = 0.0

    # -- the loop ------------------------------------------------------------------------------

    def run(self, *, interval: float, once: bool = False) -> None:
        """Poll every ``interval`` seconds until :attr:`stopping`; with ``once``, poll once and
        wait for the children it started."""
        while not self.stopping:
            self.poll()
            if once:
                break
            self._sleep(interval)
        if once:
            while self.children and not self.stopping:
                self._sleep(0.1)
        self.reap()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping:
            self.tend()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.1, left))

    def tend(self) -> None:
        """Reap finished children and keep unclaimed handoff leases fresh."""
        self.reap()
        if time.monotonic() - self._renewed_at >= RENEW_EVERY_S:
            self._renewed_at = time.monotonic()
            for child in self.children.values():
                if not child.taken_over:
                    ours, _ = renew_lease(self.store, child.run_id, child.lease)
                    child.taken_over = not ours

    # -- one poll ------------------------------------------------------------------------------

    def poll(self) -> list[Decision]:
        self.reap()
        now = now_ms()
        decisions: list[Decision] = []
        decisions.extend(self._fire_schedules(now))
        runs = self.store.runs_with_status(WAITING_RUN_STATUSES | {RunStatus.RUNNING, RunStatus.QUEUED})
        for run in runs:
            if run["run_id"] in self.children:
                continue  # ours: a child of this supervisor is resuming it
            verdict = self.assess(run, now)
            if verdict is None:
                continue
            action, reason, detail = verdict
            decision = self._resume(run, reason, detail, now) if action == "resume" else Decision(run["run_id"], "skip", reason, detail)
            if decision is not None:
                if decision.action == "skip":
                    self._skip(decision)
                decisions.append(decision)
        return decisions

    def assess(self, run: dict[str, Any], now: int) -> tuple[str, str, dict[str, Any]] | None:
        """("resume", why, detail), ("skip", why, detail), or None when there is nothing to say."""
        status = run["status"]
        alive = owner_alive(run, stale_ms=self.stale_ms, now=now)
        held = OTHER_SUPERVISOR if (run["owner_id"] or "").startswith(HANDOFF_PREFIX) else OWNER_ALIVE
        if status == RunStatus.QUEUED:  # created by a cron schedule and not started yet (smithers.cron)
            if not cron.drives(run):
                return None  # other queued runs are started by `smithers resume` (or a worker)
            if alive:
                return "skip", held, {"owner_pid": run["owner_pid"], "triggered_by": run["triggered_by"]}
            verdict = ("resume", "queued", {"triggered_by": run["triggered_by"]})
        elif status == RunStatus.RUNNING:
            if alive:
                return "skip", held, {"owner_pid": run["owner_pid"], "owner_host": run["owner_host"]}
            if not run["owner_id"]:
                if now - (run["updated_at_ms"] or 0) < self.stale_ms:
                    return None  # just released (a continuation about to be picked up): give it the stale threshold
                verdict = ("resume", "no owner", {"idle_ms": now - (run["updated_at_ms"] or 0)})
            elif run["cancel_requested_at_ms"]:
                return "skip", CANCEL_REQUESTED, {"hint": f"smithers cancel {run['run_id']}"}
            else:
                same_host = run["owner_host"] == socket.gethostname()
                why = "owner process gone" if same_host and not run["owner_id"].startswith(HANDOFF_PREFIX) else "lease stale"
                verdict = ("resume", why, {"owner_pid": run["owner_pid"], "owner_host": run["owner_host"]})
        else:
            arrived = self._arrived(run, now)
            if arrived is None:
                due = self._next_timer(run)
                if due is not None and due > now:
                    return "skip", NOT_DUE, {"fires_at_ms": due, "fires_at": _clock(due)}
                return None
            if alive:
                return "skip", held, {"owner_pid": run["owner_pid"], "waiting_for": arrived[0]}
            verdict = ("resume", *arrived)
        if run.get("parent_run_id"):
            return "skip", SUBFLOW, {"parent_run_id": run["parent_run_id"]}
        return verdict

    def _fire_schedules(self, now: int) -> list[Decision]:
        """Create the runs of the cron schedules that are due (each claimed once, whatever the number
        of supervisors); the scan that follows starts them. A dry run only says which are due."""
        decisions = []
        if self.dry_run:
            for schedule in self.store.due_schedules(now):
                decision = Decision(f"cron:{schedule['id']}", "skip", DRY_RUN, {"would_fire": schedule["name"]})
                if self._said.get(decision.run_id) != DRY_RUN:
                    self._said[decision.run_id] = DRY_RUN
                    self.echo(decision.line())
                decisions.append(decision)
            return decisions
        for fired in cron.fire_due(self.store, now):
            decision = Decision(fired.run_id, "fired", fired.line(), {"schedule_id": fired.schedule_id}, recorded=True)
            self.echo(decision.line())
            decisions.append(decision)
        return decisions

    def _next_timer(self, run: dict[str, Any]) -> int | None:
        """The run's next due time: its earliest waiting timer, or its ``wake_at_ms`` (a signal
        timeout, or the timer of a Subflow's child run), whichever comes first."""
        timers = self.store.waiting_timers(run["run_id"])
        candidates = [t for t in (timers[0][2] if timers else None, run.get("wake_at_ms")) if t is not None]
        return min(candidates) if candidates else None

    def _arrived(self, run: dict[str, Any], now: int) -> tuple[str, dict[str, Any]] | None:
        """Why a waiting run can go on now, or None."""
        run_id = run["run_id"]
        store = self.store
        due = self._next_timer(run)
        if due is not None and due <= now:
            return ("timer due" if run["status"] == RunStatus.WAITING_TIMER else "wait deadline passed"), {"due_at_ms": due}
        decided = store.decided_approval(run_id)
        if decided:
            return "approval decided", {"node": decided["node_id"], "node_iteration": decided["iteration"], "decision": decided["status"]}
        answered = store.answered_human_request(run_id)
        if answered:
            return "human request answered", {
                "node": answered["node_id"], "node_iteration": answered["iteration"], "request_id": answered["request_id"],
            }
        for wait in store.signal_waits(run_id):
            hit = store.next_signal(run_id, wait["signal"], wait["correlation_id"])
            if hit:
                signalled = {"node": wait["node_id"], "node_iteration": wait["iteration"], "signal": wait["signal"], "signal_seq": hit[0]}
                return "signal received", signalled
        for child in store.waiting_children(run_id):  # a Subflow node waits with its child run: what the child waits for counts here
            arrived = self._arrived(child, now)
            if arrived is not None:
                reason, detail = arrived
                return f"subflow child run {child['run_id']}: {reason}", {"child_run_id": child["run_id"], **detail}
        return None

    # -- resuming ------------------------------------------------------------------------------

    def _resume(self, run: dict[str, Any], reason: str, detail: dict[str, Any], now: int) -> Decision | None:
        run_id = run["run_id"]
        failures, retry_at = self._failures.get(run_id, (0, 0))
        if failures and now < retry_at:
            return Decision(run_id, "skip", BACKING_OFF, {"retry_at": _clock(retry_at), "failures": failures})
        if self.dry_run:
            return Decision(run_id, "skip", DRY_RUN, {"would_resume": reason, **detail})
        if len(self.children) >= self.max_concurrent:
            return Decision(run_id, "skip", MAX_CONCURRENT, {"max_concurrent": self.max_concurrent, "would_resume": reason})
        lease = Owner.handoff()
        log = run_dir(self.store.home, run_id) / "output.log"
        db_args, db_env = child_db(self.store.target)
        argv = [self.python, "-P", "-m", "smithers", "resume", run_id, "--quiet", *db_args, "--lease-token", lease.id]
        cwd = run["cwd"] if run.get("cwd") and os.path.isdir(run["cwd"]) else None
        proc: subprocess.Popen[bytes] | None = None
        try:
            with self.store.tx(run_id) as tx:
                fresh = tx.run_row()
                if fresh is None or any(fresh[k] != run[k] for k in ("status", "owner_id", "updated_at_ms")):
                    raise _Changed
                claim_run(self.store, run_id, lease, stale_ms=self.stale_ms)  # joins this transaction
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
                    # a new session: a Ctrl-C or SIGTERM meant for the supervisor does not cancel the runs it resumed
                    proc = subprocess.Popen(
                        argv, cwd=cwd, stdin=devnull, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                        env={**os.environ, **db_env},
                    )
                tx.event(EventType.RUN_AUTO_RESUMED, reason=reason, pid=proc.pid, supervisor_pid=os.getpid(), lease=lease.id, **detail)
        except _Changed:
            return self._reassess(run_id)
        except RunOwnedError:
            return self._reassess(run_id)
        except Exception as err:
            if proc is not None:  # started, but the lease and event were not committed: stop it
                proc.kill()
                proc.wait()
            if isinstance(err, OSError):
                return Decision(run_id, "skip", SPAWN_FAILED, {"error": str(err)})
            raise
        self.children[run_id] = Child(run_id, lease, proc, reason, log)
        self._recorded[run_id] = EventType.RUN_AUTO_RESUMED
        self._said[run_id] = EventType.RUN_AUTO_RESUMED
        decision = Decision(run_id, "resume", reason, {"pid": proc.pid, **detail}, recorded=True)
        self.echo(decision.line())
        return decision

    def _reassess(self, run_id: str) -> Decision | None:
        """The run changed between the scan and the claim: say why it is not ours (or nothing)."""
        run = self.store.get_run(run_id)
        if run is None:
            return None
        verdict = self.assess(run, now_ms())
        if verdict is None or verdict[0] == "resume":
            return None  # looked at again next poll
        return Decision(run_id, "skip", verdict[1], verdict[2])

    # -- children ------------------------------------------------------------------------------

    def reap(self) -> list[Decision]:
        done: list[Decision] = []
        for run_id, child in list(self.children.items()):
            code = child.proc.poll()
            if code is None:
                continue
            del self.children[run_id]
            row = self.store.get_run(run_id)
            never_took_over = row is not None and row["owner_id"] == child.lease.id
            if never_took_over:
                release_run(self.store, run_id, child.lease)
            status = row["status"] if row else None
            if never_took_over or code not in CHILD_OK_EXITS:
                failures = self._failures.get(run_id, (0, 0))[0] + 1
                delay = min(RETRY_BACKOFF_MS[0] * 2 ** (failures - 1), RETRY_BACKOFF_MS[1])
                self._failures[run_id] = (failures, now_ms() + delay)
                detail = {"exit_code": code, "log": str(child.log), "took_over": not never_took_over, "retry_in_ms": delay}
                with self.store.tx(run_id) as tx:
                    tx.event(EventType.RUN_AUTO_RESUME_FAILED, reason=child.reason, pid=child.proc.pid, **detail)
                self._recorded[run_id] = EventType.RUN_AUTO_RESUME_FAILED
                self._said[run_id] = EventType.RUN_AUTO_RESUME_FAILED
                decision = Decision(run_id, "failed", f"resume exited with {code} (see {child.log})", detail, recorded=True)
            else:
                self._failures.pop(run_id, None)
                decision = Decision(run_id, "exited", f"run is {status}", {"exit_code": code})
                self._said.pop(run_id, None)
            self.echo(decision.line())
            done.append(decision)
        return done

    # -- recording -----------------------------------------------------------------------------

    def _skip(self, decision: Decision) -> None:
        run_id, reason = decision.run_id, decision.reason
        if self._said.get(run_id) != reason:
            self._said[run_id] = reason
            self.echo(decision.line())
        if self.dry_run or self._last_recorded(run_id) == reason:  # a dry run writes nothing at all
            return
        with self.store.tx(run_id) as tx:
            tx.event(EventType.RUN_AUTO_RESUME_SKIPPED, reason=reason, supervisor_pid=os.getpid(), **decision.detail)
        self._recorded[run_id] = reason
        decision.recorded = True

    def _last_recorded(self, run_id: str) -> str | None:
        if run_id not in self._recorded:
            event = self.store.last_event_of(run_id, EVENT_TYPES)
            last = None
            if event is not None:
                skipped = event["type"] == EventType.RUN_AUTO_RESUME_SKIPPED
                last = (event.get("payload") or {}).get("reason") if skipped else event["type"]
            self._recorded[run_id] = last
        return self._recorded[run_id]


class _Changed(Exception):
    """The run is no longer as assessed; roll the claim back."""


def _clock(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
