"""The run loop never blocks: a worktree's git runs off the event loop and outside the store's
write transaction, and a chatty agent's events are committed in groups."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

GIT_SHIM = """#!/bin/sh
# git, except that `git worktree add` first sleeps $GIT_DELAY seconds or waits (up to ~30 s) for the sibling task's marker
if [ "$1" = "worktree" ] && [ "$2" = "add" ] && [ -n "$GIT_DELAY" ]; then sleep "$GIT_DELAY"; fi
if [ "$1" = "worktree" ] && [ "$2" = "add" ] && [ -n "$SIBLING_MARKER" ]; then
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


def _repo_with_slow_git(project, tmp_path: Path) -> tuple[Path, str]:
    """A git repository at the project root and a folder whose ``git`` shim is slow to add worktrees."""
    real_git = shutil.which("git")
    assert real_git is not None
    for args in (
        ["init", "-q", "-b", "main"],
        ["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "init"],
    ):
        subprocess.run([real_git, *args], cwd=project.root, check=True, capture_output=True)
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "git"
    shim.write_text(GIT_SHIM.format(real=real_git))
    shim.chmod(0o755)
    return shim_dir, real_git


def test_slow_git_for_a_worktree_does_not_hold_up_a_sibling(project, tmp_path: Path) -> None:
    shim_dir, real_git = _repo_with_slow_git(project, tmp_path)

    def git(*args: str) -> str:
        return subprocess.run([real_git, *args], cwd=project.root, check=True, capture_output=True, text=True).stdout

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



def test_git_time_does_not_count_against_a_heartbeat_timeout(project, tmp_path: Path) -> None:
    shim_dir, _ = _repo_with_slow_git(project, tmp_path)
    project.write("wf.py", """
from pydantic import BaseModel
from smithers import Task, Worktree, workflow

class Out(BaseModel):
    folder: str

@workflow
def wf(ctx):
    return Worktree("wt", Task("edit", output=Out, run=lambda tc: {"folder": tc.cwd}, heartbeat_timeout=1, retries=0))
""")
    env = project.env(PATH=f"{shim_dir}{os.pathsep}{os.environ['PATH']}", GIT_DELAY="3")
    result = project.cli("up", "wf.py", "--quiet", env=env, timeout=90)
    assert result.returncode == 0, result.stderr + str(project.query("select error_json from _smithers_attempts"))
    assert project.query("select folder from out") == [(str(project.root / "wt"),)]


CHATTY_WORKFLOW = """
import asyncio
from pydantic import BaseModel
from smithers import Task, workflow
from smithers.agents.base import AgentResult

class Out(BaseModel):
    n: int

class Chatty:
    name = "chatty"

    async def run(self, request):
        for i in range({count}):
            request.emit("progress", i=i)
            if i % 100 == 0:
                await asyncio.sleep(0.01)  # some events wait for the flush timer, some for the size cap
        return AgentResult(output={{"n": {count}}})

@workflow
def wf(ctx):
    return Task("talk", output=Out, agent=Chatty(), prompt="talk a lot")
"""


def test_a_chatty_agents_events_commit_in_groups_in_order(project) -> None:
    from smithers.ops import start_run
    from smithers.storage.store import Store

    count = 1200
    project.write("wf.py", CHATTY_WORKFLOW.format(count=count))
    commits_with_agent_events: list[int] = []  # per commit that holds agent events: how many

    def count_commit(events: list[dict]) -> None:
        if agent_events := sum(event["type"] == "AgentEvent" for event in events):
            commits_with_agent_events.append(agent_events)

    store = Store.open(project.db)
    store.commit_listeners.append(count_commit)
    try:
        outcome = start_run(str(project.root / "wf.py"), store=store, raw_input=None)
    finally:
        store.close()
    assert outcome.status == "finished"
    rows = project.query("select seq, type, payload_json from _smithers_events where run_id = ? order by seq", (outcome.run_id,))
    progress = [json.loads(p)["data"]["i"] for _, kind, p in rows if kind == "AgentEvent" and json.loads(p)["kind"] == "progress"]
    assert progress == list(range(count)), "every event, in order"
    assert sum(commits_with_agent_events) == count
    assert len(commits_with_agent_events) <= count // 10, f"{len(commits_with_agent_events)} commits for {count} events"
    # all of them committed before the attempt's outcome
    last_event = max(seq for seq, kind, _ in rows if kind == "AgentEvent")
    finished = [seq for seq, kind, _ in rows if kind == "NodeFinished"]
    assert finished and last_event < finished[0]


def test_a_failed_timed_write_fails_the_attempt() -> None:
    import asyncio

    from smithers.engine.agent_events import EventBuffer

    written: list[list[tuple[str, dict]]] = []

    def write(events: list[tuple[str, dict]]) -> None:
        if any(payload.get("bad") for _, payload in events):
            raise RuntimeError("database is gone")
        written.append(events)

    async def scenario() -> None:
        buffer = EventBuffer(write, max_pending=3, delay=0.01)
        for i in range(7):
            buffer.emit("AgentEvent", {"i": i})
        assert [len(group) for group in written] == [3, 3]  # the size cap, at once
        await asyncio.sleep(0.05)
        assert [len(group) for group in written] == [3, 3, 1]  # the timer
        buffer.emit("AgentEvent", {"bad": True})
        await asyncio.sleep(0.05)  # the timed write fails in a loop callback...
        with pytest.raises(RuntimeError, match="database is gone"):
            buffer.close()  # ...and the attempt sees it

    asyncio.run(scenario())
