"""Run ownership: one live owner per run, proven by a heartbeat lease.

An owner on this host is alive while its process exists (pid *and* start time match, so a
recycled pid is not mistaken for it). An owner on another host is alive until its lease is
older than the stale threshold.

A *handoff* lease (owner id ``supervisor:<host>:<pid>:<token>``) is taken by ``smithers
supervise`` for a child it is about to start: it is alive only while its heartbeat is fresh
(younger than the stale threshold), whatever the supervisor's pid, and the child named by the
token takes it over (``claim_run(..., takeover_from=token)``). A child that dies before taking
over leaves a lease that goes stale like any other.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunOwnedError, UnknownRunError
from .store import Store, now_ms

DEFAULT_STALE_MS = 30_000
HANDOFF_PREFIX = "supervisor:"


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces; fields after the closing paren are fixed
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie has exited; it only waits to be reaped
        return None
    return fields[19]


@dataclass(frozen=True)
class Owner:
    id: str
    host: str
    pid: int

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        start = _process_start(pid) or "0"
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
        pid = int(run["owner_pid"])
        recorded_start = owner_id.split(":")[2] if owner_id.count(":") >= 3 else None
        if Path(f"/proc/{pid}").exists():
            start = _process_start(pid)
            return start is not None and (recorded_start in (None, "0") or start == recorded_start)
        try:  # no /proc (not Linux): fall back to "does the pid exist"
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
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
