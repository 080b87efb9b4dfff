"""The shape every CLI agent adapter shares: options, environment, the run skeleton.

An adapter subclasses :class:`CliAgent` and supplies three things: ``build_argv`` (the
command line), ``parse_line`` (one line of the CLI's JSON event stream → state and
AgentEvents) and, if needed, ``check_exit`` (turning a failed exit into the right error).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import AgentConfigError, AgentError
from ._process import ProcessResult, find_binary, run_process
from .base import AgentRequest, AgentResult, Usage

Permission = Literal["bypass", "accept-edits", "default"]


@dataclass
class ParseState:
    """What the line parser accumulates over one CLI invocation."""

    text: str = ""
    output: Any = None
    session_id: str | None = None
    model: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    auth_error: str | None = None  # set by the parser from a structured authentication failure
    finished: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class CliAgent:
    """Base of the CLI adapters. Options common to every CLI:

    - ``model``, ``system_prompt``: passed in the CLI's own way;
    - ``cwd``, ``env``: where and with what environment it runs (the task's cwd by default);
    - ``permission``: ``"bypass"`` (default: skip permission prompts, nothing can answer them
      inside a workflow), ``"accept-edits"`` or ``"default"``;
    - ``allowed_tools``, ``extra_args``: passed through;
    - ``timeout`` (total) and ``idle_timeout`` (reset by any output), in seconds;
    - ``binary``: the command or path to run (default: found on PATH).
    """

    binary_name = ""
    install_hint = ""
    name = ""
    auth_hint = ""  # how to fix this CLI's credentials (default: see `smithers agents`)

    def __init__(
        self,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        permission: Permission = "bypass",
        allowed_tools: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        timeout: float | None = None,
        idle_timeout: float | None = None,
        binary: str | None = None,
    ) -> None:
        if permission not in ("bypass", "accept-edits", "default"):
            raise AgentConfigError(f"{self.name}: permission must be 'bypass', 'accept-edits' or 'default', got {permission!r}")
        self.model = model
        self.system_prompt = system_prompt
        self.cwd = cwd
        self.env = dict(env or {})
        self.permission = permission
        self.allowed_tools = list(allowed_tools) if allowed_tools else None
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.binary = binary

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    # -- what adapters supply --------------------------------------------------------------

    def build_argv(self, binary: str, request: AgentRequest) -> list[str]:
        raise NotImplementedError

    def parse_line(self, line: str, state: ParseState, request: AgentRequest) -> None:
        raise NotImplementedError

    def build_env(self, request: AgentRequest) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(request.env)
        return env

    def auth_failed(self, detail: str, **details: Any) -> AgentConfigError:
        """The error for credentials the API refused: the agent is skipped for the rest of the run."""
        return AgentConfigError(
            f"{self.name} could not authenticate: {detail[-1500:]}",
            hint=self.auth_hint or f"check the credentials {self.name} uses (see `smithers agents`)", details=details,
        )

    def check_exit(self, result: ProcessResult, state: ParseState) -> None:
        """Turn a failed run into an error: configuration problems are not retried. An
        authentication failure is only what the parser recognised in the CLI's structured
        error events (``state.auth_error``), never a word in the output."""
        if state.auth_error is not None:
            raise self.auth_failed(state.auth_error, stderr=result.stderr, exit_code=result.exit_code)
        if result.exit_code == 0 and state.error is None:
            return
        detail = (state.error or result.stderr.strip() or f"exit code {result.exit_code}")[-1500:]
        lowered = detail.lower()
        if "model" in lowered and ("not found" in lowered or "unknown" in lowered or "does not exist" in lowered):
            raise AgentConfigError(
                f"{self.name}: unknown model {self.model!r}: {detail}", hint="pick a model this CLI supports",
                details={"stderr": result.stderr, "exit_code": result.exit_code},
            )
        raise AgentError(
            f"{self.name} failed (exit code {result.exit_code}): {detail}",
            details={"stderr": result.stderr, "exit_code": result.exit_code},
        )

    # -- the skeleton ----------------------------------------------------------------------

    async def run(self, request: AgentRequest) -> AgentResult:
        binary = find_binary(self.binary_name, self.binary, hint=self.install_hint)
        argv = self.build_argv(binary, request)
        state = ParseState()

        def on_line(line: str) -> None:
            self.parse_line(line, state, request)

        timeout = min((t for t in (self.timeout, request.timeout) if t), default=None)
        idle = min((t for t in (self.idle_timeout, request.idle_timeout) if t), default=None)
        result = await run_process(
            argv, cwd=self.cwd or request.cwd, env=self.build_env(request), on_line=on_line, timeout=timeout,
            idle_timeout=idle, label=self.name,
        )
        self.check_exit(result, state)
        return AgentResult(
            text=state.text, output=state.output, usage=state.usage.to_dict(), session_id=state.session_id, model=state.model or self.model,
        )


def parse_json_line(line: str) -> dict[str, Any] | None:
    """A JSON object from one output line, or None for non-JSON noise (banners, warnings)."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
