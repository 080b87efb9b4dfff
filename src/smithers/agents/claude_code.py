"""Claude Code (``claude``) as a workflow agent.

>>> agent = ClaudeCode(model="sonnet", allowed_tools=["Read", "Write"])
>>> agent.build_argv("claude", AgentRequest(prompt="hi", output_schema={}, cwd="."))[:6]
['claude', '-p', '--output-format', 'stream-json', '--verbose', '--model']

Runs ``claude -p --output-format stream-json --verbose [options] -- PROMPT`` and reads its
NDJSON stream: ``system``/``init`` (session id, model), ``assistant`` messages (text,
``tool_use`` and thinking blocks), ``user`` messages (``tool_result`` blocks) and the final
``result`` (answer, usage, cost, ``structured_output`` when ``--json-schema`` was given).

Claude Code retries a failing API call up to ten times with backoff (minutes); a ``system``
``api_retry`` line reporting 401/403 ends the run at once with :class:`AgentConfigError`.
Authentication failures are recognised only from the stream's structured fields: the
``api_retry`` line's ``error_status``/``error``, an assistant error message's ``error``
(``authentication_failed``, also when no key is set at all) and the result's
``api_error_status``/``api_error_type``; a reply that mentions "401" or "API key" is a reply.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import AgentError
from ._api_errors import AUTH_ERROR_TYPES, AUTH_STATUSES
from ._process import ProcessResult
from .base import AgentRequest
from .cli import CliAgent, ParseState, parse_json_line

__all__ = ["ClaudeCode"]

# set by a parent Claude Code session; a nested `claude` must not inherit them
NESTED_SESSION_VARS = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT")
AUTH_HINT = (
    "set ANTHROPIC_API_KEY (or log in with `claude /login`) for the user running smithers; "
    "ANTHROPIC_BASE_URL must point at an Anthropic-compatible API"
)


def _tool_output(content: Any) -> str:
    """A tool result's content as text (Claude Code sends a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) if isinstance(block, dict) else str(block) for block in content)
    return "" if content is None else json.dumps(content)


