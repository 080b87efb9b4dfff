"""``bash``: run a shell command in the tool root, sandboxed, with a timeout and capped output."""

from __future__ import annotations

import os
import shutil
from typing import Annotated

import anyio
from pydantic import Field

from . import sandbox
from ._core import ToolContext, ToolError, tool
from ._proc import render, run_capped

BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "USER", "LOGNAME", "TZ")


def tool_env(ctx: ToolContext) -> dict[str, str]:
    """A small environment (no API keys from ours leak into commands the model writes), plus the
    workspace's and the request's own variables."""
    env = {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["TERM"] = "dumb"
    env.update(ctx.workspace.env)
    if ctx.request is not None:
        env.update(ctx.request.env)
    return env


@tool(name="bash", sequential=True)
async def bash(
    command: Annotated[str, Field(description="the shell command (run with bash -c)")],
    timeout: Annotated[float | None, Field(description="seconds before it is killed (at most the workspace limit)")] = None,
    *,
    ctx: ToolContext,
) -> str:
    """Run a shell command with bash in the workspace root and return its combined stdout and stderr
    (and the exit code when it is not 0). The filesystem outside the workspace is read-only; the
    network is off unless this agent allows it. Background processes are killed when the command ends."""
    ws = ctx.workspace
    if not command.strip():
        raise ToolError("the command is empty")
    shell = shutil.which("bash") or "/bin/bash"
    argv = [shell, "-c", command]
    await anyio.to_thread.run_sync(sandbox.bwrap_status, ws.bwrap)  # probe once, off the event loop
    wrapped = sandbox.wrap(argv, root=ws.root, cwd=ws.root, network=ws.allow_network, binary=ws.bwrap)
    if wrapped is None:
        if not ws.allow_network:
            status = sandbox.bwrap_status(ws.bwrap)
            raise ToolError(
                f"bash is refused: commands run without network access, which needs bubblewrap, and {status.problem}. "
                f"Fix: {sandbox.INSTALL_HINT}, or create the agent with allow_network=True to run commands unsandboxed"
            )
        wrapped = argv  # network allowed and no bubblewrap: plain subprocess in its own process group
    limit = min(float(timeout), ws.timeout) if timeout and timeout > 0 else ws.timeout
    outcome = await run_capped(wrapped, cwd=str(ws.root), env=tool_env(ctx), timeout=limit, limit=ws.max_output_bytes)
    text = render(outcome, ws.max_output_bytes - 100)
    if outcome.timed_out:
        raise ToolError(f"the command timed out after {limit:g}s and was killed (with every process it started)\n{text}")
    if outcome.exit_code:
        text = f"{text.rstrip(chr(10))}\n[exit code {outcome.exit_code}]" if text else f"[exit code {outcome.exit_code}]"
    return text
