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

__all__ = ["Agent", "AgentEvent", "AgentRequest", "AgentResult", "ClaudeCode", "Codex", "Gemini", "ModelAgent", "Pi"]  # add lazy names here too


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
