"""Run a tool's subprocess: its own process group, stdin closed, stdout+stderr merged and kept
within a byte budget, and a timeout (or the command finishing, or a cancel) that kills the
whole group, background children included."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

DRAIN_AFTER_EXIT = 0.5  # seconds to read what is left in the pipe once the leader has exited


@dataclass
class ProcOutcome:
    exit_code: int | None  # None when it was killed for the timeout
    head: bytes  # the start of the output (all of it when total <= limit)
    tail: bytes  # the last bytes, once the output went over the limit
    total: int
    timed_out: bool


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_capped(argv: list[str], *, cwd: str, env: Mapping[str, str], timeout: float, limit: int) -> ProcOutcome:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=dict(env), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )
    head = bytearray()
    tail = bytearray()
    total = 0
    half = max(limit // 2, 1)

    async def read() -> None:
        nonlocal total, head, tail
        assert proc.stdout is not None
        overflowed = False
        while chunk := await proc.stdout.read(65536):
            total += len(chunk)
            if not overflowed:
                if total <= limit:
                    head += chunk
                    continue
                overflowed = True
                both = head + chunk
                head, tail = both[:half], both[half:]
            else:
                tail += chunk
            if len(tail) > half:
                del tail[: len(tail) - half]

    reader = asyncio.ensure_future(read())
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout):
                # not proc.wait(): asyncio's wait() also waits for the pipes to close, which a
                # background child holding stdout would delay until it exits
                while proc.returncode is None and not reader.done():
                    await asyncio.sleep(0.02)
                if proc.returncode is None:  # output closed first: the leader is about to exit
                    await proc.wait()
                # a timeout here: a background child still holds the pipe; it dies with the group below
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reader), DRAIN_AFTER_EXIT)
        except TimeoutError:
            timed_out = True
    finally:
        _kill_group(proc.pid)
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        try:
            await asyncio.wait_for(reader, 2)
        except (TimeoutError, asyncio.CancelledError):
            reader.cancel()
    return ProcOutcome(
        exit_code=None if timed_out else proc.returncode, head=bytes(head), tail=bytes(tail), total=total, timed_out=timed_out,
    )


def render(outcome: ProcOutcome, limit: int) -> str:
    from ._core import cap_bytes

    if not outcome.tail:
        return cap_bytes(outcome.head, outcome.total, limit)
    return cap_bytes(outcome.head, outcome.total, limit, keep="both", tail=outcome.tail)
