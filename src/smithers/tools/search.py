"""``grep``: search file contents under the tool root (GNU grep in its own process group)."""

from __future__ import annotations

import shutil
from typing import Annotated

from pydantic import Field

from ._core import ToolContext, ToolError, tool
from ._proc import render, run_capped
from .shell import tool_env


@tool(name="grep")
async def grep(
    pattern: Annotated[str, Field(description="the regular expression (extended syntax) or, with fixed=true, the literal text")],
    path: Annotated[str, Field(description="a file or directory, relative to the workspace root")] = ".",
    glob: Annotated[str | None, Field(description="only search files whose name matches this glob, e.g. '*.py'")] = None,
    ignore_case: bool = False,
    fixed: Annotated[bool, Field(description="treat the pattern as literal text")] = False,
    *,
    ctx: ToolContext,
) -> str:
    """Search file contents recursively and return matching lines as path:line:text. Binary files
    and .git are skipped; symlinks inside directories are not followed."""
    ws = ctx.workspace
    if not pattern:
        raise ToolError("the pattern is empty")
    target = ws.resolve(path)
    if not target.exists():
        raise ToolError(f"{path!r} does not exist")
    binary = shutil.which("grep")
    if binary is None:
        raise ToolError("grep is not installed on this machine")
    argv = [binary, "-r", "-n", "-I", "-H", "-s", "--color=never", "--exclude-dir=.git", "-F" if fixed else "-E"]
    if ignore_case:
        argv.append("-i")
    if glob:
        argv.append(f"--include={glob}")
    argv += ["-e", pattern]
    rel = ws.relative(target)
    if rel != ".":
        argv += ["--", rel]
    outcome = await run_capped(argv, cwd=str(ws.root), env=tool_env(ctx), timeout=ws.timeout, limit=ws.max_output_bytes)
    text = render(outcome, ws.max_output_bytes - 100)
    if outcome.timed_out:
        raise ToolError(f"grep timed out after {ws.timeout:g}s and was killed; narrow the path or the pattern\n{text}")
    if outcome.exit_code == 1:
        return "no matches"
    if outcome.exit_code not in (0, None):
        raise ToolError(f"grep failed (exit code {outcome.exit_code}): {text.strip()}")
    return text
