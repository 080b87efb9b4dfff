"""The agent protocol. An agent is any object with ``async def run(self, request) -> AgentResult``.

>>> class Echo:
...     async def run(self, request: AgentRequest) -> AgentResult:
...         return AgentResult(text='{"answer": "42"}')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class AgentEvent:
    """One thing an agent reported while working (text, tool use, tool result, ...)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentRequest:
    prompt: str
    output_schema: dict[str, Any]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    idle_timeout: float | None = None
    on_event: Callable[[AgentEvent], None] | None = None
    resume_session_id: str | None = None
    node_id: str = ""
    attempt: int = 1


@dataclass
class AgentResult:
    text: str = ""
    output: Any = None  # structured output when the agent produced it directly
    usage: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    events: list[AgentEvent] = field(default_factory=list)


@runtime_checkable
class Agent(Protocol):
    async def run(self, request: AgentRequest) -> AgentResult: ...


def agent_name(agent: Any) -> str:
    return getattr(agent, "name", None) or type(agent).__name__
