"""Remote attempts: the run's owner hands compute and agent attempts to the shared queue.

A run driven by ``smithers worker`` sets ``RunLoop.remote`` to a :class:`RemoteAttempts`. Its
``_spawn`` then calls :meth:`RemoteAttempts.start` instead of running the task here: the queue
row is written in the same transaction as the attempt row (the spawn batch), and the attempt's
asyncio task awaits the row's outcome. Any worker's executor slot (``engine/executor.py``) runs
it; this side learns of the result from one poller per run (a wake-up from ``store.listener``
on PostgreSQL, a short poll on SQLite) and returns the validated model — or raises the task's
error — so the loop's normal ``_collect`` commits the finish and the output row exactly once,
fenced by the run's lease.

What stays with the owner: static tasks, waits, subflows, ``continue_as_new``, and tasks with
``memory=`` (their Recall/Remember read and write the owner's memory in its transactions).

A worker that stops heartbeating its claim (killed, partitioned) lets the lease lapse: the
owner marks the row and the attempt ``abandoned`` and the task runs again as a fresh attempt,
on whichever worker claims it. A lost attempt does not use up the task's retry budget — the
task did not fail — unless the task lost :data:`MAX_LOST_IN_A_ROW` attempts in a row, after which
the loss counts as a failure (a task that takes down every worker it lands on must not loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..authoring.context import TaskContext
from ..errors import ErrorCode, LeaseLostError, RunError
from ..states import AttemptStatus, EventType, NodeStatus
from ..storage.queue import ABANDONED, CANCELLED, QUEUE_CHANNEL
from .tree import TaskDescriptor

if TYPE_CHECKING:
    from .loop import RunLoop

REMOTE_MODES = frozenset({"compute", "agent"})
MAX_LOST_IN_A_ROW = 3
HOUSEKEEPING_EVERY = 0.5  # seconds: expired claims, heartbeats, collected rows

Key = tuple[str, int, int]  # node id, iteration, attempt


def _monotonic_of(epoch_ms: int) -> float:
    """``time.monotonic()`` at the wall-clock instant ``epoch_ms`` (never in the future)."""
    return time.monotonic() - max(time.time() - epoch_ms / 1000, 0.0)


class WorkerLostError(RunError):
    """The worker running a remote attempt stopped renewing its claim (it died or was cut off)."""

    code = ErrorCode.TASK_FAILED
    abandoned = True  # the loop requeues it without using the retry budget (see RemoteAttempts.requeue_if_lost)


class RemoteTaskError(RunError):
    """A remote attempt failed on its worker; subclasses carry the original error's type name."""


_ERROR_CLASSES: dict[str, type[RemoteTaskError]] = {}


def remote_error(record: dict[str, Any], worker: str | None) -> RemoteTaskError:
    """The worker's error record as an exception the loop records like a local one: the same
    ``type``, ``code``, ``message``, ``retryable`` and ``hint``; the worker's traceback in ``details``."""
    name = str(record.get("type") or "RemoteTaskError")
    cls = _ERROR_CLASSES.get(name)
    if cls is None:
        cls = _ERROR_CLASSES[name] = type(name if name.isidentifier() else "RemoteTaskError", (RemoteTaskError,), {})
    try:
        code: ErrorCode | None = ErrorCode(record.get("code", ErrorCode.TASK_FAILED))
    except ValueError:
        code = None
    details = dict(record.get("details") or {})
    details["worker"] = worker
    if record.get("traceback"):
        details["worker_traceback"] = record["traceback"]
    return cls(
        str(record.get("message") or "the task failed on a worker"), retryable=bool(record.get("retryable", True)),
        hint=record.get("hint"), details=details, code=code,
    )


