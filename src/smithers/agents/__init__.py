"""Agents: anything with ``async run(request) -> AgentResult``. See ``base.py``.

The adapters load on first use (``from smithers.agents import ClaudeCode``), so importing
this package stays cheap."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import Agent, AgentEvent, AgentRequest, AgentResult

# name → module (relative to this package) defining it; loaded on first attribute access
_LAZY: dict[str, str] = {
    "ClaudeCode": ".claude_code",
    "Codex": ".codex",
    "Gemini": ".gemini",
    "ModelAgent": ".model",
    "Pi": ".pi",
}

# add lazy names here too
__all__ = ["Agent", "AgentEvent", "AgentRequest", "AgentResult", "ClaudeCode", "Codex", "Gemini", "ModelAgent", "Pi"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


# agent names a task may give instead of an object: Task(..., agent="codex")
NAMES: dict[str, str] = {"claude-code": "ClaudeCode", "claude": "ClaudeCode", "codex": "Codex", "gemini": "Gemini", "pi": "Pi"}


def resolve(name: str) -> Any:
    """An agent from a name: ``"claude-code"``, ``"codex"``, ``"gemini"``, ``"pi"``, or any
    ``"provider:model"`` (a :class:`ModelAgent`). Unknown names are a configuration error."""
    from ..errors import AgentConfigError

    key = name.strip().lower()
    if key in NAMES:
        return __getattr__(NAMES[key])()
    if ":" in key:
        return __getattr__("ModelAgent")(name.strip())
    raise AgentConfigError(
        f"unknown agent name {name!r}",
        hint=f"use one of {', '.join(sorted(NAMES))}, a 'provider:model' string (e.g. 'openai:gpt-5'), or an agent object",
    )
