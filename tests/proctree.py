"""Process-tree helpers shared by the agent CLI tests: find what a CLI started (its group and every
descendant, including ones that left the group) and check it is all gone after a cancel."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest
from waiting import wait_until

from smithers.agents.base import AgentRequest


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid → (parent pid, process group, state) for every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found[int(entry)] = (int(fields[1]), int(fields[2]), fields[0])
    return found


def process_tree(root: int) -> set[int]:
    """``root``, its process group and every descendant (some CLIs start tools in their own session or detached)."""
    procs = _processes()
    tree = {root} | {pid for pid, (_, group, _) in procs.items() if group == root}
    while grown := {pid for pid, (parent, _, _) in procs.items() if parent in tree} - tree:
        tree |= grown
    return tree


def alive(pids: set[int]) -> set[int]:
    procs = _processes()
    return {pid for pid in pids if pid in procs and procs[pid][2] != "Z"}


def cli_child() -> int | None:
    """The agent CLI: our one child process that leads its own process group (None until there is one)."""
    me = os.getpid()
    leaders = [pid for pid, (parent, group, _) in _processes().items() if parent == me and group == pid]
    return leaders[0] if len(leaders) == 1 else None


async def cancel_when(agent: Any, req: AgentRequest, ready) -> set[int]:
    """Run the agent, wait until ``ready(tree)``, cancel it, check the cancel propagated, and wait for every
    process of the tree seen before the cancel to be gone (failing, naming the survivors, if any is left).

    Callers must keep the tree busy past that wait (a fake model that does not answer, a tool that sleeps
    for a minute), so that a tree that ends by itself cannot pass for one the cancel killed. There is no
    bound on how fast it goes: durations belong in bench/."""
    task = asyncio.ensure_future(agent.run(req))
    deadline = time.monotonic() + 30
    tree: set[int] = set()
    while not task.done():
        assert time.monotonic() < deadline, "the agent never got to the point to cancel it at"
        await asyncio.sleep(0.1)
        leader = cli_child()
        if leader is None:
            continue
        tree = process_tree(leader)
        if ready(tree):
            break
    assert not task.done(), task.exception() or task.result()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    wait_gone(tree)
    return tree


def wait_gone(tree: set[int], timeout: float = 20.0) -> None:
    """Wait for every process in ``tree`` to be gone (a zombie counts as gone); fail naming the survivors."""
    try:
        wait_until(lambda: not alive(tree), timeout, f"the processes {sorted(tree)} to be gone")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; still alive: {[_cmdline(pid) for pid in alive(tree)]}") from None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""

