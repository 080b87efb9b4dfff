"""The engine's side of snapshots: the working tree when a run starts (or resumes) and after
every compute, agent or subflow attempt (DESIGN §10.3; the git side is :mod:`smithers.snapshots`).

- **When.** When the run starts (or resumes) — lazily, once its first task that can change files
  is ready, awaited before anything starts (recorded once as the run's ``snapshot_start``; a run of
  static tasks and waits runs no git at all) — and when attempts end: the loop awaits one
  snapshot per folder for all the attempts that ended together, before it records them and
  before it starts anything new, so a task that starts after another finished sees (and its
  ``snapshot_before`` is) exactly the tree that task left. Static tasks and waits write no files
  and take no snapshot.
- **Where.** The run's folder (the workflow's folder, or the project holding ``.smithers/``), or a
  ``Worktree`` task's worktree (its first snapshot is taken once the worktree exists).
- **Off the event loop.** git runs in a worker thread (``asyncio.to_thread``).
- **Off.** ``smithers up --no-snapshots`` (kept on the run for every resume) or
  ``SMITHERS_SNAPSHOTS=off`` in the environment of the process that drives the run.
- **Failures** never fail the run: a ``SnapshotFailed`` event names the folder and git's error and
  the attempt's snapshot stays null; without git at all, the run takes no more snapshots.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..snapshots import SnapshotError, find_repo, snapshot, snapshot_folder
from ..states import EventType
from ..storage.store import Store
from ..storage.target import database_files
from .persist import Persister
from .tree import TaskDescriptor

SNAPSHOTS_ENV = "SMITHERS_SNAPSHOTS"
ALIVE_EVERY = 1.0  # seconds between an attempt's liveness signals while its first snapshot runs
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
        self.first: dict[Path, asyncio.Task[str | None]] = {}  # folder -> its first snapshot in this process, once asked for
        self.before: dict[tuple[str, int, int], str] = {}  # attempts whose before is recorded with their after
        self.disabled = False

    async def take(self, folder: Path, label: str) -> str | None:
        """One snapshot of ``folder``, in a worker thread; None (and a ``SnapshotFailed`` event) if git fails."""
        if self.disabled:
            return None
        try:
            commit = await asyncio.to_thread(snapshot, folder, self.run_id, label, exclude=database_files(self.store))
        except (SnapshotError, OSError) as err:
            message = err.message if isinstance(err, SnapshotError) else f"{type(err).__name__}: {err}"
            self.disabled = "not installed" in message
            with self.persist.tx() as tx:
                tx.event(EventType.SNAPSHOT_FAILED, folder=str(folder), label=label, error=message, snapshots_stopped=self.disabled)
            return None
        self.tips[folder] = commit
        return commit

    async def _first_snapshot(self, folder: Path) -> str | None:
        """The folder's first snapshot in this process (the run's start, or its resume): taken once,
        however many attempts ask for it together; the run's own folder is recorded on the run."""
        resumed = bool((self.store.get_run(self.run_id) or {}).get("snapshot_start"))
        commit = await self.take(folder, "resume" if resumed else "run start")
        if commit is not None and folder == self.folder:
            top = (await asyncio.to_thread(find_repo, folder)).top
            with self.persist.tx() as tx:
                tx.set_run_snapshot(start=commit, folder=str(top))
        return commit

    def first_needed(self, starting: list[TaskDescriptor]) -> asyncio.Task[str | None] | None:
        """The run folder's first snapshot in this process, started when a task that can change
        its files is about to start (the loop awaits it first); None when not needed (any more)."""
        if self.disabled or self.folder in self.tips:
            return None
        started = self.first.get(self.folder)
        if started is None and any(_changes_files(desc) and not desc.worktree for desc in starting):
            started = self.first[self.folder] = asyncio.ensure_future(self._first_snapshot(self.folder))
        return started if started is not None and not started.done() else None

    # -- attempts ------------------------------------------------------------------------------

    def around(
        self, desc: TaskDescriptor, attempt: int, cwd: Path, work: Coroutine[Any, Any, T], *, alive: Callable[[], None] | None = None,
    ) -> Coroutine[Any, Any, T]:
        """``work`` with its ``snapshot_before``: the folder's newest snapshot, recorded now (joins
        the caller's batch; the run folder's first one was taken by :meth:`first_needed`); or, for
        a worktree's first attempt, a snapshot taken inside the attempt before ``work`` runs —
        inside ``in_worktree``, so the worktree exists by then — and recorded with its ``after``.
        ``alive`` is called every second while that snapshot runs (git's time is not the task's,
        for its ``heartbeat_timeout``)."""
        folder = cwd if desc.worktree else self.folder
        tip = self.tips.get(folder)
        if self.disabled or tip is not None or not desc.worktree:
            if tip is not None and not self.disabled:
                with self.persist.tx() as tx:
                    tx.set_attempt_snapshot(desc.node_id, desc.iteration, attempt, before=tip)
            return work

        async def snapshot_first() -> T:
            try:
                commit = self.tips.get(folder)
                if commit is None:
                    if folder not in self.first:
                        self.first[folder] = asyncio.ensure_future(self._first_snapshot(folder))
                    first = self.first[folder]
                    while not first.done():  # asyncio.wait never cancels it: a cancelled attempt leaves the shared snapshot alone
                        await asyncio.wait({first}, timeout=ALIVE_EVERY)
                        if alive is not None:
                            alive()
                    commit = first.result()
            except BaseException:
                work.close()
                raise
            if commit is not None:
                self.before[(desc.node_id, desc.iteration, attempt)] = commit
            return await work

        return snapshot_first()

    async def after(self, ended: list[tuple[TaskDescriptor, int, str]]) -> list[tuple[TaskDescriptor, int, str, str]]:
        """Snapshot each folder once for the attempts that just ended (``(desc, attempt, cwd)``);
        returns ``(desc, attempt, folder, commit)`` for :meth:`record_after`."""
        if self.disabled or not ended:
            return []
        by_folder: dict[Path, list[tuple[TaskDescriptor, int]]] = {}
        for desc, attempt, cwd in ended:
            folder = Path(cwd) if desc.worktree else self.folder
            by_folder.setdefault(folder, []).append((desc, attempt))
        taken: list[tuple[TaskDescriptor, int, str, str]] = []
        for folder, attempts in by_folder.items():
            names = ", ".join(_name(d, a) for d, a in attempts[:5]) + (", …" if len(attempts) > 5 else "")
            commit = await self.take(folder, f"after {names}")
            if commit is not None:
                taken.extend((desc, attempt, str(folder), commit) for desc, attempt in attempts)
        return taken

    def record_after(self, taken: list[tuple[TaskDescriptor, int, str, str]]) -> None:
        """Write each attempt's ``snapshot_after`` (and a ``before`` taken inside it; a worktree's
        folder) — joins the caller's batch."""
        if not taken:
            return
        with self.persist.tx() as tx:
            for desc, attempt, folder, commit in taken:
                before = self.before.pop((desc.node_id, desc.iteration, attempt), None)
                tx.set_attempt_snapshot(
                    desc.node_id, desc.iteration, attempt, after=commit, before=before, folder=folder if desc.worktree else None,
                )


def _changes_files(desc: TaskDescriptor) -> bool:
    """Whether the task's attempt can write files (compute, agent and subflow tasks can)."""
    return desc.mode in ("compute", "agent", "subflow") and desc.task.wait is None and not desc.task.skip_if


def _name(desc: TaskDescriptor, attempt: int) -> str:
    return f"{desc.node_id}[{desc.iteration}]#{attempt}"


def open_snapshots(store: Store, run_id: str, persist: Persister, cwd: str) -> RunSnapshots | None:
    """The run's snapshots (none taken yet); None when snapshots are off for it."""
    if snapshots_off_by_env():
        return None
    run = store.get_run(run_id) or {}
    if run.get("snapshots_off"):
        return None
    return RunSnapshots(store, run_id, persist, snapshot_folder(cwd))


__all__ = ["SNAPSHOTS_ENV", "RunSnapshots", "open_snapshots", "snapshots_off_by_env"]
