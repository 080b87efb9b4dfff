"""⑤ Persist: one transaction per state change, with its events (and frame) inside it.

Each method commits, then mirrors the change into the in-memory ``RunState``; if the commit
fails nothing in memory changes. A process killed between two lines of this file leaves
either a whole transition or none of it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..errors import RunError, error_record
from ..states import AttemptStatus, EventType, NodeStatus, RunStatus
from ..storage.frames import (
    STEP_FAILED,
    STEP_FINISHED,
    STEP_RETRYING,
    STEP_SKIPPED,
    Entries,
    delta_size,
    diff,
    needs_keyframe,
)
from ..storage.store import Store
from .state import NodeState, RunState
from .tree import PlanNode, TaskDescriptor


def error_info(err: BaseException) -> dict[str, Any]:
    """What an attempt records about its failure: :func:`smithers.errors.error_record` with its traceback."""
    return error_record(err, with_traceback=True)


class Persister:
    def __init__(self, store: Store, run_id: str, owner_id: str, state: RunState) -> None:
        self.store = store
        self.run_id = run_id
        self.owner_id = owner_id
        self.state = state
        self.frame_no = store.frame_count(run_id)
        self._last_entries: Entries | None = None
        self._since_keyframe = 0  # plan entries written as deltas since the last keyframe

    def tx(self) -> Any:
        return self.store.tx(self.run_id, owner_id=self.owner_id)

    # -- renders -------------------------------------------------------------------------

    def commit_render(self, root: PlanNode, tasks: list[TaskDescriptor]) -> None:
        """Insert newly mounted tasks as pending and store the frame if the plan changed."""
        entries = plan_entries(root)
        changed = entries != self._last_entries
        new_nodes = [d for d in tasks if d.key not in self.state.nodes]
        if not changed and not new_nodes:
            return
        with self.tx() as tx:
            inserted = tx.insert_pending_nodes(
                [(d.node_id, d.iteration, d.mode, d.table, d.task.label, _wait_meta(d)) for d in new_nodes]
            ) if new_nodes else set()
            for desc in new_nodes:  # events in document order, whatever order the rows came back in
                if (desc.node_id, desc.iteration) in inserted:
                    inserted.discard((desc.node_id, desc.iteration))
                    tx.event(EventType.NODE_PENDING, node_id=desc.node_id, iteration=desc.iteration)
            if changed:
                delta = diff(self._last_entries, entries) if self._last_entries is not None else None
                keyframe = delta is None or needs_keyframe(self._since_keyframe, delta, entries)
                data = {"put": list(entries.values()), "del": []} if keyframe or delta is None else delta
                tx.event(EventType.FRAME_COMMITTED, frame=self.frame_no, tasks=len(tasks))
                tx.add_frame(self.frame_no, keyframe, data)
        for desc in new_nodes:
            self.state.nodes[desc.key] = NodeState(status=NodeStatus.PENDING, table=desc.table, kind=desc.mode)
        if changed:
            self.frame_no += 1
            self._since_keyframe = 0 if keyframe else self._since_keyframe + delta_size(data)
            self._last_entries = entries

    def _step_frame(self, tx: Any, desc: TaskDescriptor, step: str, attempt: int | None) -> None:
        """A step frame (a delta naming the node and what happened to it) inside the caller's
        transaction, so that ``--frame`` can point between any two steps (storage/frames.py)."""
        tx.add_frame(self.frame_no, False, {"n": [[desc.node_id, desc.iteration, step, attempt]]})
        self.frame_no += 1

    # -- attempts ------------------------------------------------------------------------

    def start_attempt(self, desc: TaskDescriptor) -> int:
        node = self.state.nodes[desc.key]
        attempt = node.attempts + 1
        with self.tx() as tx:
            tx.start_attempt(desc.node_id, desc.iteration, attempt, {"mode": desc.mode})
            tx.set_node(desc.node_id, desc.iteration, NodeStatus.RUNNING, attempts=attempt)
            tx.event(EventType.NODE_STARTED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt)
        node.status, node.attempts, node.retry_at_ms = NodeStatus.RUNNING, attempt, None
        return attempt

    def finish_static(self, desc: TaskDescriptor, value: BaseModel) -> None:
        """A static task's whole life (start, output, finish) in one transaction."""
        node = self.state.nodes[desc.key]
        attempt = node.attempts + 1
        table = self.store.output_table(desc.model)
        with self.tx() as tx:
            tx.start_attempt(desc.node_id, desc.iteration, attempt, {"mode": "static"})
            tx.event(EventType.NODE_STARTED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt)
            tx.write_output(table, desc.node_id, desc.iteration, value)
            tx.finish_attempt(desc.node_id, desc.iteration, attempt, AttemptStatus.FINISHED)
            tx.set_node(desc.node_id, desc.iteration, NodeStatus.FINISHED, attempts=attempt)
            tx.event(EventType.NODE_FINISHED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt)
            self._step_frame(tx, desc, STEP_FINISHED, attempt)
        node.attempts = attempt
        self.state.mark_finished(desc.key, value)

    def finish_success(self, desc: TaskDescriptor, attempt: int, value: BaseModel, meta: dict[str, Any] | None = None) -> None:
        table = self.store.output_table(desc.model)
        with self.tx() as tx:
            tx.write_output(table, desc.node_id, desc.iteration, value)
            tx.finish_attempt(desc.node_id, desc.iteration, attempt, AttemptStatus.FINISHED, meta=self._meta(desc, meta))
            tx.set_node(desc.node_id, desc.iteration, NodeStatus.FINISHED)
            tx.event(EventType.NODE_FINISHED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt)
            self._step_frame(tx, desc, STEP_FINISHED, attempt)
        self.state.mark_finished(desc.key, value)

    def finish_failure(
        self, desc: TaskDescriptor, attempt: int, err: BaseException, *, retry_at_ms: int | None, heartbeat_json: str | None = None,
        static: bool = False, meta: dict[str, Any] | None = None,
    ) -> bool:
        """Record a failed attempt. Returns whether the task will be retried."""
        node = self.state.nodes[desc.key]
        failures = node.failures + 1
        info = error_info(err)
        will_retry = retry_at_ms is not None
        with self.tx() as tx:
            if static:
                tx.start_attempt(desc.node_id, desc.iteration, attempt, {"mode": desc.mode})
                tx.event(EventType.NODE_STARTED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt)
            tx.finish_attempt(
                desc.node_id, desc.iteration, attempt, AttemptStatus.FAILED, error=info, heartbeat_json=heartbeat_json,
                meta=self._meta(desc, meta),
            )
            status = NodeStatus.PENDING if will_retry else NodeStatus.FAILED
            tx.set_node(desc.node_id, desc.iteration, status, attempts=attempt, failures=failures, retry_at_ms=retry_at_ms, error=info)
            tx.event(
                EventType.NODE_FAILED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt,
                error={"type": info["type"], "message": info["message"], "code": info.get("code")}, will_retry=will_retry,
            )
            if will_retry:
                tx.event(
                    EventType.NODE_RETRYING, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt + 1, retry_at_ms=retry_at_ms,
                )
            self._step_frame(tx, desc, STEP_RETRYING if will_retry else STEP_FAILED, attempt)
        node.status, node.attempts, node.failures, node.retry_at_ms = status, attempt, failures, retry_at_ms
        return will_retry

    def _meta(self, desc: TaskDescriptor, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        """The attempt's metadata to record with its finish (which agent answered, the worker...), if any."""
        return {"mode": desc.mode, **meta} if meta else None

    def cancel_attempts(self, running: list[tuple[TaskDescriptor, int]], reason: str) -> None:
        if not running:
            return
        with self.tx() as tx:
            for desc, attempt in running:
                cancelled = {"type": "Cancelled", "message": reason}
                tx.finish_attempt(desc.node_id, desc.iteration, attempt, AttemptStatus.CANCELLED, error=cancelled)
                tx.set_node(desc.node_id, desc.iteration, NodeStatus.CANCELLED)
                tx.event(EventType.NODE_CANCELLED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt, reason=reason)
        for desc, _ in running:
            self.state.nodes[desc.key].status = NodeStatus.CANCELLED

    def skip(self, desc: TaskDescriptor, *, reason: str = "skip_if") -> None:
        with self.tx() as tx:
            tx.set_node(desc.node_id, desc.iteration, NodeStatus.SKIPPED)
            tx.event(EventType.NODE_SKIPPED, node_id=desc.node_id, iteration=desc.iteration, reason=reason)
            self._step_frame(tx, desc, STEP_SKIPPED, None)
        self.state.nodes[desc.key].status = NodeStatus.SKIPPED

    def finish_wait(self, desc: TaskDescriptor, value: BaseModel, event: str, payload: dict[str, Any]) -> None:
        """A wait node ends with its output: the decision, answer, signal payload or firing time."""
        table = self.store.output_table(desc.model)
        with self.tx() as tx:
            tx.write_output(table, desc.node_id, desc.iteration, value)
            tx.set_node(desc.node_id, desc.iteration, NodeStatus.FINISHED)
            tx.event(event, node_id=desc.node_id, iteration=desc.iteration, **payload)
            tx.event(EventType.NODE_FINISHED, node_id=desc.node_id, iteration=desc.iteration)
            self._step_frame(tx, desc, STEP_FINISHED, None)
        self.state.mark_finished(desc.key, value)

    def reopen(self, desc: TaskDescriptor, event: str, payload: dict[str, Any]) -> None:
        """A waiting node is ready to run again (an approval gate opened; a Subflow resumes its child)."""
        with self.tx() as tx:
            tx.set_node(desc.node_id, desc.iteration, NodeStatus.PENDING)
            tx.event(event, node_id=desc.node_id, iteration=desc.iteration, **payload)
        self.state.nodes[desc.key].status = NodeStatus.PENDING

    def save_heartbeats(self, beats: list[tuple[TaskDescriptor, int, int, str | None]]) -> None:
        with self.tx() as tx:
            for desc, attempt, at_ms, data in beats:
                tx.save_heartbeat(desc.node_id, desc.iteration, attempt, at_ms, data)

    # -- loops and the run ---------------------------------------------------------------

    def set_loop(self, loop_id: str, iteration: int, done: bool) -> None:
        with self.tx() as tx:
            tx.set_loop(loop_id, iteration, done)
            tx.event(EventType.LOOP_ITERATION if not done else EventType.LOOP_FINISHED, loop_id=loop_id, loop_iteration=iteration)
        self.state.loops[loop_id] = (iteration, done)

    def run_status(
        self, status: RunStatus | str, event: EventType | str, *, error: dict[str, Any] | None = None, finished: bool = False,
        wake_at_ms: int | None = None, **payload: Any,
    ) -> None:
        """Set the run's status with its event, in one fenced transaction. A waiting status
        carries ``wake_at_ms`` (when the supervisor must look at the run again), written with it."""
        if wake_at_ms is not None:
            payload["wake_at_ms"] = wake_at_ms
        with self.tx() as tx:
            tx.set_run(status, error=error, finished=finished, wake_at_ms=wake_at_ms)
            tx.event(event, status=str(status), **({"error": error} if error else {}), **payload)


def _wait_meta(desc: TaskDescriptor) -> dict[str, Any] | None:
    """What a front end needs to answer a wait before it starts (a signal's name and schema)."""
    wait = desc.task.wait
    if wait is None:
        return None
    from ..authoring.waits import SignalWait  # loaded only by runs that wait (start-up of `up`)

    return wait.meta() if isinstance(wait, SignalWait) else None


def plan_entries(root: PlanNode) -> Entries:
    """The plan as frame entries, keyed by node key, in document order (what a frame stores)."""
    out: Entries = {}
    stack = [root]
    while stack:
        node = stack.pop()
        out[node.key] = node.describe()
        stack.extend(reversed(node.children))
    return out


def run_error(message: str, **kwargs: Any) -> RunError:
    return RunError(message, **kwargs)


__all__ = ["Persister", "error_info", "error_record", "run_error"]