class ClaudeCode(CliAgent):
    """Claude Code in print mode. Options beyond :class:`CliAgent`'s:

    - ``structured``: pass the task's output schema as ``--json-schema`` (default on); Claude
      Code then offers a ``StructuredOutput`` tool and its input becomes ``AgentResult.output``.
      A reply that only has JSON in its text still works: the engine extracts it.

    ``permission="bypass"`` maps to ``--dangerously-skip-permissions`` (with ``IS_SANDBOX=1``
    when smithers runs as root, since Claude Code refuses the flag for root otherwise),
    ``"accept-edits"`` to ``--permission-mode acceptEdits``. ``system_prompt`` is appended to
    Claude Code's own with ``--append-system-prompt``. Follow-up turns use ``--resume``.
    """

    binary_name = "claude"
    name = "claude-code"
    install_hint = "install Claude Code: `npm install -g @anthropic-ai/claude-code` (https://docs.claude.com/claude-code)"
    auth_hint = AUTH_HINT

    def __init__(self, *, structured: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.structured = structured

    def build_argv(self, binary: str, request: AgentRequest) -> list[str]:
        argv = [binary, "-p", "--output-format", "stream-json", "--verbose"]
        if self.model:
            argv += ["--model", self.model]
        if self.system_prompt:
            argv += ["--append-system-prompt", self.system_prompt]
        if self.permission == "bypass":
            argv.append("--dangerously-skip-permissions")
        elif self.permission == "accept-edits":
            argv += ["--permission-mode", "acceptEdits"]
        if self.allowed_tools:
            argv += ["--allowedTools", ",".join(self.allowed_tools)]
        if request.resume_session_id:
            argv += ["--resume", request.resume_session_id]
        if self.structured and request.output_schema:
            argv += ["--json-schema", json.dumps(request.output_schema)]
        # `--` ends the options: --allowedTools takes several values, and a prompt may start with "-"
        return [*argv, *self.extra_args, "--", request.prompt]

    def build_env(self, request: AgentRequest) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in NESTED_SESSION_VARS}
        env.update(self.env)
        env.update(request.env)
        if self.permission == "bypass" and hasattr(os, "geteuid") and os.geteuid() == 0:
            env.setdefault("IS_SANDBOX", "1")
        return env

    def check_exit(self, result: ProcessResult, state: ParseState) -> None:
        super().check_exit(result, state)
        if not state.finished:
            raise AgentError(
                f"{self.name} exited without a result line", details={"stderr": result.stderr, "exit_code": result.exit_code},
            )

    def parse_line(self, line: str, state: ParseState, request: AgentRequest) -> None:
        event = parse_json_line(line)
        if event is None:
            return
        kind = event.get("type")
        if kind == "system":
            self._system(event, state, request)
        elif kind == "assistant":
            self._assistant(event, state, request)
        elif kind == "user":
            for block in _blocks(event):
                if block.get("type") == "tool_result":
                    request.emit(
                        "tool_result", id=block.get("tool_use_id"), output=_tool_output(block.get("content")),
                        is_error=bool(block.get("is_error")),
                    )
        elif kind == "result":
            self._result(event, state)

    def _system(self, event: dict[str, Any], state: ParseState, request: AgentRequest) -> None:
        subtype = event.get("subtype")
        if subtype == "init":
            state.session_id = event.get("session_id") or state.session_id
            state.model = event.get("model") or state.model
        elif subtype == "api_retry":
            status = event.get("error_status")
            if status in AUTH_STATUSES or event.get("error") in AUTH_ERROR_TYPES:
                raise self.auth_failed(f"the API answered {status or event.get('error')}", event=event)
            request.emit("raw", type="api_retry", attempt=event.get("attempt"), status=status, error=event.get("error"))

    def _assistant(self, event: dict[str, Any], state: ParseState, request: AgentRequest) -> None:
        message = event.get("message") or {}
        state.session_id = event.get("session_id") or state.session_id
        if event.get("is_api_error_message") or event.get("error"):
            text = "".join(str(b.get("text", "")) for b in _blocks(event) if b.get("type") == "text")
            request.emit("error", message=text or str(event.get("error")))
            if _is_auth_failure(event):
                state.auth_error = text or str(event.get("error"))
            return
        for block in message.get("content") or []:
            block_type = block.get("type")
            if block_type == "text" and block.get("text"):
                request.emit("text", text=block["text"])
            elif block_type == "tool_use":
                request.emit("tool_use", id=block.get("id"), name=block.get("name"), input=block.get("input") or {})
            elif block_type == "thinking" and block.get("thinking"):
                request.emit("thinking", text=block["thinking"])

    def _result(self, event: dict[str, Any], state: ParseState) -> None:
        state.finished = True
        state.session_id = event.get("session_id") or state.session_id
        result = event.get("result")
        if isinstance(result, str):
            state.text = result
        if event.get("structured_output") is not None:
            state.output = event["structured_output"]
        usage = event.get("usage") or {}
        state.usage.input_tokens = int(usage.get("input_tokens") or 0)
        state.usage.output_tokens = int(usage.get("output_tokens") or 0)
        state.usage.cache_read_tokens = int(usage.get("cache_read_input_tokens") or 0)
        state.usage.cache_write_tokens = int(usage.get("cache_creation_input_tokens") or 0)
        if event.get("total_cost_usd") is not None:
            state.usage.cost_usd = float(event["total_cost_usd"])
        models = event.get("modelUsage")
        if isinstance(models, dict) and len(models) == 1 and not state.model:
            state.model = next(iter(models))
        subtype = str(event.get("subtype") or "")
        if event.get("is_error") or subtype.startswith("error"):
            errors = event.get("errors")
            detail = "; ".join(map(str, errors)) if isinstance(errors, list) and errors else (result or subtype)
            state.error = f"{subtype}: {detail}" if subtype and subtype != "success" else str(detail)
            if _is_auth_failure(event):
                state.auth_error = state.error
        state.extra.update(num_turns=event.get("num_turns"), permission_denials=event.get("permission_denials") or [])


def _is_auth_failure(event: dict[str, Any]) -> bool:
    """An assistant error message or an error result that says the API refused the credentials."""
    return (
        event.get("error") in AUTH_ERROR_TYPES or event.get("api_error_status") in AUTH_STATUSES
        or event.get("api_error_type") in AUTH_ERROR_TYPES
    )


def _blocks(event: dict[str, Any]) -> list[dict[str, Any]]:
    content = (event.get("message") or {}).get("content")
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
