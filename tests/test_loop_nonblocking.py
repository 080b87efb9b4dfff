"""The run loop never blocks: a worktree's git runs off the event loop and outside the store's
write transaction, and a chatty agent's events are committed in groups."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GIT_SHIM = """#!/bin/sh
# git, except that `git worktree add` first waits (up to ~30 s) for the sibling task's marker
if [ "$1" = "worktree" ] && [ "$2" = "add" ]; then
  i=0
  while [ ! -e "$SIBLING_MARKER" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  if [ ! -e "$SIBLING_MARKER" ]; then echo "the sibling task never ran while git was busy" >&2; exit 1; fi
fi
exec {real} "$@"
"""

SLOW_GIT_WORKFLOW = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Parallel, Task, Worktree, workflow

class Out(BaseModel):
    folder: str

def quick():
    Path({marker!r}).write_text("done")
    return {{"folder": "main"}}

def edit(tc):
    return {{"folder": tc.cwd}}

@workflow
def wf(ctx):
    return Parallel(
        Worktree(".worktrees/slow", Parallel(Task("edit-1", output=Out, run=edit), Task("edit-2", output=Out, run=edit))),
        Task("quick", output=Out, run=quick),
    )
"""


def test_slow_git_for_a_worktree_does_not_hold_up_a_sibling(project, tmp_path: Path) -> None:
    real_git = shutil.which("git")
    assert real_git is not None

    def git(*args: str) -> str:
        return subprocess.run([real_git, *args], cwd=project.root, check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init")
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "git"
    shim.write_text(GIT_SHIM.format(real=real_git))
    shim.chmod(0o755)
    marker = tmp_path / "sibling-ran"
    project.write("wf.py", SLOW_GIT_WORKFLOW.format(marker=str(marker)))
    env = project.env(PATH=f"{shim_dir}{os.pathsep}{os.environ['PATH']}", SIBLING_MARKER=str(marker))
    result = project.cli("up", "wf.py", "--quiet", env=env, timeout=90)
    assert result.returncode == 0, result.stderr + "\n" + str(project.query("select node_id, error_json from _smithers_attempts"))
    rows = dict(project.query("select node_id, folder from out"))
    worktree = str(project.root / ".worktrees" / "slow")
    assert rows == {"edit-1": worktree, "edit-2": worktree, "quick": "main"}
    # the sibling finished while git was still creating the worktree
    order = [r[0] for r in project.query(
        "select node_id from _smithers_events where type = 'NodeFinished' order by seq"
    )]
    assert order.index("quick") < order.index("edit-1") and order.index("quick") < order.index("edit-2")
    assert ".worktrees/slow" in git("worktree", "list")
