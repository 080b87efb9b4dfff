"""SDK model agents: any model through pydantic-ai, with smithers tools, MCP servers and
structured output.

>>> from smithers.agents import ModelAgent
>>> from smithers.tools import read, edit, grep, bash
>>> agent = ModelAgent(
...     "anthropic:claude-sonnet-4-5",
...     tools=[read, edit, grep, bash],
...     mcp_servers=[{"command": "uvx", "args": ["mcp-server-git"]}, "http://127.0.0.1:8000/mcp"],
...     instructions="You are a careful senior engineer.",
... )

``model`` is ``"provider:model"`` as pydantic-ai names it (``openai:gpt-5``, ``anthropic:...``,
``google:gemini-2.5-pro``, ``groq:...``, ``mistral:...``, ``bedrock:...``, ``ollama:...``,
``openrouter:...``; ``openai-chat:...`` for a Chat-Completions-only endpoint) or a pydantic-ai
``Model`` instance. ``base_url`` / ``api_key`` point the provider at any compatible endpoint.

Each task turn runs one pydantic-ai agent run: the task's output schema becomes a structured
output (the model may also answer in text; smithers then extracts the JSON), tool calls and
results are reported as events, token usage is returned, and the conversation is kept in memory
under the returned session id so repair turns continue it.

pydantic-ai is imported only when the agent runs (``smithers --help`` stays fast); without it,
running raises AgentConfigError saying which extra to install.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import AgentConfigError
from .base import AgentRequest, AgentResult

__all__ = ["ModelAgent"]

INSTALL_HINT = 'install the models extra: pip install "smithers-orchestrator[models]"'


class ModelAgent:
    """An agent backed by a model API through pydantic-ai.

    Tools: ``tools`` takes smithers tools (``smithers.tools.read`` ..., or ``@tool`` functions),
    plain functions (made tools with ``@tool``), and pydantic-ai toolsets. They act inside
    ``root`` (default: the task's working directory; a relative root is taken from there), with
    output capped at ``max_output_bytes``, ``bash``/``grep`` killed after ``tool_timeout`` seconds,
    and ``bash`` without network unless ``allow_network``.

    MCP servers: each entry of ``mcp_servers`` is an ``http(s)://`` URL (streamable HTTP), a dict
    ``{"url": ..., "headers": {...}}`` or ``{"command": ..., "args": [...], "env": {...}, "cwd": ...}``
    (stdio), a command list ``["python", "server.py"]``, a script path, or a ready pydantic-ai
    toolset / FastMCP client or server.
    """

    def __init__(
        self,
        model: Any,
        *,
        tools: Sequence[Any] = (),
        mcp_servers: Sequence[Any] = (),
        instructions: str | Sequence[str] | None = None,
        model_settings: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        root: str | os.PathLike[str] | None = None,
        max_output_bytes: int = 200_000,
        allow_network: bool = False,
        tool_timeout: float = 60.0,
        tool_env: Mapping[str, str] | None = None,
        max_requests: int | None = 50,
        retries: int = 2,
        name: str | None = None,
        max_sessions: int = 64,
    ) -> None:
        if isinstance(model, str) and ":" not in model:
            raise AgentConfigError(
                f"ModelAgent: model {model!r} must be written 'provider:model'",
                hint="for example 'openai:gpt-5', 'anthropic:claude-sonnet-4-5' or 'google:gemini-2.5-pro'",
            )
        if max_output_bytes < 1024:
            raise AgentConfigError(f"ModelAgent: max_output_bytes must be at least 1024, got {max_output_bytes}")
        if tool_timeout <= 0:
            raise AgentConfigError(f"ModelAgent: tool_timeout must be positive, got {tool_timeout}")
        self.model = model
        self.tools = list(tools)
        self.mcp_servers = list(mcp_servers)
        self.instructions = instructions
        self.model_settings = dict(model_settings) if model_settings else None
        self.base_url = base_url
        self.api_key = api_key
        self.root = root
        self.max_output_bytes = max_output_bytes
        self.allow_network = allow_network
        self.tool_timeout = tool_timeout
        self.tool_env = dict(tool_env or {})
        self.max_requests = max_requests
        self.retries = retries
        self.name = name or (model if isinstance(model, str) else f"model:{getattr(model, 'model_name', type(model).__name__)}")
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, list[Any]] = OrderedDict()
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ModelAgent({self.name!r})"

    @property
    def provider(self) -> str | None:
        return self.model.split(":", 1)[0] if isinstance(self.model, str) else None

    def workspace_root(self, request: AgentRequest) -> Path:
        base = Path(request.cwd or os.getcwd())
        if self.root is None:
            return base
        root = Path(self.root).expanduser()
        return root if root.is_absolute() else base / root

    # -- sessions: message history per session id, in memory ----------------------------------

    def session_history(self, session_id: str | None) -> list[Any] | None:
        if session_id is None:
            return None
        with self._sessions_lock:
            history = self._sessions.get(session_id)
            if history is not None:
                self._sessions.move_to_end(session_id)
            return list(history) if history is not None else None

    def save_session(self, session_id: str, messages: list[Any]) -> None:
        with self._sessions_lock:
            self._sessions[session_id] = list(messages)
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    async def run(self, request: AgentRequest) -> AgentResult:
        try:
            from . import _model_adapter
        except ImportError as err:
            raise AgentConfigError(f"{self.name}: pydantic-ai is not installed ({err})", hint=INSTALL_HINT) from None
        return await _model_adapter.run(self, request)
