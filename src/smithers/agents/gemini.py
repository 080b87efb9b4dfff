"""Google's Gemini CLI as an agent: ``gemini --output-format stream-json``, one JSON event per line.

What the adapter runs (gemini-cli 0.61)::

    gemini --prompt=PROMPT -o stream-json [-m MODEL] [--resume SESSION_ID]
           [--yolo | --approval-mode auto_edit] [--skip-trust] [--allowed-tools T ...] [EXTRA ARGS]

- **Permissions.** ``permission="bypass"`` (the default) passes ``--yolo``, ``"accept-edits"``
  ``--approval-mode auto_edit``; both also pass ``--skip-trust``, because headless gemini
  exits 55 in a folder it has not been told to trust, and a workflow's cwd is chosen by its
  author. ``"default"`` passes neither (set ``GEMINI_CLI_TRUST_WORKSPACE=true`` or trust the
  folder yourself).
- **Events.** ``init`` (``session_id``, ``model``; ``auto`` unless ``-m``), ``message``
  (``role: assistant`` arrives as ``delta: true`` chunks, gathered into one ``text`` event per
  stretch between tool calls; the last stretch is the reply text), ``tool_use``
  (``tool_name``, ``tool_id``, ``parameters``), ``tool_result`` (``tool_id``, ``status``,
  ``output``, ``error``), ``error`` (``severity`` warning/error; reported, not fatal) and
  ``result`` (``status`` success/error, ``error.message``, ``stats`` with ``input_tokens``
  including cached ones, ``input`` without them, ``cached``, ``output_tokens`` and a
  per-model breakdown that also counts the model router's call).
- **Failures.** Exit 41 means no usable auth method (no ``security.auth.selectedType`` in
  ``~/.gemini/settings.json``, or no ``GEMINI_API_KEY``); exit 55 an untrusted folder; a
  ``result`` error carrying the API's error body (``[API Error: {"error": {"code": 401,
  "status": "UNAUTHENTICATED", …}}]``) with a 401/403 code or an UNAUTHENTICATED/
  PERMISSION_DENIED status means a bad key (the body's fields decide, not its words). All
  three raise :class:`AgentConfigError` with the fix in the hint.
- **System prompt.** Gemini's only switch, ``GEMINI_SYSTEM_MD``, replaces its whole built-in
  prompt (tool instructions included), so ``system_prompt`` is put in front of the first turn's
  prompt instead.
- **Sessions.** ``--resume ID`` continues a session; sessions are stored per project
  directory, so a resumed turn must run in the same cwd (the engine's follow-ups do).
- **Cleanup.** Gemini starts its shell commands detached (a process group of their own), so
  after every run the adapter also kills whatever the run left behind (see ``_descendants``).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import AgentConfigError
from ._api_errors import ApiError, error_body
from ._process import ProcessResult
from .base import AgentRequest
from .cli import CliAgent, ParseState, parse_json_line

__all__ = ["Gemini"]

EXIT_AUTH = 41
EXIT_UNTRUSTED = 55
_WRAPPED_BODY = re.compile(r"\[API Error: (\{.*\})\]\s*\Z", re.DOTALL)  # how gemini quotes the API's error body
AUTH_HINT = (
    "give gemini an API key: set GEMINI_API_KEY and put "
    '{"security": {"auth": {"selectedType": "gemini-api-key"}}} in ~/.gemini/settings.json '
    "(or run `gemini` once interactively to log in)"
)


class Gemini(CliAgent):
    """The ``gemini`` CLI (see the module docs for the flags and events)."""

    binary_name = "gemini"
    name = "gemini"
    install_hint = "install the Gemini CLI: `npm install -g @google/gemini-cli` (in the smithers repo: scripts/install-agents)"
    auth_hint = AUTH_HINT

    def build_argv(self, binary: str, request: AgentRequest) -> list[str]:
        prompt = request.prompt
        if self.system_prompt and not request.resume_session_id:
            prompt = f"{self.system_prompt}\n\n{prompt}"
        argv = [binary, f"--prompt={prompt}", "--output-format", "stream-json"]
        if self.model:
            argv += ["--model", self.model]
        if request.resume_session_id:
            argv += ["--resume", request.resume_session_id]
        if self.permission == "bypass":
            argv += ["--yolo", "--skip-trust"]
        elif self.permission == "accept-edits":
            argv += ["--approval-mode", "auto_edit", "--skip-trust"]
        for tool in self.allowed_tools or ():
            argv += ["--allowed-tools", tool]
        return argv + self.extra_args

    def parse_line(self, line: str, state: ParseState, request: AgentRequest) -> None:
        event = parse_json_line(line)
        if event is None:
            return
        kind = event.get("type")
        if kind == "init":
            state.session_id = event.get("session_id") or state.session_id
            if event.get("model") and event.get("model") != "auto":
                state.model = event["model"]
        elif kind == "message":
            if event.get("role") == "assistant":
                chunk = str(event.get("content") or "")
                if event.get("delta"):
                    state.extra["segment"] = state.extra.get("segment", "") + chunk
                else:
                    self._flush(state, request)
                    state.extra["segment"] = chunk
        elif kind == "tool_use":
            self._flush(state, request)
            request.emit("tool_use", id=str(event.get("tool_id") or ""), name=event.get("tool_name"), input=event.get("parameters") or {})
        elif kind == "tool_result":
            error = event.get("error")
            output = event.get("output")
            if output is None and isinstance(error, dict):
                output = error.get("message")
            request.emit(
                "tool_result", id=str(event.get("tool_id") or ""), output=output if output is not None else "",
                is_error=event.get("status") != "success",
            )
        elif kind == "error":
            request.emit("error", message=str(event.get("message") or ""), severity=event.get("severity"), fatal=False)
        elif kind == "result":
            self._flush(state, request)
            state.finished = True
            self._usage(event.get("stats") or {}, state)
            if event.get("status") != "success":
                error = event.get("error") or {}
                state.error = str(error.get("message") if isinstance(error, dict) else error) or "gemini reported an error"
                request.emit("error", message=state.error, fatal=True)
                if _api_error(state.error).is_auth:
                    state.auth_error = state.error
        else:
            request.emit("raw", event=event)

    def _flush(self, state: ParseState, request: AgentRequest) -> None:
        segment = state.extra.pop("segment", "")
        if segment:
            state.text = segment
            request.emit("text", text=segment)

    def _usage(self, stats: dict[str, Any], state: ParseState) -> None:
        cached = int(stats.get("cached") or 0)
        prompt = int(stats.get("input_tokens") or 0)
        state.usage.input_tokens = int(stats["input"]) if isinstance(stats.get("input"), int) else max(0, prompt - cached)
        state.usage.output_tokens = int(stats.get("output_tokens") or 0)
        state.usage.cache_read_tokens = cached
        models = stats.get("models")
        if state.model is None and isinstance(models, dict) and models:
            state.model = max(models, key=lambda name: (models[name] or {}).get("total_tokens") or 0)

    def check_exit(self, result: ProcessResult, state: ParseState) -> None:
        details = {"stderr": result.stderr, "exit_code": result.exit_code}
        if result.exit_code == EXIT_AUTH:
            raise AgentConfigError(
                f"gemini has no usable auth method (exit {EXIT_AUTH}): {_last_line(result.stderr)}", hint=AUTH_HINT, details=details,
            )
        if result.exit_code == EXIT_UNTRUSTED:
            raise AgentConfigError(
                f"gemini refused to run in an untrusted folder (exit {EXIT_UNTRUSTED})",
                hint="use permission='bypass' or 'accept-edits' (they pass --skip-trust), or set GEMINI_CLI_TRUST_WORKSPACE=true",
                details=details,
            )
        super().check_exit(result, state)


def _api_error(message: str) -> ApiError:
    """The API error body gemini quotes in a result's error message, if it quotes one."""
    match = _WRAPPED_BODY.match(message.strip())
    body = error_body(match.group(1) if match else message)
    return body if body is not None else ApiError(message=message)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no details"
