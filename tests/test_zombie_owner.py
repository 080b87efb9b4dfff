"""A run whose owner is a zombie (it exited and nobody reaped it) has no owner: `resume` and `supervise`
take it over at once, without waiting for the lease to go stale.

The zombie is real: `smithers up` is a child of the test, SIGKILLed and deliberately not reaped, so the
owner id in the run row is the one the runtime wrote itself."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import Project
from waiting import wait_until

from smithers.states import RunStatus

HELD = """
import asyncio
from pathlib import Path
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

HERE = Path(__file__).parent

class Out(BaseModel):
    name: str

def work(name, held=False):
    async def fn():
        with (HERE / "starts.log").open("a") as log:
            log.write(name + "\\n")
        while held and not (HERE / "release").exists():  # until the test creates `release`
            await asyncio.sleep(0.02)
        return {"name": name}
    return fn

@workflow
def held(ctx):
    return Sequence(Task("a", output=Out, run=work("a")), Task("b", output=Out, run=work("b", held=True)))
"""


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` in /proc (``Z`` for a zombie), or None once it is reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def zombie_owned_run(project: Project, run_id: str) -> subprocess.Popen[str]:
    """A `running` run whose owner (our child `smithers up`) is a zombie; the Popen must not be waited on."""
    project.write("wf.py", HELD)
    owner = project.popen("up", "wf.py", "--run-id", run_id)

    def b_running() -> bool:
        if not project.db.exists():
            return False
        rows = project.query("SELECT status FROM _smithers_nodes WHERE run_id = ? AND node_id = 'b'", (run_id,))
        return rows == [("running",)]

    wait_until(b_running, 30, "task b running under its owner")
    owned = project.cli("resume", run_id)
    assert owned.returncode == 4, owned.stdout + owned.stderr  # control: the live owner is respected
    assert project.query("SELECT owner_pid FROM _smithers_runs WHERE run_id = ?", (run_id,)) == [(owner.pid,)]
    os.kill(owner.pid, signal.SIGKILL)  # no wait(), no poll(): the child stays a zombie
    wait_until(lambda: process_state(owner.pid) == "Z", 30, f"the owner pid {owner.pid} to be a zombie")
    (project.root / "release").touch()
    return owner


def reap(owner: subprocess.Popen[str]) -> None:
    owner.communicate(timeout=30)


@pytest.mark.parametrize("taker", ["resume", pytest.param("supervise", marks=pytest.mark.slow)])
def test_a_zombie_owner_is_dead_and_its_run_is_taken_over_at_once(project: Project, taker: str) -> None:
    run_id = f"zombie-{taker}"
    owner = zombie_owned_run(project, run_id)
    try:
        if taker == "resume":
            took = project.cli("resume", run_id)
            assert took.returncode == 0, took.stdout + took.stderr
        else:
            took = project.cli("supervise", "--once", "--interval", "0.2s")
            assert took.returncode == 0, took.stdout + took.stderr
            assert f"resumed {run_id}: owner process gone" in took.stdout, took.stdout
        assert process_state(owner.pid) == "Z", "the owner was still an unreaped zombie while it was taken over"
    finally:
        reap(owner)
    assert project.query("SELECT status, owner_id FROM _smithers_runs WHERE run_id = ?", (run_id,)) == [(RunStatus.FINISHED, None)]
    assert project.query("SELECT node_id, status FROM _smithers_attempts WHERE run_id = ? ORDER BY node_id, attempt", (run_id,)) == [
        ("a", "finished"), ("b", "abandoned"), ("b", "finished"),
    ]
    assert (project.root / "starts.log").read_text().split() == ["a", "b", "b"]
