"""Agents: anything with ``async run(request) -> AgentResult``. See ``base.py``."""

from .base import Agent, AgentEvent, AgentRequest, AgentResult

__all__ = ["Agent", "AgentEvent", "AgentRequest", "AgentResult"]
