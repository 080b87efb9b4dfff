"""Waiting for people and clocks: approval gates, Approval decisions, human tasks, signals
and timers.

A wait starts when its node becomes ready: the request is recorded durably (an approval
row, a human request, a timer) and the node goes to ``waiting-*``. The decision, answer,
signal or due time arrives from outside — another process writes it — so the loop polls
for it (every maintenance tick) and completes the node in one transaction when it does.
Nothing here needs the process to stay alive: a resumed run finds the same rows.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..authoring.human import ApprovalDecision, TimerFired
from ..errors import ErrorCode, InvalidOutputError, RunError, TaskTimeoutError
from ..states import AttemptStatus
from ..storage.store import now_ms
from .subflow import ChildRunWaiting
from .tree import PlanNode, TaskDescriptor

if TYPE_CHECKING:
    from .loop import RunLoop

WAIT_STATUS = {"approval": "waiting-approval", "human": "waiting-approval", "signal": "waiting-event", "timer": "waiting-timer"}
WAITING = frozenset(WAIT_STATUS.values())


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class ApprovalDenied(RunError):
    code = ErrorCode.TASK_FAILED


class Waits:
    """The nodes of one run that wait, and how each one ends."""

    def __init__(self, loop: RunLoop) -> None:
        self.loop = loop
        self.store = loop.store
        self.run_id = loop.run_id
        self.persist = loop.persist
        self.state = loop.state
        self.waiting: dict[tuple[str, int], TaskDescriptor] = {}
        self.deadlines: dict[tuple[str, int], int] = {}  # timers and signal timeouts, epoch ms
        self.children: dict[tuple[str, int], str] = {}  # Subflow nodes whose child run waits in this process: child run id

    # -- starting a wait ---------------------------------------------------------------------

    def gate(self, desc: TaskDescriptor) -> str:
        """A ``needs_approval`` task is ready: 'open' (run it), 'waiting' or 'denied'."""
        row = self._approval_row(desc)
        if row is None:
            request = {"title": desc.task.label or f"Run task {desc.node_id}?", "mode": "approve", "gate": True}
            self._request_approval(desc, request, gate=True)
            return "waiting"
        if row["status"] == "approved":
            return "open"
        if row["status"] == "denied":
            return "denied"
        self._mark_waiting(desc, "waiting-approval", event=None)
        return "waiting"

    def begin(self, desc: TaskDescriptor) -> None:
        """A wait node (Approval, HumanTask, Signal, Timer) is ready: record the wait, or end it
        at once when what it waits for is already there."""
        wait = desc.task.wait or {}
        kind = wait.get("kind")
        if kind == "approval":
            if self._approval_row(desc) is None:
                request = {**wait["request"], "mode": wait["mode"], "options": wait["options"], "on_deny": wait["on_deny"]}
                self._request_approval(desc, request, gate=False)
            else:
                self._mark_waiting(desc, "waiting-approval", event=None)
        elif kind == "human":
            self._request_human(desc, wait)
        elif kind == "signal":
            self._wait_signal(desc, wait)
        elif kind == "timer":
            self._start_timer(desc, wait)
        else:  # pragma: no cover - render only produces the kinds above
            raise RunError(f"task {desc.node_id!r}: unknown wait kind {kind!r}")
        self.check(desc)

    def adopt(self, desc: TaskDescriptor) -> None:
        """A node already ``waiting-*`` in the store (after a resume or a re-render)."""
        if desc.key in self.waiting:
            self.waiting[desc.key] = desc
            return
        self.waiting[desc.key] = desc
        wait = desc.task.wait or {}
        if wait.get("kind") == "timer":
            row = self.store.conn.execute(
                "SELECT fires_at_ms FROM _smithers_timers WHERE run_id = ? AND node_id = ? AND iteration = ?",
                (self.run_id, desc.node_id, desc.iteration),
            ).fetchone()
            if row:
                self.deadlines[desc.key] = row[0]
        elif wait.get("kind") == "signal" and wait.get("timeout") is not None:
            since = self.store.conn.execute(
                "SELECT waiting_since_ms FROM _smithers_nodes WHERE run_id = ? AND node_id = ? AND iteration = ?",
                (self.run_id, desc.node_id, desc.iteration),
            ).fetchone()
            if since and since[0]:
                self.deadlines[desc.key] = since[0] + int(wait["timeout"] * 1000)

    def _mark_waiting(
        self, desc: TaskDescriptor, status: str, event: tuple[str, dict[str, Any]] | None, meta: Any = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        with self.persist.tx() as tx:
            tx.execute(
                "UPDATE _smithers_nodes SET status = ?, waiting_since_ms = COALESCE(waiting_since_ms, ?), "
                "meta_json = COALESCE(?, meta_json), updated_at_ms = ? WHERE run_id = ? AND node_id = ? AND iteration = ?",
                (status, tx.ts, json.dumps(meta) if meta is not None else None, tx.ts, self.run_id, desc.node_id, desc.iteration),
            )
            if event is not None:
                tx.event(event[0], node_id=desc.node_id, iteration=desc.iteration, **event[1])
            tx.event("NodeWaiting", node_id=desc.node_id, iteration=desc.iteration, status=status, **(details or {}))
        self.state.nodes[desc.key].status = status
        self.waiting[desc.key] = desc

    def _request_approval(self, desc: TaskDescriptor, request: dict[str, Any], *, gate: bool) -> None:
        with self.persist.tx() as tx:
            tx.execute(
                "INSERT INTO _smithers_approvals (run_id, node_id, iteration, status, gate, request_json, requested_at_ms) "
                "VALUES (?, ?, ?, 'requested', ?, ?, ?) ON CONFLICT (run_id, node_id, iteration) DO NOTHING",
                (self.run_id, desc.node_id, desc.iteration, int(gate), json.dumps(request), tx.ts),
            )
            self._mark_waiting(desc, "waiting-approval", ("ApprovalRequested", {"request": request, "gate": gate}))

    def _request_human(self, desc: TaskDescriptor, wait: dict[str, Any]) -> None:
        row = self.store.conn.execute(
            "SELECT request_id FROM _smithers_human_requests WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (self.run_id, desc.node_id, desc.iteration),
        ).fetchone()
        if row is not None:
            self._mark_waiting(desc, "waiting-approval", event=None)
            return
        request_id = "hr-" + secrets.token_hex(4)
        with self.persist.tx() as tx:
            tx.execute(
                "INSERT INTO _smithers_human_requests (request_id, run_id, node_id, iteration, status, prompt, schema_json, created_at_ms) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                (request_id, self.run_id, desc.node_id, desc.iteration, wait["prompt"], json.dumps(wait["schema"]), tx.ts),
            )
            self._mark_waiting(desc, "waiting-approval", ("HumanRequested", {"request_id": request_id, "prompt": wait["prompt"]}))

    def _wait_signal(self, desc: TaskDescriptor, wait: dict[str, Any]) -> None:
        meta = {"signal": wait["name"], "correlation_id": wait["correlation_id"], "schema": wait["schema"]}
        self._mark_waiting(desc, "waiting-event", ("SignalAwaited", {"signal": wait["name"], "correlation_id": wait["correlation_id"]}), meta)
        if wait.get("timeout") is not None:
            since = self.store.conn.execute(
                "SELECT waiting_since_ms FROM _smithers_nodes WHERE run_id = ? AND node_id = ? AND iteration = ?",
                (self.run_id, desc.node_id, desc.iteration),
            ).fetchone()[0]
            self.deadlines[desc.key] = since + int(wait["timeout"] * 1000)

    def _start_timer(self, desc: TaskDescriptor, wait: dict[str, Any]) -> None:
        row = self.store.conn.execute(
            "SELECT fires_at_ms FROM _smithers_timers WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (self.run_id, desc.node_id, desc.iteration),
        ).fetchone()
        if row is None:
            fires = wait["until_ms"] if wait["until_ms"] is not None else now_ms() + int(wait["duration"] * 1000)
            with self.persist.tx() as tx:
                tx.execute(
                    "INSERT INTO _smithers_timers (run_id, node_id, iteration, fires_at_ms) VALUES (?, ?, ?, ?)",
                    (self.run_id, desc.node_id, desc.iteration, fires),
                )
                self._mark_waiting(desc, "waiting-timer", ("TimerCreated", {"fires_at_ms": fires}))
        else:
            fires = row[0]  # fixed when the timer was created: a resume never moves it
            self._mark_waiting(desc, "waiting-timer", event=None)
        self.deadlines[desc.key] = fires

    def child_waiting(self, desc: TaskDescriptor, attempt: int, child: ChildRunWaiting) -> None:
        """A Subflow attempt stopped because its child run waits: the attempt is suspended and the
        node waits with the child's status (one transaction). The next resume of this run
        resumes the child through a new attempt; this process does not (the child would only
        stop again)."""
        with self.persist.tx() as tx:
            tx.finish_attempt(desc.node_id, desc.iteration, attempt, AttemptStatus.SUSPENDED)
            self._mark_waiting(
                desc, child.status, None, meta={"child_run_id": child.child_run_id},
                details={"child_run_id": child.child_run_id, "child_status": str(child.status)},
            )
        self.children[desc.key] = child.child_run_id
        if child.wake_at_ms is not None:
            self.deadlines[desc.key] = child.wake_at_ms

    # -- ending waits ------------------------------------------------------------------------

    def poll(self) -> None:
        """Check every waiting node for its decision, answer, signal or due time."""
        for desc in list(self.waiting.values()):
            self.check(desc)

    def next_deadline(self) -> int | None:
        return min(self.deadlines.values(), default=None)

    def check(self, desc: TaskDescriptor) -> None:
        if desc.key not in self.waiting:
            return
        if desc.mode == "subflow":
            self._check_subflow(desc)
            return
        kind = (desc.task.wait or {}).get("kind") if desc.mode != "static" and desc.task.wait else None
        if kind is None:  # an approval gate on a normal task
            row = self._approval_row(desc)
            if row is not None and row["status"] == "approved":
                self._gate_opened(desc)
            elif row is not None and row["status"] == "denied":
                self._end(desc)
                self.loop.wait_failed(desc, ApprovalDenied(
                    f"task {desc.node_id!r}: approval denied" + (f" ({row['decision']['note']})" if row["decision"].get("note") else ""),
                    retryable=False,
                ))
            return
        if kind == "approval":
            self._check_approval(desc)
        elif kind == "human":
            self._check_human(desc)
        elif kind == "signal":
            self._check_signal(desc)
        elif kind == "timer":
            self._check_timer(desc)

    def _end(self, desc: TaskDescriptor) -> None:
        self.waiting.pop(desc.key, None)
        self.deadlines.pop(desc.key, None)
        self.children.pop(desc.key, None)

    def _gate_opened(self, desc: TaskDescriptor) -> None:
        self._end(desc)
        with self.persist.tx() as tx:
            tx.set_node(desc.node_id, desc.iteration, "pending")
            tx.event("ApprovalGranted", node_id=desc.node_id, iteration=desc.iteration, gate=True)
        self.state.nodes[desc.key].status = "pending"
        self.loop.wait_reopened(desc)

    def _check_subflow(self, desc: TaskDescriptor) -> None:
        """A Subflow node found waiting in the store (this process resumed the parent): run it
        again, which resumes the child run; if the child still waits, the node waits again."""
        if desc.key in self.children:
            return  # its child stopped to wait in this process: only a later resume goes on
        self._end(desc)
        with self.persist.tx() as tx:
            tx.set_node(desc.node_id, desc.iteration, "pending")
            tx.event("NodePending", node_id=desc.node_id, iteration=desc.iteration, reason="resuming its child run")
        self.state.nodes[desc.key].status = "pending"
        self.loop.wait_reopened(desc)

    def _approval_row(self, desc: TaskDescriptor) -> dict[str, Any] | None:
        row = self.store.conn.execute(
            "SELECT status, decision_json, decided_by, decided_at_ms FROM _smithers_approvals WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (self.run_id, desc.node_id, desc.iteration),
        ).fetchone()
        if row is None:
            return None
        return {"status": row[0], "decision": json.loads(row[1]) if row[1] else {}, "decided_by": row[2], "decided_at_ms": row[3]}

    def _check_approval(self, desc: TaskDescriptor) -> None:
        row = self._approval_row(desc)
        if row is None or row["status"] == "requested":
            return
        self._end(desc)
        decision = row["decision"]
        approved = row["status"] == "approved"
        value = ApprovalDecision(
            approved=approved, note=decision.get("note"), decided_by=row["decided_by"],
            decided_at=_dt(row["decided_at_ms"]) if row["decided_at_ms"] else None,
            selected=decision.get("selected"), ranked=decision.get("ranked"),
        )
        on_deny = (desc.task.wait or {}).get("on_deny", "fail")
        if approved:
            self.loop.wait_finished(desc, value, "ApprovalGranted")
        elif on_deny == "continue":  # the denial is the output; the gated children do not run
            self.loop.wait_finished(desc, value, "ApprovalDenied", skip_gated="approval denied")
        elif on_deny == "skip":
            self.loop.wait_skipped(desc, "approval denied", subtree=True)
        else:
            self.loop.wait_failed(desc, ApprovalDenied(
                f"approval {desc.node_id!r} was denied" + (f": {decision['note']}" if decision.get("note") else ""), retryable=False,
            ))

    def _check_human(self, desc: TaskDescriptor) -> None:
        row = self.store.conn.execute(
            "SELECT request_id, status, answer_json, answered_by FROM _smithers_human_requests WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (self.run_id, desc.node_id, desc.iteration),
        ).fetchone()
        if row is None or row[1] != "answered":
            return
        try:
            value = desc.model.model_validate(json.loads(row[2]))
        except (ValidationError, ValueError) as err:  # answered through a path that skipped validation: ask again
            with self.persist.tx() as tx:
                tx.execute("UPDATE _smithers_human_requests SET status = 'pending', answer_json = NULL WHERE request_id = ?", (row[0],))
                tx.event("HumanAnswerRejected", node_id=desc.node_id, iteration=desc.iteration, request_id=row[0], error=str(err)[:2000])
            return
        self._end(desc)
        self.loop.wait_finished(desc, value, "HumanAnswered", request_id=row[0], answered_by=row[3])

    def _check_signal(self, desc: TaskDescriptor) -> None:
        wait = desc.task.wait or {}
        correlation = wait.get("correlation_id")
        row = self.store.conn.execute(
            "SELECT seq, payload_json FROM _smithers_signals WHERE run_id = ? AND name = ? AND consumed_node_id IS NULL "
            "AND ((? IS NULL AND correlation_id IS NULL) OR correlation_id = ?) ORDER BY seq LIMIT 1",
            (self.run_id, wait["name"], correlation, correlation),
        ).fetchone()
        if row is not None:
            self._end(desc)
            with self.persist.tx() as tx:
                tx.execute(
                    "UPDATE _smithers_signals SET consumed_node_id = ?, consumed_iteration = ? WHERE run_id = ? AND seq = ?",
                    (desc.node_id, desc.iteration, self.run_id, row[0]),
                )
                try:
                    value = desc.model.model_validate(json.loads(row[1]))
                except ValidationError as err:
                    self.loop.wait_failed(desc, InvalidOutputError(
                        f"signal {wait['name']!r} payload does not match {desc.model.__name__}: {err.errors(include_url=False)}",
                        retryable=False,
                    ))
                    return
                self.loop.wait_finished(desc, value, "SignalReceived", signal=wait["name"], signal_seq=row[0])
            return
        deadline = self.deadlines.get(desc.key)
        if deadline is not None and now_ms() >= deadline:
            self._end(desc)
            on_timeout = wait.get("on_timeout", "fail")
            if on_timeout == "skip":
                self.loop.wait_skipped(desc, "signal timed out", subtree=False)
            else:  # "continue" is continue_on_fail: the node fails, the run goes on
                self.loop.wait_failed(desc, TaskTimeoutError(
                    f"signal {wait['name']!r} did not arrive within {wait['timeout']:g}s", retryable=False,
                ))

    def _check_timer(self, desc: TaskDescriptor) -> None:
        fires = self.deadlines.get(desc.key)
        now = now_ms()
        if fires is None or now < fires:
            return
        self._end(desc)
        with self.persist.tx() as tx:
            tx.execute(
                "UPDATE _smithers_timers SET fired_at_ms = ? WHERE run_id = ? AND node_id = ? AND iteration = ?",
                (now, self.run_id, desc.node_id, desc.iteration),
            )
            self.loop.wait_finished(desc, TimerFired(scheduled_for=_dt(fires), fired_at=_dt(now)), "TimerFired")

    # -- what the run waits for --------------------------------------------------------------

    def run_status(self) -> str | None:
        statuses = {self.state.status_of(key) for key in self.waiting}
        for status in ("waiting-approval", "waiting-event", "waiting-timer"):
            if status in statuses:
                return status
        return None

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for d in self.waiting.values():
            item = {"node_id": d.node_id, "iteration": d.iteration, "status": self.state.status_of(d.key), "kind": (d.task.wait or {}).get("kind", "gate")}
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
