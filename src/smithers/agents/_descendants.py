"""Find and kill every process one agent run started, including the ones that left its group.

Killing a CLI's process group is not enough: codex runs each shell command in a session of its
own (a PTY) and gemini spawns its shell detached, so when the CLI dies those commands are
orphaned to init and keep running. Each run therefore puts a unique marker in the CLI's
environment (:data:`MARK_VAR`); every descendant inherits it, and after the run
:func:`kill_marked` SIGKILLs whatever still carries it. Processes are listed with psutil
(Linux and macOS); only processes of this user that kept the variable are found, which is
every ordinary descendant. The variable's name avoids ``KEY``/``TOKEN``/``SECRET`` so that
codex's default shell environment policy does not strip it.

Listing processes reads every process's environment: blocking work, so the async entry points
run it in a worker thread and never sleep on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import psutil

MARK_VAR = "SMITHERS_AGENT_RUN"
KILL_ROUNDS = 5  # scans for marked processes; a dying CLI may still fork for a moment
ROUND_PAUSE = 0.01  # seconds between scans


def new_mark() -> str:
    return uuid.uuid4().hex


def marked_pids(mark: str) -> list[int]:
    """Live processes (other than this one) whose environment carries ``MARK_VAR=mark``. Blocking."""
    own = os.getpid()
    found: list[int] = []
    for proc in psutil.process_iter():
        if proc.pid == own:
            continue
        try:
            if proc.environ().get(MARK_VAR) == mark and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # gone, a zombie, or not ours
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, including ones that left its process group. Blocking."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [child.pid for child in children]


def kill_pids(pids: list[int]) -> int:
    """SIGKILL each of ``pids`` that still exists; returns how many signals were delivered."""
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed


async def kill_marked(mark: str, *, rounds: int = KILL_ROUNDS) -> int:
    """SIGKILL every process carrying ``mark``, repeating while new ones appear; returns how
    many. The scans run in a worker thread; the pauses between them are ``asyncio.sleep``."""
    killed = 0
    for _ in range(rounds):
        pids = await asyncio.to_thread(marked_pids, mark)
        if not pids:
            break
        killed += kill_pids(pids)
        await asyncio.sleep(ROUND_PAUSE)
    return killed
