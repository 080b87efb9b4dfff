"""Run ownership: one live owner per run, proven by a heartbeat lease.

An owner on this host is alive while its process exists, is not a zombie and started when the
owner id says (psutil reads both on Linux and macOS), so a recycled pid is not mistaken for it.
Start times are wall-clock based: were the clock stepped by more than a second while a run is
owned, the owner would look dead and could be taken over; fencing then stops the old owner's
writes. An owner on another host is alive until its lease is older than the stale threshold.

A *handoff* lease (owner id ``supervisor:<host>:<pid>:<token>``) is taken by ``smithers
supervise`` for a child it is about to start: it is alive only while its heartbeat is fresh
(younger than the stale threshold), whatever the supervisor's pid, and the child named by the
token takes it over (``claim_run(..., takeover_from=token)``). A child that dies before taking
over leaves a lease that goes stale like any other.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import RunOwnedError, UnknownRunError
from .store import Store, now_ms

DEFAULT_STALE_MS = 30_000
UNKNOWN_START = "0"  # the start time of a process we may not inspect
START_TOLERANCE_S = 1.0
HANDOFF_PREFIX = "supervisor:"


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (seconds since the epoch, as recorded in owner ids), or None
    when no such process is running: a zombie has exited and only waits to be reaped."""
    import psutil  # only when liveness is checked: importing it costs about as much as a one-task run

    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
        return f"{proc.create_time():.2f}"
    except psutil.NoSuchProcess:  # ZombieProcess is a NoSuchProcess too
        return None
    except psutil.AccessDenied:  # another user's process: it exists, its start time is hidden
        return UNKNOWN_START


def _own_start() -> str | None:
    """This process's start time, as :func:`_process_start` gives it. On Linux it is read from
    ``/proc`` the way psutil computes it (start ticks / clock ticks + boot time), so that starting
    a run does not import psutil; elsewhere, and if ``/proc`` cannot be read, psutil answers."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/stat", "rb") as stat:
                data = stat.read()
            ticks = float(data[data.rfind(b")") + 2 :].split()[19])  # field 22, starttime
            with open("/proc/stat", "rb") as proc_stat:
                boot = next(float(line.split()[1]) for line in proc_stat if line.startswith(b"btime"))
            return f"{ticks / os.sysconf('SC_CLK_TCK') + boot:.2f}"
        except (OSError, ValueError, IndexError, StopIteration):
            pass
    return _process_start(os.getpid())


def _same_start(recorded: str | None, current: str) -> bool:
    """Whether a recorded start time is this process's (within START_TOLERANCE_S: on Linux the
    boot time it is derived from is whole seconds and moves with clock slewing)."""
    if recorded in (None, UNKNOWN_START) or current == UNKNOWN_START:
        return True
    try:
        return abs(float(recorded) - float(current)) <= START_TOLERANCE_S
    except ValueError:  # not a number: not a start time this code recorded
        return False


@dataclass(frozen=True)
class Owner:
    id: str
    host: str
    pid: int

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        start = _own_start() or UNKNOWN_START
        return cls(id=f"{socket.gethostname()}:{pid}:{start}:{uuid.uuid4().hex[:8]}", host=socket.gethostname(), pid=pid)

    @classmethod
    def handoff(cls) -> Owner:
        """A lease held by this process (a supervisor) for a child that will take it over."""
        pid = os.getpid()
        host = socket.gethostname()
        return cls(id=f"{HANDOFF_PREFIX}{host}:{pid}:{uuid.uuid4().hex[:12]}", host=host, pid=pid)


def owner_alive(run: dict[str, Any], *, stale_ms: int = DEFAULT_STALE_MS, now: int | None = None) -> bool:
    """Whether the run's recorded owner is still running it."""
    owner_id = run.get("owner_id")
    if not owner_id:
        return False
    if owner_id.startswith(HANDOFF_PREFIX):  # a handoff lease: alive while fresh, even though the supervisor lives on
        return ((now or now_ms()) - (run.get("heartbeat_at_ms") or 0)) < stale_ms
    if run.get("owner_host") == socket.gethostname():
        recorded_start = owner_id.split(":")[2] if owner_id.count(":") >= 3 else None
        start = _process_start(int(run["owner_pid"]))
        if start is None:
            return False
        # another start time: the pid was recycled by an unrelated process
        return _same_start(recorded_start, start)
    heartbeat = run.get("heartbeat_at_ms") or 0
    return ((now or now_ms()) - heartbeat) < stale_ms


def claim_run(
    store: Store, run_id: str, owner: Owner, *, stale_ms: int = DEFAULT_STALE_MS, takeover_from: str | None = None
) -> dict[str, Any]:
    """Take the run's lease in one transaction; refuse (exit 4) while another owner is alive.

    ``takeover_from`` is the id of a handoff lease this owner may take even while it is alive
    (a supervisor took it for this process); a cancel requested meanwhile is kept."""
    with store.tx(run_id) as tx:
        run = tx.run_row()
        if run is None:
            raise UnknownRunError(f"no run {run_id!r} in {store.path}", hint="list runs with: smithers ps")
        handed = takeover_from is not None and run["owner_id"] == takeover_from
        if run["owner_id"] and run["owner_id"] != owner.id and not handed and owner_alive(run, stale_ms=stale_ms, now=tx.ts):
            who = "a supervisor handing it over" if run["owner_id"].startswith(HANDOFF_PREFIX) else "another process"
            raise RunOwnedError(
                f"run {run_id} is being run by {who} (pid {run['owner_pid']} on {run['owner_host']})",
                hint=f"wait for it, or stop it with: smithers cancel {run_id}",
            )
        tx.set_owner(owner, keep_cancel=handed)
    return run


def renew_lease(store: Store, run_id: str, owner: Owner) -> tuple[bool, bool]:
    """Heartbeat the lease. Returns (still ours, cancel requested)."""
    with store.tx(run_id) as tx:
        return tx.renew_lease(owner.id)


def release_run(store: Store, run_id: str, owner: Owner) -> None:
    """Give the lease up (if ``owner`` still holds it)."""
    with store.tx(run_id) as tx:
        tx.release_owner(owner.id)