class RemoteAttempts:
    """The owner's side of one run's remote attempts (one per :class:`RunLoop`)."""

    def __init__(self, engine: RunLoop, *, poll_s: float = 0.02) -> None:
        self.engine = engine
        self.store = engine.store
        self.run_id = engine.run_id
        self.owner_id = engine.owner.id
        self.poll_s = poll_s
        self.kick = asyncio.Event()  # set (thread-safely, by the worker's listener) when a result may have arrived
        self.waiting: dict[Key, asyncio.Future[dict[str, Any]]] = {}
        self.lost: dict[tuple[str, int], int] = {}  # lost attempts in a row, per task
        self.render_no = 0
        self._rendered: object = None
        self._poller: asyncio.Task[None] | None = None
        self._housekept = 0.0
        self._beats_seen: dict[Key, int] = {}
        self._notified_in: object = None
        self.handing_over = False  # the owner stops without ending the run: leave its rows to the next owner's recovery

    def takes(self, desc: TaskDescriptor) -> bool:
        """Whether this task's attempts go to the queue (compute and agent tasks without memory)."""
        return desc.mode in REMOTE_MODES and desc.task.memory is None

    def start(self, desc: TaskDescriptor, tc: TaskContext) -> Coroutine[Any, Any, BaseModel]:
        """Enqueue attempt ``tc.attempt`` (inside the spawn's open transaction) and return the
        coroutine that waits for its outcome."""
        if self.engine.rendered is not self._rendered:  # workers re-render once per owner render (executor cache key)
            self._rendered = self.engine.rendered
            self.render_no += 1
        with self.engine.persist.tx() as tx:
            tx.enqueue_attempt(desc.node_id, desc.iteration, tc.attempt, desc.mode, self.owner_id, self.render_no)
            if tx is not self._notified_in:  # one wake-up per transaction (a spawn batch) is enough
                self._notified_in = tx
                self.store.notify(QUEUE_CHANNEL, self.run_id)
        key = (desc.node_id, desc.iteration, tc.attempt)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[key] = future
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll_loop())
        return self._outcome(desc, tc, key, future)

    async def _outcome(self, desc: TaskDescriptor, tc: TaskContext, key: Key, future: asyncio.Future[dict[str, Any]]) -> BaseModel:
        try:
            row = await future
        except asyncio.CancelledError:  # a timeout or a cancel: take the row back from its worker
            self.waiting.pop(key, None)
            if self.handing_over:
                raise
            # best effort: were this write lost, the worker's late result is ignored by the owner anyway
            with contextlib.suppress(Exception), self.store.tx(self.run_id) as tx:
                tx.close_queued(*key, CANCELLED)
            raise
        if row["status"] == ABANDONED:
            raise WorkerLostError(
                f"task {desc.node_id!r} attempt {tc.attempt}: its worker {row.get('worker')!r} stopped renewing its claim",
                hint="the task runs again on another worker; see `smithers worker` logs on that machine",
                details={"worker": row.get("worker")},
            )
        meta = json.loads(row["meta_json"]) if row.get("meta_json") else {}
        running = self.engine.running.get(desc.key)
        if running is not None and running.attempt == tc.attempt:
            running.info = meta or running.info
        if row.get("heartbeat_json"):
            tc._heartbeat_json = row["heartbeat_json"]
        if row["status"] == "finished":
            self.lost.pop(desc.key, None)
            return desc.model.model_validate_json(row["result_json"])
        self.lost.pop(desc.key, None)
        raise remote_error(json.loads(row["error_json"] or "{}"), row.get("worker"))

    def requeue_if_lost(self, desc: TaskDescriptor, attempt: int, err: BaseException) -> bool:
        """Called by the loop for a failed remote attempt. If its worker was lost (and the task
        has not lost too many in a row), record the attempt ``abandoned`` and the node ``pending``
        in one transaction, and return True: the loop puts the task back in the plan."""
        if not getattr(err, "abandoned", False):
            return False
        lost = self.lost.get(desc.key, 0) + 1
        self.lost[desc.key] = lost
        if lost >= MAX_LOST_IN_A_ROW:
            return False  # counted as a failure: the retry policy decides
        with self.engine.persist.tx() as tx:
            tx.finish_attempt(
                desc.node_id, desc.iteration, attempt, AttemptStatus.ABANDONED, error={"type": type(err).__name__, "message": str(err)}
            )
            tx.set_node(desc.node_id, desc.iteration, NodeStatus.PENDING)
            tx.event(
                EventType.ATTEMPT_ABANDONED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt,
                reason="its worker stopped renewing its claim", worker=getattr(err, "details", {}).get("worker"),
            )
        self.engine.state.nodes[desc.key].status = NodeStatus.PENDING
        return True

    # -- the poller ----------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while self.waiting:
            self.kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), self.poll_s)
            try:
                self.poll()
            except LeaseLostError:
                return  # the loop finds out at its next maintenance and stops

    def poll(self) -> None:
        """Hand finished rows to their waiting attempts; every :data:`HOUSEKEEPING_EVERY` seconds
        also expire lapsed claims, copy claims and heartbeats, and mark committed rows collected."""
        for row in self.store.queue_outcomes(self.run_id, self.owner_id):
            future = self.waiting.pop((row["node_id"], row["iteration"], row["attempt"]), None)
            if future is not None and not future.done():
                future.set_result(row)
        now = time.monotonic()
        if now - self._housekept < HOUSEKEEPING_EVERY:
            return
        self._housekept = now
        self._heartbeats()
        with self.engine.persist.tx() as tx:
            tx.collect_committed(self.owner_id)
            expired = tx.expire_claims(self.owner_id)
        for node_id, iteration, attempt, worker in expired:
            future = self.waiting.pop((node_id, iteration, attempt), None)
            if future is not None and not future.done():
                future.set_result({"status": ABANDONED, "worker": worker})
        live = {(r.desc.node_id, r.desc.iteration, r.attempt) for r in self.engine.running.values()}
        for key in [k for k in self._beats_seen if k not in live]:
            del self._beats_seen[key]

    def _heartbeats(self) -> None:
        """Claims and heartbeats reach the owner's attempt. A task's ``timeout`` and heartbeat
        clock start when a worker claims it, not while it waits in the queue for a free slot;
        a worker's heartbeats feed heartbeat timeouts and the next attempt's ``last_heartbeat``."""
        claims = self.store.queue_claims(self.run_id, self.owner_id)
        claimed = {(c[0], c[1], c[2]) for c in claims}
        now = time.monotonic()
        for key in self.waiting:
            if key in claimed or key in self._beats_seen:
                continue
            running = self.engine.running.get((key[0], key[1]))
            if running is not None and running.attempt == key[2]:  # still waiting for a free slot: its clocks have not started
                running.tc._heartbeat_at = now
                if running.deadline is not None and running.desc.task.timeout:
                    running.deadline = now + running.desc.task.timeout
        for node_id, iteration, attempt, claimed_ms, beat_ms, data in claims:
            running = self.engine.running.get((node_id, iteration))
            key = (node_id, iteration, attempt)
            if running is None or running.attempt != attempt:
                continue
            at_ms = beat_ms or claimed_ms
            if self._beats_seen.get(key) == at_ms:
                continue
            if key not in self._beats_seen and running.deadline is not None and running.desc.task.timeout:
                running.deadline = _monotonic_of(claimed_ms) + running.desc.task.timeout
            self._beats_seen[key] = at_ms
            running.tc._heartbeat_at = _monotonic_of(at_ms)
            if beat_ms is not None:
                running.tc._heartbeat_json = data or running.tc._heartbeat_json
                running.tc._beats += 1

    def close(self) -> None:
        """The run stopped: stop polling, and mark the results it committed collected (the lease
        may be gone by now: not fenced; a row whose attempt is still ``running`` is left to the
        next owner's recovery)."""
        if self._poller is not None:
            self._poller.cancel()
        with self.store.tx(self.run_id) as tx:
            tx.collect_committed(self.owner_id)


__all__ = ["MAX_LOST_IN_A_ROW", "RemoteAttempts", "RemoteTaskError", "WorkerLostError", "remote_error"]
