"""Process trees and liveness through psutil: the marked-process sweep after an agent run, the
descendants of a CLI, and run-owner liveness (a zombie or a recycled pid is no owner)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from proctree import alive

from smithers.agents._descendants import MARK_VAR, descendants, kill_marked, marked_pids, new_mark
from smithers.storage.lease import Owner, _process_start, owner_alive


def _owner_row(pid: int, start: str) -> dict:
    host = socket.gethostname()
    return {"owner_id": f"{host}:{pid}:{start}:abcd", "owner_host": host, "owner_pid": pid, "heartbeat_at_ms": 0}


def test_owner_liveness_checks_pid_start_time_and_zombies() -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        start = _process_start(child.pid)
        assert start is not None
        assert owner_alive(_owner_row(child.pid, start))
        assert not owner_alive(_owner_row(child.pid, "12345.00")), "a recycled pid is not the owner"
        assert owner_alive(_owner_row(child.pid, f"{float(start) + 0.5:.2f}")), "whole-second boot-time jitter"
        os.kill(child.pid, signal.SIGKILL)
        # not reaped: the child is a zombie until we wait for it
        for _ in range(500):
            if psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.01)
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        assert _process_start(child.pid) is None
        assert not owner_alive(_owner_row(child.pid, start)), "a zombie owner is dead"
    finally:
        child.kill()
        child.wait()
    assert not owner_alive(_owner_row(child.pid, start))


def test_this_process_is_a_live_owner() -> None:
    owner = Owner.this_process()
    assert owner.id.split(":")[2] == _process_start(os.getpid())
    assert owner_alive({"owner_id": owner.id, "owner_host": owner.host, "owner_pid": owner.pid})


async def _marked_tree(mark: str) -> tuple[asyncio.subprocess.Process, int]:
    """A shell (own group) that starts a grandchild in a session of its own, both carrying ``mark``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(300)\n",
        env={**os.environ, MARK_VAR: mark}, stdout=asyncio.subprocess.PIPE, start_new_session=True,
    )
    assert proc.stdout is not None
    grandchild = int((await proc.stdout.readline()).decode())
    return proc, grandchild


@pytest.mark.timeout(60)
def test_kill_marked_kills_the_tree_even_outside_its_group() -> None:
    async def scenario() -> None:
        mark = new_mark()
        proc, grandchild = await _marked_tree(mark)
        assert set(await asyncio.to_thread(marked_pids, mark)) == {proc.pid, grandchild}
        assert grandchild in descendants(proc.pid)
        # the loop keeps turning while the sweep runs: a ticker task advances during it
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticking = asyncio.ensure_future(ticker())
        killed = await kill_marked(mark)
        ticking.cancel()
        assert killed >= 2 and ticks > 1
        await proc.wait()
        for _ in range(200):
            if not alive({grandchild}):
                break
            await asyncio.sleep(0.05)
        assert not alive({grandchild, proc.pid})
        assert await asyncio.to_thread(marked_pids, mark) == []

    asyncio.run(scenario())


def test_descendants_of_a_missing_process_is_empty() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert descendants(child.pid) == []
