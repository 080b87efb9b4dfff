"""pi (``pi``, the pi-coding-agent CLI) as a workflow agent.

>>> agent = Pi(provider="anthropic", model="claude-sonnet-4-5")
>>> agent.build_argv("pi", AgentRequest(prompt="hi", output_schema={}, cwd="."))
['pi', '--mode', 'json', '--provider', 'anthropic', '--model', 'claude-sonnet-4-5', '-p', 'hi']

Runs ``pi --mode json [options] -p PROMPT`` and reads its JSON lines: ``session`` (the session
id, which ``--session`` takes to continue it), ``agent_*``/``turn_*`` (ignored), ``message_end``
(a finished user, assistant or tool-result message: assistant text, thinking, usage and
errors), ``tool_execution_start``/``_end`` (tool calls and their results), ``auto_retry_*``.

pi exits 0 even when the model API failed: the failure is an assistant message with
``stopReason: "error"`` and an ``errorMessage`` (after up to three automatic retries for
transient errors), so the adapter turns the last such message into the run's error. The
provider SDKs word that message ``"<HTTP status> <error body>"`` (``401 {"type": "error",
"error": {"type": "authentication_error", …}}``): a 401/403 status or an authentication error
type there, or pi's own ``No API key found for …``, is an authentication failure
(:class:`AgentConfigError`); nothing else in the text is.
"""

from __future__ import annotations

import re
from typing import Any

from ._api_errors import status_prefixed
from .base import AgentRequest
from .cli import CliAgent, ParseState, parse_json_line

__all__ = ["Pi"]

_NO_KEY = re.compile(r"No API key (?:found )?for ")  # pi's own error when it has no key for the provider


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _is_auth_failure(message: str) -> bool:
    api_error = status_prefixed(message)
    return (api_error is not None and api_error.is_auth) or _NO_KEY.match(message.strip()) is not None


class Pi(CliAgent):
    """pi in print mode with JSON output. Options beyond :class:`CliAgent`'s:

    - ``provider``: ``--provider`` (a built-in one or one declared in ``~/.pi/agent/models.json``);
    - ``thinking``: ``--thinking`` level (``off`` … ``xhigh``);
    - ``offline``: ``--offline``, no startup network operations (update and package checks).

    pi has no permission prompts, so ``permission`` changes nothing; ``allowed_tools`` becomes
    ``--tools`` (an allowlist: read, bash, edit, write, grep, find, ls …) and ``system_prompt``
    is appended with ``--append-system-prompt``. Follow-up turns continue the session with
    ``--session ID``.
    """

    binary_name = "pi"
    name = "pi"
    install_hint = "install pi: `npm install -g @mariozechner/pi-coding-agent`"

    def __init__(self, *, provider: str | None = None, thinking: str | None = None, offline: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.provider = provider
        self.thinking = thinking
        self.offline = offline

    def __repr__(self) -> str:
        return f"Pi(provider={self.provider!r}, model={self.model!r})"

    def build_argv(self, binary: str, request: AgentRequest) -> list[str]:
        argv = [binary, "--mode", "json"]
        if self.offline:
            argv.append("--offline")
        if self.provider:
            argv += ["--provider", self.provider]
        if self.model:
            argv += ["--model", self.model]
        if self.thinking:
            argv += ["--thinking", self.thinking]
        if self.system_prompt:
            argv += ["--append-system-prompt", self.system_prompt]
        if self.allowed_tools:
            argv += ["--tools", ",".join(self.allowed_tools)]
        if request.resume_session_id:
            argv += ["--session", request.resume_session_id]
        # pi has no `--`: an argument starting with "-" is an option and one with "@" a file to attach
        prompt = f" {request.prompt}" if request.prompt.startswith(("-", "@")) else request.prompt
        return [*argv, *self.extra_args, "-p", prompt]

    def parse_line(self, line: str, state: ParseState, request: AgentRequest) -> None:
        event = parse_json_line(line)
        if event is None:
            return
        kind = event.get("type")
        if kind == "session":
            state.session_id = event.get("id") or state.session_id
        elif kind == "message_end":
            message = event.get("message") or {}
            if message.get("role") == "assistant":
                self._assistant(message, state, request)
        elif kind == "tool_execution_start":
            request.emit("tool_use", id=event.get("toolCallId"), name=event.get("toolName"), input=event.get("args") or {})
        elif kind == "tool_execution_end":
            result = event.get("result") or {}
            output = _text_of(result.get("content")) if isinstance(result, dict) else str(result)
            request.emit("tool_result", id=event.get("toolCallId"), output=output, is_error=bool(event.get("isError")))
        elif kind == "auto_retry_start":
            request.emit(
                "raw", type=kind, attempt=event.get("attempt"), max_attempts=event.get("maxAttempts"), error=event.get("errorMessage"),
            )
        elif kind == "auto_retry_end" and not event.get("success"):
            state.error = str(event.get("finalError") or state.error or "pi gave up retrying")
            state.auth_error = state.error if _is_auth_failure(state.error) else state.auth_error
        elif kind == "agent_end":
            state.finished = True

    def _assistant(self, message: dict[str, Any], state: ParseState, request: AgentRequest) -> None:
        usage = message.get("usage") or {}
        state.usage.input_tokens += int(usage.get("input") or 0)
        state.usage.output_tokens += int(usage.get("output") or 0)
        state.usage.cache_read_tokens += int(usage.get("cacheRead") or 0)
        state.usage.cache_write_tokens += int(usage.get("cacheWrite") or 0)
        cost = (usage.get("cost") or {}).get("total")
        if cost:
            state.usage.cost_usd = (state.usage.cost_usd or 0.0) + float(cost)
        if message.get("model"):
            state.model = message["model"]
        if message.get("stopReason") in ("error", "aborted"):
            state.error = str(message.get("errorMessage") or f"pi stopped: {message.get('stopReason')}")
            state.auth_error = state.error if _is_auth_failure(state.error) else None
            request.emit("error", message=state.error)
            return
        state.error = state.auth_error = None  # a later success (after an automatic retry) clears an earlier failure
        texts = []
        for part in message.get("content") or []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and part.get("text"):
                texts.append(part["text"])
                request.emit("text", text=part["text"])
            elif part.get("type") == "thinking" and part.get("thinking"):
                request.emit("thinking", text=part["thinking"])
        if texts:
            state.text = "\n".join(texts)
