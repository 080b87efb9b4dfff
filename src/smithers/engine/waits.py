"""Waiting for people and clocks: approval gates, Approval decisions, human tasks, signals,
timers, and Subflow nodes whose child run waits.

A wait starts when its node becomes ready: the request is recorded durably (an approval
row, a human request, a timer) and the node goes to ``waiting-*``. The decision, answer,
signal or due time arrives from outside — another process writes it — so the loop polls
for it (every maintenance tick). Nothing here needs the process to stay alive: a resumed run
finds the same rows.

:class:`Waits` records waits and *decides* how they end; it never touches the plan. Each
check returns an outcome (:class:`WaitFinished`, :class:`WaitFailed`, :class:`WaitSkipped`,
:class:`WaitReopened`) that the run loop applies, in one transaction together with the
outcome's own store writes (``writes``: consuming the signal, firing the timer).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..errors import ErrorCode, InvalidOutputError, RunError, TaskTimeoutError
from ..states import WAITING_NODE_STATUSES, AttemptStatus, EventType, NodeStatus, RunStatus
from ..storage.store import Store, Tx, now_ms
from .persist import Persister
from .state import RunState
from .subflow import ChildRunWaiting
from .tree import PlanNode, TaskDescriptor

if TYPE_CHECKING:  # a run with no wait node never loads the wait specs (start-up of `up`)
    from ..authoring.waits import ApprovalWait, HumanWait, SignalWait, TimerWait

WAIT_STATUS = {
    "approval": NodeStatus.WAITING_APPROVAL, "human": NodeStatus.WAITING_APPROVAL,
    "signal": NodeStatus.WAITING_EVENT, "timer": NodeStatus.WAITING_TIMER,
}
WAITING = WAITING_NODE_STATUSES

Writes = Callable[[Tx], None]


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class ApprovalDenied(RunError):
    code = ErrorCode.TASK_FAILED


# -- outcomes: how a wait ended; the loop applies them ---------------------------------------


@dataclass(frozen=True, slots=True)
class WaitFinished:
    """The node finishes with ``value`` (recorded with ``event``). ``skip_gated``: skip the
    children an Approval gates, for this reason (a denial under ``on_deny="continue"``)."""

    desc: TaskDescriptor
    value: BaseModel
    event: str
    payload: dict[str, Any] = field(default_factory=dict)
    skip_gated: str | None = None
    writes: Writes | None = None


@dataclass(frozen=True, slots=True)
class WaitFailed:
    """The node fails (without retries) with ``error``."""

    desc: TaskDescriptor
    error: BaseException
    writes: Writes | None = None


@dataclass(frozen=True, slots=True)
class WaitSkipped:
    """The node is skipped; with ``subtree``, so are the children an Approval gates."""

    desc: TaskDescriptor
    reason: str
    subtree: bool
    writes: Writes | None = None


@dataclass(frozen=True, slots=True)
class WaitReopened:
    """The node is ready to run again: an approval gate opened, or a Subflow whose child waited
    is to resume its child. The node goes back to ``pending`` (with ``event``)."""

    desc: TaskDescriptor
    event: str
    payload: dict[str, Any] = field(default_factory=dict)
    writes: Writes | None = None


WaitOutcome = WaitFinished | WaitFailed | WaitSkipped | WaitReopened


class Waits:
    """The nodes of one run that wait, and how each one ends."""

    def __init__(self, store: Store, run_id: str, persist: Persister, state: RunState) -> None:
        self.store = store
        self.run_id = run_id
        self.persist = persist
        self.state = state
        self.waiting: dict[tuple[str, int], TaskDescriptor] = {}
        self.deadlines: dict[tuple[str, int], int] = {}  # timers, signal timeouts and child runs' due times, epoch ms
        self.children: dict[tuple[str, int], str] = {}  # Subflow nodes whose child run waits in this process: child run id

    # -- starting a wait ---------------------------------------------------------------------

    def gate(self, desc: TaskDescriptor) -> WaitReopened | WaitFailed | None:
        """A ``needs_approval`` task is ready: WaitReopened (approved: run it now), WaitFailed
        (denied), or None (it waits)."""
        row = self.store.approval_row(self.run_id, desc.node_id, desc.iteration)
        if row is None:
            request = {"title": desc.task.label or f"Run task {desc.node_id}?", "mode": "approve", "gate": True}
            self._request_approval(desc, request, gate=True)
            return None
        if row["status"] == "approved":
            return WaitReopened(desc, EventType.APPROVAL_GRANTED, {"gate": True})
        if row["status"] == "denied":
            return WaitFailed(desc, ApprovalDenied(f"task {desc.node_id!r}: approval denied", retryable=False))
        self._mark_waiting(desc, NodeStatus.WAITING_APPROVAL, event=None)
        return None

    def begin(self, desc: TaskDescriptor) -> WaitOutcome | None:
        """A wait node (Approval, HumanTask, Signal, Timer) is ready: record the wait; end it at
        once (the outcome) when what it waits for is already there."""

        from ..authoring.waits import ApprovalWait, HumanWait, SignalWait, TimerWait

        wait = desc.task.wait
        if isinstance(wait, ApprovalWait):
            if self.store.approval_row(self.run_id, desc.node_id, desc.iteration) is None:
                self._request_approval(desc, wait.request_json(), gate=False)
            else:
                self._mark_waiting(desc, NodeStatus.WAITING_APPROVAL, event=None)
        elif isinstance(wait, HumanWait):
            self._request_human(desc, wait)
        elif isinstance(wait, SignalWait):
            self._wait_signal(desc, wait)
        elif isinstance(wait, TimerWait):
            self._start_timer(desc, wait)
        else:  # pragma: no cover - render only produces the kinds above
            raise RunError(f"task {desc.node_id!r}: unknown wait {wait!r}")
        return self.check(desc)

    def adopt(self, desc: TaskDescriptor) -> None:
        """A node already ``waiting-*`` in the store (after a resume or a re-render)."""
        if desc.key in self.waiting:
            self.waiting[desc.key] = desc
            return
        self.waiting[desc.key] = desc
        wait = desc.task.wait
        if wait is None:  # an approval gate or a Subflow node: no deadline of its own here
            return
        from ..authoring.waits import SignalWait, TimerWait

        if isinstance(wait, TimerWait):
            fires = self.store.timer_for(self.run_id, desc.node_id, desc.iteration)
            if fires is not None:
                self.deadlines[desc.key] = fires
        elif isinstance(wait, SignalWait) and wait.timeout is not None:
            since = self.store.waiting_since(self.run_id, desc.node_id, desc.iteration)
            if since:
                self.deadlines[desc.key] = since + int(wait.timeout * 1000)

    def child_waiting(self, desc: TaskDescriptor, attempt: int, child: ChildRunWaiting) -> None:
        """A Subflow attempt stopped because its child run waits: the attempt is suspended and the
        node waits with the child's status (one transaction). The next resume of this run
        resumes the child through a new attempt; this process does not (the child would only
        stop again)."""
        with self.persist.tx() as tx:
            tx.finish_attempt(desc.node_id, desc.iteration, attempt, AttemptStatus.SUSPENDED)
            tx.event(
                EventType.ATTEMPT_SUSPENDED, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt,
                child_run_id=child.child_run_id, child_status=str(child.status),
            )
            self._mark_waiting(
                desc, NodeStatus(child.status), None, meta={"child_run_id": child.child_run_id},
                details={"child_run_id": child.child_run_id, "child_status": str(child.status)},
            )
        self.children[desc.key] = child.child_run_id
        if child.wake_at_ms is not None:
            self.deadlines[desc.key] = child.wake_at_ms

    def _mark_waiting(
        self, desc: TaskDescriptor, status: NodeStatus, event: tuple[str, dict[str, Any]] | None, meta: Any = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        with self.persist.tx() as tx:
            tx.mark_waiting(desc.node_id, desc.iteration, status, meta)
            if event is not None:
                tx.event(event[0], node_id=desc.node_id, iteration=desc.iteration, **event[1])
            tx.event(EventType.NODE_WAITING, node_id=desc.node_id, iteration=desc.iteration, status=status, **(details or {}))
        self.state.nodes[desc.key].status = status
        self.waiting[desc.key] = desc

    def _request_approval(self, desc: TaskDescriptor, request: dict[str, Any], *, gate: bool) -> None:
        with self.persist.tx() as tx:
            tx.request_approval(desc.node_id, desc.iteration, request, gate=gate)
            self._mark_waiting(desc, NodeStatus.WAITING_APPROVAL, (EventType.APPROVAL_REQUESTED, {"request": request, "gate": gate}))

    def _request_human(self, desc: TaskDescriptor, wait: HumanWait) -> None:
        if self.store.human_request(self.run_id, desc.node_id, desc.iteration) is not None:
            self._mark_waiting(desc, NodeStatus.WAITING_APPROVAL, event=None)
            return
        request_id = "hr-" + secrets.token_hex(4)
        with self.persist.tx() as tx:
            tx.request_human(request_id, desc.node_id, desc.iteration, wait.prompt, wait.schema)
            requested = (EventType.HUMAN_REQUESTED, {"request_id": request_id, "prompt": wait.prompt})
            self._mark_waiting(desc, NodeStatus.WAITING_APPROVAL, requested)

    def _wait_signal(self, desc: TaskDescriptor, wait: SignalWait) -> None:
        awaited = (EventType.SIGNAL_AWAITED, {"signal": wait.name, "correlation_id": wait.correlation_id})
        self._mark_waiting(desc, NodeStatus.WAITING_EVENT, awaited, wait.meta())
        if wait.timeout is not None:
            since = self.store.waiting_since(self.run_id, desc.node_id, desc.iteration)
            assert since is not None  # just written by _mark_waiting
            self.deadlines[desc.key] = since + int(wait.timeout * 1000)

    def _start_timer(self, desc: TaskDescriptor, wait: TimerWait) -> None:
        fires = self.store.timer_for(self.run_id, desc.node_id, desc.iteration)
        if fires is None:
            fires = wait.until_ms if wait.until_ms is not None else now_ms() + int((wait.duration or 0) * 1000)
            with self.persist.tx() as tx:
                tx.create_timer(desc.node_id, desc.iteration, fires)
                self._mark_waiting(desc, NodeStatus.WAITING_TIMER, (EventType.TIMER_CREATED, {"fires_at_ms": fires}))
        else:  # fixed when the timer was created: a resume never moves it
            self._mark_waiting(desc, NodeStatus.WAITING_TIMER, event=None)
        self.deadlines[desc.key] = fires

    # -- ending waits ------------------------------------------------------------------------

    def poll(self) -> list[WaitOutcome]:
        """Check every waiting node for its decision, answer, signal or due time."""
        outcomes = []
        for desc in list(self.waiting.values()):
            outcome = self.check(desc)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def next_deadline(self) -> int | None:
        return min(self.deadlines.values(), default=None)

    def check(self, desc: TaskDescriptor) -> WaitOutcome | None:
        """How the wait of ``desc`` ends now, or None while it still waits. An outcome ends the
        wait here (it is no longer polled); the caller applies it."""
        if desc.key not in self.waiting:
            return None
        wait: object = desc.task.wait
        if desc.mode == "subflow":
            outcome: WaitOutcome | None = self._check_subflow(desc)
        elif wait is None:  # an approval gate on a normal task
            outcome = self._check_gate(desc)
        else:
            from ..authoring.waits import ApprovalWait, HumanWait, SignalWait, TimerWait

            if isinstance(wait, ApprovalWait):
                outcome = self._check_approval(desc, wait)
            elif isinstance(wait, HumanWait):
                outcome = self._check_human(desc)
            elif isinstance(wait, SignalWait):
                outcome = self._check_signal(desc, wait)
            elif isinstance(wait, TimerWait):
                outcome = self._check_timer(desc)
            else:  # an approval gate on a normal task
                outcome = self._check_gate(desc)
        if outcome is not None:
            self.waiting.pop(desc.key, None)
            self.deadlines.pop(desc.key, None)
            self.children.pop(desc.key, None)
        return outcome

    def _check_gate(self, desc: TaskDescriptor) -> WaitOutcome | None:
        row = self.store.approval_row(self.run_id, desc.node_id, desc.iteration)
        if row is not None and row["status"] == "approved":
            return WaitReopened(desc, EventType.APPROVAL_GRANTED, {"gate": True})
        if row is not None and row["status"] == "denied":
            note = row["decision"].get("note")
            denied = f"task {desc.node_id!r}: approval denied" + (f" ({note})" if note else "")
            return WaitFailed(desc, ApprovalDenied(denied, retryable=False))
        return None

    def _check_subflow(self, desc: TaskDescriptor) -> WaitOutcome | None:
        """A Subflow node found waiting in the store (this process resumed the parent): run it
        again, which resumes the child run; if the child still waits, the node waits again."""
        if desc.key in self.children:
            return None  # its child stopped to wait in this process: only a later resume goes on
        return WaitReopened(desc, EventType.NODE_PENDING, {"reason": "resuming its child run"})

    def _check_approval(self, desc: TaskDescriptor, wait: ApprovalWait) -> WaitOutcome | None:
        row = self.store.approval_row(self.run_id, desc.node_id, desc.iteration)
        if row is None or row["status"] == "requested":
            return None
        from ..authoring.human import ApprovalDecision

        decision = row["decision"]
        approved = row["status"] == "approved"
        value = ApprovalDecision(
            approved=approved, note=decision.get("note"), decided_by=row["decided_by"],
            decided_at=_dt(row["decided_at_ms"]) if row["decided_at_ms"] else None,
            selected=decision.get("selected"), ranked=decision.get("ranked"),
        )
        if approved:
            return WaitFinished(desc, value, EventType.APPROVAL_GRANTED)
        if wait.on_deny == "continue":  # the denial is the output; the gated children do not run
            return WaitFinished(desc, value, EventType.APPROVAL_DENIED, skip_gated="approval denied")
        if wait.on_deny == "skip":
            return WaitSkipped(desc, "approval denied", subtree=True)
        return WaitFailed(desc, ApprovalDenied(
            f"approval {desc.node_id!r} was denied" + (f": {decision['note']}" if decision.get("note") else ""), retryable=False,
        ))

    def _check_human(self, desc: TaskDescriptor) -> WaitOutcome | None:
        row = self.store.human_request(self.run_id, desc.node_id, desc.iteration)
        if row is None or row["status"] != "answered":
            return None
        request_id = row["request_id"]
        try:
            value = desc.model.model_validate_json(row["answer_json"])
        except (ValidationError, ValueError) as err:  # answered through a path that skipped validation: ask again
            with self.persist.tx() as tx:
                tx.reject_human_answer(request_id)
                tx.event(
                    EventType.HUMAN_ANSWER_REJECTED, node_id=desc.node_id, iteration=desc.iteration, request_id=request_id,
                    error=str(err)[:2000],
                )
            return None
        return WaitFinished(desc, value, EventType.HUMAN_ANSWERED, {"request_id": request_id, "answered_by": row["answered_by"]})

    def _check_signal(self, desc: TaskDescriptor, wait: SignalWait) -> WaitOutcome | None:
        hit = self.store.next_signal(self.run_id, wait.name, wait.correlation_id)
        if hit is not None:
            seq, payload = hit

            def consume(tx: Tx) -> None:
                tx.consume_signal(seq, desc.node_id, desc.iteration)

            try:
                value = desc.model.model_validate(payload)
            except ValidationError as err:
                return WaitFailed(desc, InvalidOutputError(
                    f"signal {wait.name!r} payload does not match {desc.model.__name__}: {err.errors(include_url=False)}",
                    retryable=False,
                ), writes=consume)
            return WaitFinished(desc, value, EventType.SIGNAL_RECEIVED, {"signal": wait.name, "signal_seq": seq}, writes=consume)
        deadline = self.deadlines.get(desc.key)
        if deadline is None or now_ms() < deadline:
            return None
        if wait.on_timeout == "skip":
            return WaitSkipped(desc, "signal timed out", subtree=False)
        # "continue" is continue_on_fail: the node fails, the run goes on
        return WaitFailed(desc, TaskTimeoutError(f"signal {wait.name!r} did not arrive within {wait.timeout:g}s", retryable=False))

    def _check_timer(self, desc: TaskDescriptor) -> WaitOutcome | None:
        fires = self.deadlines.get(desc.key)
        now = now_ms()
        if fires is None or now < fires:
            return None

        def fire(tx: Tx) -> None:
            tx.fire_timer(desc.node_id, desc.iteration, now)

        from ..authoring.human import TimerFired

        return WaitFinished(desc, TimerFired(scheduled_for=_dt(fires), fired_at=_dt(now)), EventType.TIMER_FIRED, writes=fire)

    # -- what the run waits for --------------------------------------------------------------

    def run_status(self) -> RunStatus | None:
        statuses = {self.state.status_of(key) for key in self.waiting}
        for status in (RunStatus.WAITING_APPROVAL, RunStatus.WAITING_EVENT, RunStatus.WAITING_TIMER):
            if status in statuses:
                return status
        return None

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for d in self.waiting.values():
            wait = d.task.wait
            item = {
                "node_id": d.node_id, "iteration": d.iteration, "status": self.state.status_of(d.key),
                "kind": wait.kind if wait else "gate",
            }
            if d.key in self.children:
                item.update(kind="subflow", child_run_id=self.children[d.key])
            out.append(item)
        return out


def subtree_tasks(node: PlanNode) -> list[TaskDescriptor]:
    """Every task under ``node``, in document order."""
    out: list[TaskDescriptor] = []
    stack = list(reversed(node.children))
    while stack:
        child = stack.pop()
        if child.task is not None:
            out.append(child.task)
        stack.extend(reversed(child.children))
    return out
