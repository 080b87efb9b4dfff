"""Snapshots of a working tree as git commits: the files side of time travel (DESIGN §10.3).

A snapshot records a folder's working tree — tracked and untracked files, not ignored ones — as a
commit on ``refs/smithers/<run_id>/<tree>`` (one ref per run and working tree; each snapshot's
parent is the run's previous one), written through the run's own index file, so HEAD, the user's
index, the branches, the stash and the files are never touched. A folder that is not inside a
git repository gets a private one under ``.smithers/snapshots/`` (``GIT_DIR`` + ``GIT_WORK_TREE``).
``.smithers/`` and ``smithers.db*`` are never recorded, nor is any database path passed as
``exclude``. Plain ``git`` subprocesses; every function blocks (use ``asyncio.to_thread``).

The stable API (the engine, ``smithers revert/diff/gc`` and the timeline commands use these)::

    snapshot(workdir, run_id, label, *, exclude=None) -> str        # the commit id
    restore(workdir, commit) -> list[str]                           # the changed paths
    changed_files(workdir, a, b) -> list[FileChange]                # a/b: commits or None (empty tree)
    patch(workdir, a, b) -> str                                     # unified diff
    unsaved_changes(workdir, run_id) -> bool                        # tree held by no snapshot of the run?
    unsaved_files(workdir, run_id) -> list[str]                     # ... and which files differ
    prune(workdir, run_id) -> list[str]                             # delete the run's refs (smithers gc)
    find_repo(workdir).top                                          # the folder snapshots record

>>> from smithers.snapshots import snapshot, restore, changed_files       # doctest: +SKIP
>>> before = snapshot(".", "run-1", "before")                             # doctest: +SKIP
>>> after = snapshot(".", "run-1", "after")                               # doctest: +SKIP
>>> [c.path for c in changed_files(".", before, after)]                   # doctest: +SKIP
['app.py']
>>> restore(".", before)                                                  # doctest: +SKIP
['app.py']
"""

from __future__ import annotations

from ._git import Repo, SnapshotError, find_repo, run_ref, snapshot_folder
from .core import (
    FileChange,
    changed_files,
    patch,
    prune,
    record_exclusions,
    restore,
    snapshot,
    snapshot_trees,
    tree_of,
    unsaved_changes,
    unsaved_files,
)

__all__ = [
    "FileChange",
    "Repo",
    "SnapshotError",
    "changed_files",
    "find_repo",
    "patch",
    "prune",
    "record_exclusions",
    "restore",
    "run_ref",
    "snapshot",
    "snapshot_folder",
    "snapshot_trees",
    "tree_of",
    "unsaved_changes",
    "unsaved_files",
]
