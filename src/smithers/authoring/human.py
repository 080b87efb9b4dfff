"""Nodes that wait for people and clocks: Approval, HumanTask, Signal (WaitForEvent), Timer.

Each is a task whose result comes from outside the process — a decision, an answer, a
signal, a clock — recorded durably, so no process has to stay alive while it waits.

>>> Approval("ship-it", request=ApprovalRequest(title="Deploy to production?"))   # doctest: +SKIP
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import RenderError
from .nodes import Child, Node, Task, flatten
from .policies import Duration, parse_duration
from .waits import ApprovalWait, HumanWait, SignalWait, TimerWait
from .waits import WaitSpec as WaitSpec  # re-exported: the wait specs were defined here before .waits


class ApprovalRequest(BaseModel):
    """What the person deciding is shown."""

    title: str
    summary: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ApprovalOption(BaseModel):
    key: str
    label: str | None = None
    summary: str | None = None


class ApprovalDecision(BaseModel):
    """The output of an :class:`Approval` node (table ``approval_decision``)."""

    approved: bool
    note: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    selected: str | None = None
    ranked: list[str] | None = None


class TimerFired(BaseModel):
    """The output of a :class:`Timer` node (table ``timer_fired``)."""

    scheduled_for: datetime
    fired_at: datetime


def _never(*_: Any) -> None:  # pragma: no cover - wait nodes are never executed as compute tasks
    raise RuntimeError("a wait node is completed by the engine, not run")


class Approval(Task):
    """A decision by a person. Its output is an :class:`ApprovalDecision` that later renders can
    branch on (``ctx.output("ship-it").approved``). Children, if given, are the gated subtree:
    they run after an approval and are skipped when a denial's policy is ``"skip"``.

    - ``on_deny``: ``"fail"`` fails the run; ``"continue"`` records the denial (approved=False)
      and goes on; ``"skip"`` skips the node and its gated subtree.
    - ``mode``: ``"approve"`` (yes/no), ``"select"`` (pick one of ``options``), ``"rank"``
      (order ``options``).
    - ``async_=True``: unrelated branches (and later siblings) continue while it waits.
    """

    __slots__ = ("children",)

    def __init__(
        self,
        id: str,
        *children: Child,
        request: ApprovalRequest | dict[str, Any] | str | None = None,
        on_deny: Literal["fail", "continue", "skip"] = "fail",
        mode: Literal["approve", "select", "rank"] = "approve",
        options: list[ApprovalOption | dict[str, Any] | str] | None = None,
        async_: bool = False,
        label: str | None = None,
    ) -> None:
        Task.__init__(self, id, output=ApprovalDecision, run=_never, label=label)
        if on_deny not in ("fail", "continue", "skip"):
            raise RenderError(f"approval {id!r}: on_deny must be 'fail', 'continue' or 'skip', got {on_deny!r}")
        if mode not in ("approve", "select", "rank"):
            raise RenderError(f"approval {id!r}: mode must be 'approve', 'select' or 'rank', got {mode!r}")
        if isinstance(request, str):
            request = ApprovalRequest(title=request)
        elif isinstance(request, dict):
            request = ApprovalRequest.model_validate(request)
        request = request or ApprovalRequest(title=f"Approve {id}?")
        parsed = [
            o if isinstance(o, ApprovalOption) else ApprovalOption(key=o) if isinstance(o, str) else ApprovalOption.model_validate(o)
            for o in (options or [])
        ]
        if mode in ("select", "rank") and not parsed:
            raise RenderError(f"approval {id!r}: mode={mode!r} needs options=[...]")
        self.mode = "approval"
        self.wait_async = bool(async_)
        self.children = flatten(children, f"Approval {id!r}")
        if self.wait_async and self.children:  # the plan would run them without waiting for the decision
            raise RenderError(
                f"approval {id!r}: async_=True cannot gate children (they would not wait for the decision)",
                hint=f"mount the gated work on the decision instead: d = ctx.output({id!r}); d and d.approved and Task(...)",
            )
        self.wait = ApprovalWait(
            mode=mode, on_deny=on_deny, request=request.model_dump(mode="json"), options=tuple(o.model_dump() for o in parsed),
        )


class HumanTask(Task):
    """Ask a person for structured data: they submit JSON that must validate against ``output``
    (``smithers human answer REQUEST_ID --value '{...}'``). The run waits with status
    ``waiting-approval`` meanwhile."""

    __slots__ = ()

    def __init__(self, id: str, *, output: type[BaseModel], prompt: str, async_: bool = False, label: str | None = None) -> None:
        Task.__init__(self, id, output=output, run=_never, label=label)
        self.mode = "human"
        self.wait_async = bool(async_)
        self.wait = HumanWait(prompt=prompt, schema=output.model_json_schema())


class Signal(Task):
    """Wait for ``smithers signal RUN_ID <id> --data '{...}'``; the payload, validated against
    ``schema``, becomes this node's output. A signal sent before the run reaches the wait is kept
    and consumed when it does. ``correlation_id`` only matches signals sent with the same one.

    ``timeout`` (seconds or "2h") starts when the wait starts; then ``on_timeout``: ``"fail"``
    fails the node (and the run), ``"skip"`` skips it, ``"continue"`` goes on without output.
    """

    __slots__ = ()

    def __init__(
        self,
        id: str,
        *,
        schema: type[BaseModel],
        correlation_id: str | None = None,
        timeout: Duration | None = None,
        on_timeout: Literal["fail", "skip", "continue"] = "fail",
        async_: bool = False,
        label: str | None = None,
    ) -> None:
        Task.__init__(self, id, output=schema, run=_never, label=label)
        if on_timeout not in ("fail", "skip", "continue"):
            raise RenderError(f"signal {id!r}: on_timeout must be 'fail', 'skip' or 'continue', got {on_timeout!r}")
        try:
            wait_timeout = parse_duration(timeout, field=f"signal {id!r} timeout")
        except ValueError as err:
            raise RenderError(str(err)) from None
        self.mode = "signal"
        self.wait_async = bool(async_)
        self.continue_on_fail = on_timeout == "continue"
        self.wait = SignalWait(
            name=id, correlation_id=correlation_id, timeout=wait_timeout, on_timeout=on_timeout, schema=schema.model_json_schema(),
        )


WaitForEvent = Signal


class Timer(Task):
    """A durable sleep: ``Timer("cool-down", duration="2h")`` or ``Timer("at-nine", until=datetime)``.
    The run goes to ``waiting-timer``; no process needs to stay alive (the supervisor, or
    ``smithers resume``, continues it once it is due)."""

    __slots__ = ()

    def __init__(self, id: str, *, duration: Duration | None = None, until: datetime | str | None = None, label: str | None = None) -> None:
        Task.__init__(self, id, output=TimerFired, run=_never, label=label)
        if (duration is None) == (until is None):
            raise RenderError(f"timer {id!r} needs exactly one of duration= or until=")
        until_ms = None
        seconds = None
        if until is not None:
            if isinstance(until, str):
                try:
                    until = datetime.fromisoformat(until)
                except ValueError:
                    raise RenderError(f"timer {id!r}: until={until!r} is not an ISO date-time") from None
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
            until_ms = int(until.timestamp() * 1000)
        else:
            try:
                seconds = parse_duration(duration, field=f"timer {id!r} duration")
            except ValueError as err:
                raise RenderError(str(err)) from None
        self.mode = "timer"
        self.wait = TimerWait(duration=seconds, until_ms=until_ms)


def is_gate(node: Node) -> bool:
    return isinstance(node, Approval) and bool(node.children)
