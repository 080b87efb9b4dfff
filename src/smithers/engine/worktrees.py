"""Git worktrees for ``Worktree`` subtrees, created on demand before their first task runs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..errors import RunError


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def default_branch(path: str) -> str:
    return "smithers/" + (re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).name).strip("-") or "worktree")


def ensure_worktree(workflow_dir: Path, path: str, branch: str | None, base: str) -> Path:
    """The worktree's absolute path, adding it (``git worktree add``) when it does not exist yet."""
    target = (workflow_dir / path).resolve()
    if (target / ".git").exists():
        return target
    top = _git(["rev-parse", "--show-toplevel"], workflow_dir)
    if top.returncode != 0:
        raise RunError(
            f"Worktree {path!r}: {workflow_dir} is not inside a git repository", retryable=False,
            hint="run the workflow from a git checkout (git init && git commit) or drop the Worktree",
        )
    repo = Path(top.stdout.strip())
    branch = branch or default_branch(path)
    exists = _git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], repo).returncode == 0
    args = ["worktree", "add", str(target), branch] if exists else ["worktree", "add", "-b", branch, str(target), base]
    done = _git(args, repo)
    if done.returncode != 0:
        raise RunError(
            f"Worktree {path!r}: git {' '.join(args)} failed: {done.stderr.strip()}", retryable=False,
            hint=f"check that the base {base!r} exists (git branch -a)",
        )
    return target
