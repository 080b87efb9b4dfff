"""The engine's side of snapshots: the working tree when a run starts (or resumes) and after
every compute, agent or subflow attempt (DESIGN §10.3; the git side is :mod:`smithers.snapshots`).

- **When.** At the start of each drive of the run (recorded once as the run's
  ``snapshot_start``), and when attempts end: the loop awaits one snapshot per folder for all the
  attempts that ended together, before it records them and before it starts anything new, so a
  task that starts after another finished sees (and its ``snapshot_before`` is) exactly the tree
  that task left. Static tasks and waits write no files and take no snapshot.
- **Where.** The run's folder (the workflow's folder, or the project holding ``.smithers/``), or a
  ``Worktree`` task's worktree; its ``before`` is then taken inside the attempt, once the worktree
  exists.
- **Off the event loop.** git runs in a worker thread (``asyncio.to_thread``).
- **Off.** ``smithers up --no-snapshots`` (kept on the run for every resume) or
  ``SMITHERS_SNAPSHOTS=off`` in the environment of the process that drives the run.
- **Failures** never fail the run: a ``SnapshotFailed`` event names the folder and git's error and
  the attempt's snapshot stays null; without git at all, the run takes no more snapshots.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..snapshots import SnapshotError, find_repo, snapshot, snapshot_folder
from ..states import EventType
from ..storage.store import Store
from .persist import Persister
from .tree import TaskDescriptor

SNAPSHOTS_ENV = "SMITHERS_SNAPSHOTS"
OFF_VALUES = frozenset({"0", "off", "false", "no"})
T = TypeVar("T")


def snapshots_off_by_env() -> bool:
    """Whether ``SMITHERS_SNAPSHOTS`` turns snapshots off for runs this process drives."""
    return os.environ.get(SNAPSHOTS_ENV, "").strip().lower() in OFF_VALUES


class RunSnapshots:
    """Snapshots of one run, as the loop takes them. Create with :func:`open_snapshots`."""

    def __init__(self, store: Store, run_id: str, persist: Persister, folder: Path) -> None:
        self.store = store
        self.run_id = run_id
        self.persist = persist
        self.folder = folder
        self.tips: dict[Path, str] = {}  # folder -> the newest snapshot this process took of it
        self.worktree_before: dict[tuple[str, int, int], str] = {}
        self.disabled = False

    async def take(self, folder: Path, label: str) -> str | None:
        """One snapshot of ``folder``, in a worker thread; None (and a ``SnapshotFailed`` event) if git fails."""
        if self.disabled:
            return None
        try:
            commit = await asyncio.to_thread(snapshot, folder, self.run_id, label, exclude=[self.store.path])
        except (SnapshotError, OSError) as err:
            message = err.message if isinstance(err, SnapshotError) else f"{type(err).__name__}: {err}"
            self.disabled = "not installed" in message
            with self.persist.tx() as tx:
                tx.event(EventType.SNAPSHOT_FAILED, folder=str(folder), label=label, error=message, snapshots_stopped=self.disabled)
            return None
        self.tips[folder] = commit
        return commit

    async def at_start(self, resumed: bool) -> None:
        commit = await self.take(self.folder, "resume" if resumed else "run start")
        if commit is not None:
            top = (await asyncio.to_thread(find_repo, self.folder)).top
            with self.persist.tx() as tx:
                tx.set_run_snapshot(start=commit, folder=str(top))

    # -- attempts ------------------------------------------------------------------------------

    def record_before(self, desc: TaskDescriptor, attempt: int) -> None:
        """Record the attempt's ``snapshot_before`` (joins the caller's batch). A worktree task's is
        taken inside the attempt (:meth:`in_worktree`) and recorded with its ``after``."""
        if desc.worktree or self.disabled:
            return
        before = self.tips.get(self.folder)
        with self.persist.tx() as tx:
            tx.set_attempt_snapshot(desc.node_id, desc.iteration, attempt, before=before)

    def in_worktree(self, desc: TaskDescriptor, attempt: int, folder: Path, work: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """``work`` preceded by the worktree's ``before`` snapshot (run inside ``in_worktree``, so
        the worktree exists by then)."""

        async def first_snapshot() -> T:
            try:
                commit = self.tips.get(folder) or await self.take(folder, f"before {_name(desc, attempt)}")
            except BaseException:
                work.close()
                raise
            if commit is not None:
                self.worktree_before[(desc.node_id, desc.iteration, attempt)] = commit
            return await work

        return first_snapshot()

    async def after(self, ended: list[tuple[TaskDescriptor, int, str]]) -> list[tuple[TaskDescriptor, int, str, str]]:
        """Snapshot each folder once for the attempts that just ended (``(desc, attempt, cwd)``);
        returns ``(desc, attempt, folder, commit)`` for :meth:`record_after`."""
        if self.disabled or not ended:
            return []
        by_folder: dict[Path, list[tuple[TaskDescriptor, int]]] = {}
        for desc, attempt, cwd in ended:
            folder = Path(cwd) if desc.worktree else self.folder
            by_folder.setdefault(folder, []).append((desc, attempt))
        taken = []
        for folder, attempts in by_folder.items():
            names = ", ".join(_name(d, a) for d, a in attempts[:5]) + (", …" if len(attempts) > 5 else "")
            commit = await self.take(folder, f"after {names}")
            if commit is not None:
                taken.extend((desc, attempt, str(folder), commit) for desc, attempt in attempts)
        return taken

    def record_after(self, taken: list[tuple[TaskDescriptor, int, str, str]]) -> None:
        """Write the ``snapshot_after`` of each attempt (joins the caller's batch)."""
        if not taken:
            return
        with self.persist.tx() as tx:
            for desc, attempt, folder, commit in taken:
                key = (desc.node_id, desc.iteration, attempt)
                worktree = bool(desc.worktree)
                tx.set_attempt_snapshot(
                    desc.node_id, desc.iteration, attempt, after=commit, before=self.worktree_before.pop(key, None) if worktree else None,
                    folder=folder if worktree else None,
                )


def _name(desc: TaskDescriptor, attempt: int) -> str:
    return f"{desc.node_id}[{desc.iteration}]#{attempt}"


async def open_snapshots(store: Store, run_id: str, persist: Persister, cwd: str) -> RunSnapshots | None:
    """The run's snapshots, after its start snapshot; None when snapshots are off for it."""
    if snapshots_off_by_env():
        return None
    run = store.get_run(run_id) or {}
    if run.get("snapshots_off"):
        return None
    snapshots = RunSnapshots(store, run_id, persist, snapshot_folder(cwd))
    await snapshots.at_start(resumed=bool(run.get("snapshot_start")))
    return snapshots


__all__ = ["SNAPSHOTS_ENV", "RunSnapshots", "open_snapshots", "snapshots_off_by_env"]
