"""A scripted agent for tests: each call returns the next scripted reply."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..agents.base import AgentRequest, AgentResult

Step = str | dict[str, Any] | BaseException | Callable[[AgentRequest], Any]


class ScriptedAgent:
    """Answers each request with the next step of its script.

    A step is reply text, a dict (returned as structured output), an exception (raised, as a
    failing agent would) or a function of the request returning one of those. The last step
    repeats once the script is used up. Every request is kept in ``requests``.

    >>> agent = ScriptedAgent(['not json', '```json\\n{"answer": 42}\\n```'])
    """

    def __init__(self, script: Sequence[Step], *, name: str = "scripted", session_id: str | None = None) -> None:
        if not script:
            raise ValueError("ScriptedAgent needs at least one step")
        self.script = list(script)
        self.name = name
        self.session_id = session_id
        self.requests: list[AgentRequest] = []

    async def run(self, request: AgentRequest) -> AgentResult:
        step = self.script[min(len(self.requests), len(self.script) - 1)]
        self.requests.append(request)
        if callable(step) and not isinstance(step, BaseException):
            step = step(request)
        if isinstance(step, BaseException):
            raise step
        usage = {"input_tokens": len(request.prompt) // 4, "output_tokens": 10}
        if isinstance(step, dict):
            return AgentResult(text="", output=step, usage=usage, session_id=self.session_id)
        return AgentResult(text=str(step), usage=usage, session_id=self.session_id)
