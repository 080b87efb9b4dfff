"""Git worktrees for ``Worktree`` subtrees, created on demand before their first task runs.

Creating one runs git (each call up to 60 s), so the attempt that needs it does so in a worker
thread at its start (:func:`in_worktree`): the event loop stays free and no store transaction
is held meanwhile. Attempts that need the same worktree at once take turns (a lock per path),
so the second finds the first's worktree instead of racing it to ``git worktree add``.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ..errors import RunError

T = TypeVar("T")

GIT_TIMEOUT = 60  # seconds per git command
ALIVE_EVERY = 1.0  # seconds between the attempt's liveness signals while git works
_path_locks: dict[Path, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)


def default_branch(path: str) -> str:
    return "smithers/" + (re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).name).strip("-") or "worktree")


def worktree_path(workflow_dir: Path, path: str) -> Path:
    """Where the worktree ``path`` of a workflow in ``workflow_dir`` lives (no git involved)."""
    return (workflow_dir / path).resolve()


def _lock_for(target: Path) -> threading.Lock:
    with _path_locks_guard:
        return _path_locks.setdefault(target, threading.Lock())


def ensure_worktree(workflow_dir: Path, path: str, branch: str | None, base: str) -> Path:
    """The worktree's absolute path, adding it (``git worktree add``) when it does not exist yet.
    Blocking (runs git): from async code use :func:`in_worktree`."""
    target = worktree_path(workflow_dir, path)
    with _lock_for(target):
        if (target / ".git").exists():
            return target
        return _add_worktree(workflow_dir, path, target, branch, base)


def _add_worktree(workflow_dir: Path, path: str, target: Path, branch: str | None, base: str) -> Path:
    try:
        top = _git(["rev-parse", "--show-toplevel"], workflow_dir)
    except subprocess.TimeoutExpired:
        raise RunError(f"Worktree {path!r}: git rev-parse took over {GIT_TIMEOUT}s in {workflow_dir}") from None
    if top.returncode != 0:
        raise RunError(
            f"Worktree {path!r}: {workflow_dir} is not inside a git repository", retryable=False,
            hint="run the workflow from a git checkout (git init && git commit) or drop the Worktree",
        )
    repo = Path(top.stdout.strip())
    branch = branch or default_branch(path)
    try:
        exists = _git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], repo).returncode == 0
        args = ["worktree", "add", str(target), branch] if exists else ["worktree", "add", "-b", branch, str(target), base]
        done = _git(args, repo)
    except subprocess.TimeoutExpired as err:
        raise RunError(f"Worktree {path!r}: git {' '.join(err.cmd[1:])} took over {GIT_TIMEOUT}s in {repo}") from None
    if done.returncode != 0:
        raise RunError(
            f"Worktree {path!r}: git {' '.join(args)} failed: {done.stderr.strip()}", retryable=False,
            hint=f"check that the base {base!r} exists (git branch -a)",
        )
    return target


async def in_worktree(
    workflow_dir: Path, spec: tuple[str, str | None, str], attempt: Coroutine[Any, Any, T], *,
    alive: Callable[[], None] | None = None,
) -> T:
    """Run ``attempt`` once the worktree ``spec`` (path, branch, base) exists, creating it in a
    worker thread first. A failure to create it is the attempt's failure (``attempt`` never runs).
    ``alive`` is called every :data:`ALIVE_EVERY` seconds while git works and once it is done,
    so that a task's ``heartbeat_timeout`` does not count git's time against the task's code."""
    creating = asyncio.ensure_future(asyncio.to_thread(ensure_worktree, workflow_dir, *spec))
    try:
        while not creating.done():
            await asyncio.wait({creating}, timeout=ALIVE_EVERY)
            if alive is not None:
                alive()
        creating.result()
    except BaseException:
        creating.cancel()  # a cancel while git runs: the thread finishes on its own, its result unused
        attempt.close()  # never started: close it so it is not reported as never awaited
        raise
    return await attempt
