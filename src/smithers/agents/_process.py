"""Run a CLI agent as a subprocess: its own process group, stdin closed, stdout read line by
line, and a cancel, timeout or idle timeout that kills the whole group (grandchildren too).

Every CLI adapter is an argv builder plus a line parser on top of :func:`run_process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import AgentConfigError, AgentError
from ._descendants import MARK_VAR, descendants, kill_marked, kill_pids, new_mark

KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL for the process group (the contract: all gone within 2 s)
STDERR_TAIL = 4000


@dataclass
class ProcessResult:
    exit_code: int
    stderr: str  # the last STDERR_TAIL characters
    lines: int


def find_binary(name: str, explicit: str | None, *, hint: str) -> str:
    """The path of an agent's binary, or a non-retryable error that says how to install it."""
    if explicit:
        if os.path.sep in explicit:
            explicit = os.path.abspath(explicit)  # the process starts in the task's folder, not ours
            if os.access(explicit, os.X_OK):
                return explicit
            raise AgentConfigError(f"agent binary {explicit} does not exist or is not executable", hint=hint)
        name = explicit
    found = shutil.which(name)
    if found is None:
        raise AgentConfigError(f"the {name!r} command was not found on PATH", hint=hint)
    return found


def kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def run_process(
    argv: list[str],
    *,
    cwd: str,
    env: dict[str, str],
    on_line: Callable[[str], None],
    timeout: float | None = None,
    idle_timeout: float | None = None,
    label: str = "agent",
) -> ProcessResult:
    """Run ``argv`` to completion, calling ``on_line`` for every stdout line.

    Raises AgentError on timeout or idle timeout (after killing the group). If the awaiting
    task is cancelled, the group is killed before the cancellation propagates."""
    mark = new_mark()  # every descendant inherits it, even ones that leave the process group
    env = {**env, MARK_VAR: mark}
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=16 * 1024 * 1024,
    )
    stderr_chunks: list[bytes] = []
    lines = 0
    loop = asyncio.get_running_loop()
    last_output = loop.time()

    async def read_stderr() -> None:
        assert proc.stderr is not None
        while chunk := await proc.stderr.read(65536):
            stderr_chunks.append(chunk)
            nonlocal last_output
            last_output = loop.time()

    async def read_stdout() -> None:
        assert proc.stdout is not None
        nonlocal lines, last_output
        while raw := await proc.stdout.readline():
            last_output = loop.time()
            lines += 1
            line = raw.decode("utf-8", errors="replace").strip()
            if line:
                on_line(line)

    async def watchdog() -> str:
        started = loop.time()
        while True:
            await asyncio.sleep(0.1)
            now = loop.time()
            if timeout is not None and now - started > timeout:
                return f"{label} timed out after {timeout:g}s"
            if idle_timeout is not None and now - last_output > idle_timeout:
                return f"{label} printed nothing for {idle_timeout:g}s (idle timeout)"

    readers = asyncio.gather(read_stdout(), read_stderr())
    guard = asyncio.ensure_future(watchdog())
    try:
        watched: set[asyncio.Future[Any]] = {readers, guard}
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if guard in done:
            await _terminate(proc)
            readers.cancel()
            raise AgentError(guard.result(), details={"stderr": _tail(stderr_chunks)})
        await readers  # surface on_line errors
        code = await proc.wait()
    except BaseException:
        await asyncio.shield(_terminate(proc))
        raise
    finally:
        guard.cancel()
        # whatever the run left behind (CLIs that run tools in their own sessions); shielded so a
        # second cancel cannot stop the sweep half-way
        await asyncio.shield(kill_marked(mark))
    return ProcessResult(exit_code=code, stderr=_tail(stderr_chunks), lines=lines)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the whole group, then SIGKILL it if anything is left after the grace period.
    Descendants that started their own session (some CLIs run tools that way) are listed
    first (in a worker thread: it scans every process) and killed too."""
    strays = await asyncio.to_thread(descendants, proc.pid)
    kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
    kill_group(proc.pid, signal.SIGKILL)  # grandchildren may outlive the leader
    kill_pids(strays)
    if proc.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 2)


def _tail(chunks: list[bytes]) -> str:
    return b"".join(chunks)[-STDERR_TAIL:].decode("utf-8", errors="replace")
