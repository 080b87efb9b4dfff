"""The agent protocol. An agent is any object with ``async def run(self, request) -> AgentResult``.

>>> class Echo:
...     name = "echo"
...     async def run(self, request: AgentRequest) -> AgentResult:
...         return AgentResult(text='{"answer": "42"}')

An agent reports what it does through ``request.on_event`` (each :class:`AgentEvent` becomes
a persisted ``AgentEvent`` run event) and returns its final text, structured output if it
produced one directly, token usage and its session id. A failure that retrying cannot fix
(binary missing, bad credentials, unknown model) raises :class:`AgentConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import AgentConfigError, AgentError

__all__ = ["Agent", "AgentConfigError", "AgentError", "AgentEvent", "AgentRequest", "AgentResult", "Usage", "agent_name"]


@dataclass(frozen=True)
class AgentEvent:
    """One thing an agent reported while working.

    ``kind`` is one of ``text`` (data: text), ``tool_use`` (data: id, name, input), ``tool_result``
    (data: id, output, is_error), ``thinking``, ``error`` (data: message) or ``raw`` (anything else,
    data: the CLI's own event)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens,
        }
        if self.cost_usd is not None:
            out["cost_usd"] = self.cost_usd
        return out


@dataclass(frozen=True)
class AgentRequest:
    """What an agent is asked to do.

    ``resume_session_id`` is set for follow-up turns (JSON-only and repair turns): an agent with
    sessions continues that conversation; one without should treat ``prompt`` as self-contained
    (the engine then includes the earlier exchange in it)."""

    prompt: str
    output_schema: dict[str, Any]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    idle_timeout: float | None = None
    on_event: Callable[[AgentEvent], None] | None = None
    resume_session_id: str | None = None
    run_id: str = ""
    node_id: str = ""
    iteration: int = 0
    attempt: int = 1
    turn: int = 1  # 1 for the task's prompt; follow-up and repair turns count up

    def emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(AgentEvent(kind, data))


@dataclass
class AgentResult:
    text: str = ""
    output: Any = None  # structured output when the agent produced it directly
    usage: dict[str, Any] = field(default_factory=dict)  # Usage.to_dict() shape
    session_id: str | None = None
    model: str | None = None
    events: list[AgentEvent] = field(default_factory=list)


@runtime_checkable
class Agent(Protocol):
    async def run(self, request: AgentRequest) -> AgentResult: ...


def agent_name(agent: Any) -> str:
    return getattr(agent, "name", None) or type(agent).__name__


_ = AgentError  # re-exported for adapters
