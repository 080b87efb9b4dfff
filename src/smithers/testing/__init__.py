"""The test kit, shipped so users can test their own workflows offline.

- :class:`ScriptedAgent` — an agent that answers from a script.
- :func:`cassette` — record a workflow's agent calls once, replay them in tests (no agent, no
  network); see docs/cassettes.md.
- ``smithers.testing.fakes`` — scripted fake model servers (Anthropic Messages, OpenAI
  Responses, Gemini) on 127.0.0.1, and helpers that point the real CLIs at them.
"""

from .agents import ScriptedAgent
from .cassette import cassette

__all__ = ["ScriptedAgent", "cassette"]
