"""Find and kill every process one agent run started, including the ones that left its group.

Killing a CLI's process group is not enough: codex runs each shell command in a session of its
own (a PTY) and gemini spawns its shell detached, so when the CLI dies those commands are
orphaned to init and keep running. Each run therefore puts a unique marker in the CLI's
environment (:data:`MARK_VAR`); every descendant inherits it, and after the run
:func:`kill_marked` SIGKILLs whatever still carries it, found by scanning ``/proc/*/environ``
(Linux; elsewhere it finds nothing). Only processes of this user that kept the variable are
found, which is every ordinary descendant. The variable's name avoids ``KEY``/``TOKEN``/
``SECRET`` so that codex's default shell environment policy does not strip it.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

MARK_VAR = "SMITHERS_AGENT_RUN"


def new_mark() -> str:
    return uuid.uuid4().hex


def marked_pids(mark: str) -> list[int]:
    """Live processes (other than this one) whose environment carries ``MARK_VAR=mark``."""
    needle = f"\0{MARK_VAR}={mark}\0".encode()
    own = os.getpid()
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == own:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                data = handle.read()
        except OSError:  # gone, or not ours
            continue
        if needle in b"\0" + data + b"\0":
            found.append(int(entry))
    return found


def kill_marked(mark: str, *, rounds: int = 5) -> int:
    """SIGKILL every process carrying ``mark``, repeating while new ones appear; returns how many."""
    killed = 0
    for _ in range(rounds):
        pids = marked_pids(mark)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    return killed
