"""Wait specs: what a waiting node waits for (``Task.wait``), read by the engine.

Plain data, below the nodes that carry them (:mod:`.nodes` names ``WaitSpec``; the waiting
nodes of :mod:`.human` build them). ``smithers.authoring.human`` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = ["ApprovalWait", "HumanWait", "SignalWait", "TimerWait", "WaitSpec"]


@dataclass(frozen=True, slots=True)
class ApprovalWait:
    """An :class:`Approval`: a decision by a person."""

    kind: ClassVar[str] = "approval"
    mode: Literal["approve", "select", "rank"]
    on_deny: Literal["fail", "continue", "skip"]
    request: dict[str, Any]  # ApprovalRequest as JSON
    options: tuple[dict[str, Any], ...]  # ApprovalOption as JSON

    def request_json(self) -> dict[str, Any]:
        """What is stored and shown: the request with its mode, options and deny policy."""
        return {**self.request, "mode": self.mode, "options": list(self.options), "on_deny": self.on_deny}


@dataclass(frozen=True, slots=True)
class HumanWait:
    """A :class:`HumanTask`: structured data from a person, validated against ``schema``."""

    kind: ClassVar[str] = "human"
    prompt: str
    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SignalWait:
    """A :class:`Signal`: a named payload sent from outside (``smithers signal``)."""

    kind: ClassVar[str] = "signal"
    name: str
    correlation_id: str | None
    timeout: float | None  # seconds, from the start of the wait
    on_timeout: Literal["fail", "skip", "continue"]
    schema: dict[str, Any]

    def meta(self) -> dict[str, Any]:
        """What a front end needs to answer it before it starts (stored on the node)."""
        return {"signal": self.name, "correlation_id": self.correlation_id, "schema": self.schema}


@dataclass(frozen=True, slots=True)
class TimerWait:
    """A :class:`Timer`: a due time, ``until_ms`` or ``duration`` seconds after the wait starts."""

    kind: ClassVar[str] = "timer"
    duration: float | None
    until_ms: int | None


WaitSpec = ApprovalWait | HumanWait | SignalWait | TimerWait
