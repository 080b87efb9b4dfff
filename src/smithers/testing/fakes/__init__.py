"""Scripted fake model servers on 127.0.0.1 for offline tests of real CLIs and SDKs.

>>> from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app
>>> with FakeServer(anthropic_app([Reply(tool_calls=[ToolCall("Write", {"file_path": "a.txt", "content": "hi"})]),
...                                Reply(text='{"done": true}')])) as server:   # doctest: +SKIP
...     server.url, server.requests
"""

from .anthropic import anthropic_app
from .base import FakeServer, Reply, Script, ToolCall
from .gemini import gemini_app, gemini_shell
from .openai import codex_shell, openai_app

__all__ = ["FakeServer", "Reply", "Script", "ToolCall", "anthropic_app", "codex_shell", "gemini_app", "gemini_shell", "openai_app"]
