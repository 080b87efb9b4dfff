"""``smithers worker``: one process that drives runs and executes task attempts from the shared queue.

A worker does two jobs in one asyncio loop:

1. **Owner.** It adopts runs nobody drives — ``queued`` runs (``up --queue``, a cron schedule's),
   ``running`` runs whose owner is dead or whose lease is stale, and waiting runs whose wait has
   ended (an approval decided, a timer due: what ``smithers supervise`` resumes) — and drives each
   *in-process* as a :class:`~smithers.engine.loop.RunLoop`, so a SIGKILL of the worker really
   stops the owner and the lease lapses. Adoption takes the lease with fencing
   (:mod:`smithers.storage.lease`); the run's in-flight attempts become ``abandoned`` and run again.
   Its compute and agent attempts go to the queue (:mod:`smithers.engine.remote`); only the owner
   schedules, so ``Parallel`` and run limits hold across workers.
2. **Executor.** ``--concurrency`` slots claim attempts from the queue (any run's, its own
   included), run them (:mod:`smithers.engine.executor`), heartbeat their claims and write the
   result back with a conditional update, so a zombie's late result is dropped.

SIGTERM (or Ctrl-C): stop claiming; let in-flight attempts finish for ``--grace`` seconds; hand
the rest back to the queue (another worker takes them at once); stop driving runs (their leases
are released: another worker adopts them); exit 0.

>>> enqueue_run("flow.py", store=store, raw_input={"n": 3})   # doctest: +SKIP
'20261203-101500-ab12cd'
>>> asyncio.run(Worker(store, concurrency=8).run())          # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .authoring.context import TaskContext
from .authoring.loader import load_workflow, source_fingerprint
from .engine.executor import RemoteRunner
from .engine.loop import RunLoop
from .engine.recovery import recover
from .engine.remote import RemoteAttempts
from .engine.state import RunState
from .errors import RunOwnedError, SmithersError, UserError
from .events.ndjson import NdjsonSink, run_dir
from .ops import validate_new_run
from .states import ENDED_RUN_STATUSES, WAITING_RUN_STATUSES, EventType, RunStatus
from .storage.lease import Owner, claim_run, owner_alive, release_run
from .storage.queue import DONE_CHANNEL, QUEUE_CHANNEL, DatabaseError, FinishedAttempt
from .storage.store import Store, now_ms

QUEUE_TRIGGER = "queue"
ADOPT_EVERY = 0.5  # seconds between scans for runs to adopt
UNOWNED_GRACE_MS = 1_000  # a running run with no owner (released by a stopping worker) is adopted after this
SQLITE_POLL_S = 0.02  # SQLite has no push: idle slots look at the queue this often
PUSH_POLL_S = 0.5  # with LISTEN/NOTIFY, a safety poll
TICK_ERROR_BACKOFF_S = 1.0  # after a failed claim, renewal or adoption scan
RENEW_AT_LEAST_EVERY = 1.0  # seconds: claims are renewed every quarter lease, and at least this often (task heartbeats ride along)

Key = tuple[str, str, int, int]


def enqueue_run(
    spec: str, *, store: Store, raw_input: dict[str, Any] | None, run_id: str | None = None, max_concurrency: int | None = None,
    no_cache: bool = False,
) -> str:
    """``smithers up WF --queue``: validate like ``up`` (input, first render), create the run
    ``queued`` and unowned (``triggered_by: "queue"``, a ``RunQueued`` event) and return its id.
    A worker drives it; so does ``smithers resume RUN``."""
    loaded = load_workflow(spec)
    _input_value, input_json, run_id = validate_new_run(loaded, raw_input, store, max_concurrency, run_id)
    if store.get_run(run_id) is not None:
        raise UserError(f"run {run_id!r} already exists in {store.label}", hint=f"resume it with: smithers resume {run_id}")
    with store.tx(run_id) as tx:
        tx.create_run(
            workflow=loaded.workflow.name, workflow_spec=loaded.spec, input_json=json.dumps(input_json),
            source_json=json.dumps(source_fingerprint(loaded.path)), cwd=os.getcwd(),
            max_concurrency=max_concurrency or loaded.workflow.max_concurrency,
        )
        tx.set_triggered_by(QUEUE_TRIGGER)
        tx.set_run(RunStatus.QUEUED)
        if no_cache:
            tx.set_no_cache()
        tx.event(EventType.RUN_QUEUED, triggered_by=QUEUE_TRIGGER, workflow=loaded.workflow.name)
        store.notify(QUEUE_CHANNEL, run_id)
    return run_id


@dataclass
class Slot:
    """One claimed attempt being executed."""

    key: Key
    task: asyncio.Task[None]
    tc: TaskContext | None = None
    flushed_beats: int = 0


@dataclass
class Driven:
    """One run this worker owns."""

    run_id: str
    task: asyncio.Task[None]
    engine: RunLoop | None = None
    hub: RemoteAttempts | None = None


@dataclass
class WorkerStats:
    runs_adopted: int = 0
    attempts_done: int = 0
    attempts_dropped: int = 0
    handed_back: int = 0
    errors: list[str] = field(default_factory=list)


class Worker:
    """One worker over one store. ``await run()`` until SIGTERM/SIGINT (or :meth:`stop`)."""

    def __init__(
        self, store: Store, *, concurrency: int = 4, name: str | None = None, lease_timeout_s: float = 30.0, grace_s: float = 10.0,
        echo: Callable[[dict[str, Any]], None] | None = None, drive_runs: bool = True,
    ) -> None:
        if concurrency < 0:
            raise UserError(f"--concurrency must be 0 (own runs only) or more, got {concurrency}")
        if concurrency == 0 and not drive_runs:
            raise UserError("--concurrency 0 with --no-runs leaves the worker nothing to do", hint="drop one of them")
        if lease_timeout_s < 0.5:
            raise UserError(f"--lease-timeout must be at least 0.5s, got {lease_timeout_s:g}s")
        self.store = store
        self.concurrency = concurrency
        self.owner = Owner.this_process()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.id = f"{self.name}/{self.owner.id}"  # what a claim records: unique per process, readable
        self.lease_ms = int(lease_timeout_s * 1000)
        self.grace_s = grace_s
        self.echo = echo or (lambda _record: None)
        self.drive_runs = drive_runs
        push = getattr(store, "dialect", "sqlite") != "sqlite"
        self.poll_s = PUSH_POLL_S if push else SQLITE_POLL_S
        self._push = push
        self.runner = RemoteRunner(store)
        self.slots: dict[Key, Slot] = {}
        self.driven: dict[str, Driven] = {}
        self.refused: dict[str, str] = {}  # run id -> why this worker cannot drive it (said once)
        self.stats = WorkerStats()
        self.stopping = False
        self.wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adopted_at = 0.0
        self._renewed_at = 0.0
        self._listener: Any = None
        self._finishing: list[tuple[FinishedAttempt, asyncio.Future[bool]]] = []  # results to write in this turn

    # -- the loop --------------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = True) -> WorkerStats:
        self._loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.stop)
        listen_thread = self._start_listening()
        self._say("started", concurrency=self.concurrency, lease_timeout_s=self.lease_ms / 1000, pid=os.getpid())
        try:
            while not self.stopping:
                try:
                    self._tick()
                except (SmithersError, OSError, DatabaseError) as err:  # e.g. the database is briefly unreachable: say so, go on
                    self.stats.errors.append(repr(err))
                    self._say("error", error=repr(err), retry_in_s=TICK_ERROR_BACKOFF_S)
                    await asyncio.sleep(TICK_ERROR_BACKOFF_S)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_s)
            await self._shutdown()
        finally:
            if self._listener is not None:
                self._listener.close()
            if listen_thread is not None:
                listen_thread.join(timeout=2)
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    self._loop.remove_signal_handler(sig)
        self._say("stopped", attempts_done=self.stats.attempts_done, handed_back=self.stats.handed_back)
        return self.stats

    def stop(self) -> None:
        """Stop claiming; :meth:`run` then winds down (grace period, hand back, release)."""
        if not self.stopping:
            self.stopping = True
            self._say("stopping", grace_s=self.grace_s, in_flight=len(self.slots), runs=len(self.driven))
        if self.wake is not None:
            self.wake.set()

    def _tick(self) -> None:
        now = time.monotonic()
        if self.drive_runs and now - self._adopted_at >= ADOPT_EVERY:
            self._adopted_at = now
            self._adopt_runs()
        self._claim()
        if now - self._renewed_at >= min(self.lease_ms / 4000, RENEW_AT_LEAST_EVERY):
            self._renewed_at = now
            self._renew()

    def _start_listening(self) -> threading.Thread | None:
        """With a push-capable store (PostgreSQL), one thread waits on LISTEN and wakes the slots
        (a new attempt) or the run whose attempt finished."""
        if not self._push:
            return None
        self._listener = self.store.listener([QUEUE_CHANNEL, DONE_CHANNEL])
        loop = self._loop
        assert loop is not None

        def listen() -> None:
            while not self.stopping:
                try:
                    notes = self._listener.wait(1.0)
                except Exception:  # the listener's connection closed: polling still covers everything
                    return
                for channel, payload in notes:
                    loop.call_soon_threadsafe(self._notified, channel, payload)

        thread = threading.Thread(target=listen, name="smithers-worker-listen", daemon=True)
        thread.start()
        return thread

    def _notified(self, channel: str, payload: str) -> None:
        if channel == DONE_CHANNEL:
            driven = self.driven.get(payload)
            if driven is not None and driven.hub is not None:
                driven.hub.kick.set()
        elif self.wake is not None:
            self.wake.set()

    # -- executor slots ----------------------------------------------------------------------

    def _claim(self) -> None:
        if self.stopping:
            return
        free = self.concurrency - len(self.slots)
        if free <= 0:
            return
        for row in self.store.claim_attempts(self.id, free, self.lease_ms):
            key: Key = (row["run_id"], row["node_id"], row["iteration"], row["attempt"])
            slot = Slot(key=key, task=asyncio.ensure_future(self._execute(row)))
            self.slots[key] = slot
            slot.task.add_done_callback(functools.partial(self._slot_done, key))

    async def _execute(self, row: dict[str, Any]) -> None:
        key: Key = (row["run_id"], row["node_id"], row["iteration"], row["attempt"])

        def started(tc: TaskContext) -> None:
            if key in self.slots:
                self.slots[key].tc = tc

        outcome = await self.runner.run(row, worker=self.id, on_start=started)
        kept = await self._finish((key, outcome.ok, outcome.result_json, outcome.error_json, outcome.meta_json, outcome.heartbeat_json))
        if kept:
            self.stats.attempts_done += 1
        else:
            self.stats.attempts_dropped += 1
            self._say("dropped", run_id=key[0], node_id=key[1], iteration=key[2], attempt=key[3], reason="no longer this worker's claim")

    def _finish(self, result: FinishedAttempt) -> asyncio.Future[bool]:
        """Write this attempt's result together with the others that finished in the same turn
        of the event loop (slots claimed together end together): one statement for all of them."""
        assert self._loop is not None
        future: asyncio.Future[bool] = self._loop.create_future()
        self._finishing.append((result, future))
        if len(self._finishing) == 1:
            self._loop.call_soon(self._write_finished)
        return future

    def _write_finished(self) -> None:
        batch, self._finishing = self._finishing, []
        try:
            kept = self.store.finish_claimed_many(self.id, [result for result, _ in batch])
        except Exception as err:  # each attempt's task fails with it, as a lone write's would
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for result, future in batch:
            if not future.done():  # not cancelled meanwhile
                future.set_result(result[0] in kept)

    def _slot_done(self, key: Key, _task: object = None) -> None:
        slot = self.slots.pop(key, None)
        if slot is not None and not slot.task.cancelled() and slot.task.exception() is not None:
            err = slot.task.exception()
            self.stats.errors.append(repr(err))
            self._say("error", run_id=key[0], node_id=key[1], error=repr(err))
        if self.wake is not None:
            self.wake.set()  # a free slot: claim again now

    def _renew(self) -> None:
        """Extend this worker's claims (with the tasks' heartbeats); stop attempts taken away."""
        if not self.slots:
            return
        beats: dict[Key, tuple[int, str | None]] = {}
        for key, slot in self.slots.items():
            tc = slot.tc
            if tc is not None and tc._beats != slot.flushed_beats:
                slot.flushed_beats = tc._beats
                beats[key] = (now_ms() - int((time.monotonic() - tc._heartbeat_at) * 1000), tc._heartbeat_json)
        kept = self.store.renew_claims(self.id, list(self.slots), self.lease_ms, beats)
        for key, slot in list(self.slots.items()):
            if key not in kept and not slot.task.done():
                slot.task.cancel()  # cancelled by its owner (timeout, cancel) or abandoned: the result would be dropped
                self._say("taken-back", run_id=key[0], node_id=key[1], iteration=key[2], attempt=key[3])

    # -- owning runs -------------------------------------------------------------------------

    def _adopt_runs(self) -> None:
        if self.stopping:
            return
        now = now_ms()
        for run in self.store.runs_with_status(WAITING_RUN_STATUSES | {RunStatus.RUNNING, RunStatus.QUEUED}):
            run_id = run["run_id"]
            if run_id in self.driven or run_id in self.refused or run.get("parent_run_id"):
                continue  # a Subflow's child run is driven by its parent's owner
            if self._adoptable(run, now):
                self._adopt(run)

    def _adoptable(self, run: dict[str, Any], now: int) -> bool:
        status = run["status"]
        if status == RunStatus.QUEUED:
            trigger = str(run.get("triggered_by") or "")
            return trigger == QUEUE_TRIGGER or trigger.startswith("cron:")  # forks and retry-task stay queued for the user
        if owner_alive(run, stale_ms=self.lease_ms, now=now):
            return False
        if status == RunStatus.RUNNING:
            if run["cancel_requested_at_ms"]:
                return False  # `smithers cancel` marks it
            return bool(run["owner_id"]) or now - (run["updated_at_ms"] or 0) >= UNOWNED_GRACE_MS
        from .supervisor import Supervisor  # waiting runs: adopted when what they wait for has arrived

        verdict = Supervisor(self.store, stale_ms=self.lease_ms).assess(run, now)
        return verdict is not None and verdict[0] == "resume"

    def _adopt(self, run: dict[str, Any]) -> None:
        run_id = run["run_id"]
        try:
            with self.store.tx(run_id) as tx:  # the claim holds only if the run is still as assessed
                fresh = tx.run_row()
                if fresh is None or any(fresh[k] != run[k] for k in ("status", "owner_id", "updated_at_ms")):
                    return
                claim_run(self.store, run_id, self.owner, stale_ms=self.lease_ms)  # joins this transaction
        except RunOwnedError:
            return  # another worker was faster
        self.stats.runs_adopted += 1
        self._say("adopted", run_id=run_id, was=run["status"], previous_owner=run.get("owner_id"))
        self.driven[run_id] = Driven(run_id, asyncio.ensure_future(self._drive(run_id)))

    async def _drive(self, run_id: str) -> None:
        try:
            status = await self._drive_one(run_id)
        except (SmithersError, OSError, DatabaseError) as err:  # the run is not lost: released (or its lease lapses), it is adopted again
            self.driven.pop(run_id, None)
            self.runner.forget(run_id)
            self.stats.errors.append(repr(err))
            self._say("error", run_id=run_id, error=repr(err))
            with contextlib.suppress(SmithersError, OSError, DatabaseError):
                release_run(self.store, run_id, self.owner)
            return
        driven = self.driven.pop(run_id, None)
        self.runner.forget(run_id)
        if driven is not None and driven.engine is not None and status == RunStatus.CONTINUED and driven.engine.next_run_id:
            next_id = driven.engine.next_run_id  # a continue-as-new chain goes on here, like `up` follows it
            try:
                claim_run(self.store, next_id, self.owner, stale_ms=self.lease_ms)
            except RunOwnedError:
                return
            self.driven[next_id] = Driven(next_id, asyncio.ensure_future(self._drive(next_id)))

    async def _drive_one(self, run_id: str) -> str | None:
        """Drive one run this worker holds the lease of, to its end (or until it waits)."""
        driven = self.driven[run_id]
        try:
            run = self.store.get_run(run_id)
            assert run is not None
            loaded = load_workflow(run["workflow_spec"])
            input_value, _ = loaded.workflow.validate_input(json.loads(run["input_json"]))
            before = json.loads(run["source_json"] or "{}")
            after = source_fingerprint(loaded.path)
            changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
            if changed:
                raise UserError(f"this worker's copy of the workflow differs from the run's: {', '.join(changed)}")
        except SmithersError as err:
            self.refused[run_id] = err.message
            release_run(self.store, run_id, self.owner)
            self._say("refused", run_id=run_id, reason=err.message)
            return None
        recover(self.store, run_id, self.owner, stale_ms=self.lease_ms)
        engine = RunLoop(
            store=self.store, run_id=run_id, workflow=loaded.workflow, input_value=input_value, owner=self.owner,
            state=RunState(self.store, run_id, loaded.models), max_concurrency=run["max_concurrency"],
            cwd=str(loaded.workflow.working_dir(loaded.path)),
        )
        engine.carried = json.loads(run["carried_json"]) if run.get("carried_json") else None
        engine.continued_from = run.get("continued_from")
        engine.cache.lookups = not self.store.run_no_cache(run_id)
        hub = RemoteAttempts(engine, poll_s=self.poll_s)
        engine.remote = hub
        driven.engine, driven.hub = engine, hub
        sink = NdjsonSink(run_dir(self.store.home, run_id) / "events.ndjson", run_id)
        self.store.commit_listeners.append(sink)
        status: str | None = None
        try:
            status = await engine.run()
        except SmithersError as err:  # a render error: the run fails, keeping every finished row
            record = err.to_record()
            with self.store.tx(run_id) as tx:
                tx.set_run(RunStatus.FAILED, error=record, finished=True)
                tx.event(EventType.RUN_FAILED, status=RunStatus.FAILED, error=record)
            release_run(self.store, run_id, self.owner)
            status = RunStatus.FAILED
        finally:
            hub.handing_over = True
            for running in list(engine.running.values()):  # stopped mid-run (shutdown): the next owner re-runs them
                running.task.cancel()
            hub.close()
            self.store.commit_listeners.remove(sink)
            sink.close()
        self._say("run-ended" if status in ENDED_RUN_STATUSES else "run-paused", run_id=run_id, status=status)
        return status

    # -- stopping ----------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Finish in-flight attempts within the grace period (runs keep collecting meanwhile),
        hand back the rest, then stop driving runs (their leases are released)."""
        deadline = time.monotonic() + self.grace_s
        while self.slots and time.monotonic() < deadline:
            await asyncio.wait({s.task for s in self.slots.values()}, timeout=min(0.25, max(deadline - time.monotonic(), 0.0)))
            self._renew()
        if self.slots:
            returned = self.store.hand_back(self.id, list(self.slots))
            self.stats.handed_back += returned
            for slot in list(self.slots.values()):
                slot.task.cancel()
            await asyncio.wait({s.task for s in self.slots.values()}, timeout=2.0)
            self._say("handed-back", attempts=returned)
        for driven in list(self.driven.values()):
            driven.task.cancel()
        if self.driven:
            await asyncio.wait({d.task for d in self.driven.values()}, timeout=5.0)
        for run_id in list(self.driven):
            release_run(self.store, run_id, self.owner)  # a run task that did not unwind in time still hands its lease back

    def _say(self, what: str, **detail: Any) -> None:
        self.echo({"event": what, "worker": self.name, "at_ms": now_ms(), **detail})


__all__ = ["QUEUE_TRIGGER", "Worker", "WorkerStats", "enqueue_run"]
