"""The warm daemon (`smithers daemon start`): commands run in a forked child of one process that
has everything imported, behaving exactly as when they run in the `smithers` process itself."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import Project

CONSOLE_SCRIPT = "from smithers.cli.entry import entry; entry()"  # what the installed `smithers` runs

HELLO = """
from pydantic import BaseModel
from smithers import Task, workflow

class Greeting(BaseModel):
    message: str

@workflow
def hello(ctx):
    return Task("greet", output=Greeting, value={"message": "hello"})
"""

SLOW = """
import asyncio
import os
from pydantic import BaseModel
from smithers import Task, workflow

class Slept(BaseModel):
    ms: int

async def nap():
    await asyncio.sleep(float(os.environ.get("NAP_S", "60")))  # read at run time: a resume may nap briefly
    return {"ms": 1}

@workflow
def slow(ctx):
    return Task("nap", output=Slept, run=nap)
"""

FAILING = """
from pydantic import BaseModel
from smithers import Task, workflow

class Out(BaseModel):
    n: int

def boom():
    raise RuntimeError("boom")

@workflow
def failing(ctx):
    return Task("boom", output=Out, run=boom, retries=0)
"""


class Daemon:
    def __init__(self, project: Project, socket_path: Path) -> None:
        self.project = project
        self.socket = socket_path

    def env(self, **extra: str) -> dict[str, str]:
        return self.project.env(SMITHERS_DAEMON_SOCKET=str(self.socket), **extra)

    def smithers(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CONSOLE_SCRIPT, *args], cwd=self.project.root, env=env or self.env(),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", CONSOLE_SCRIPT, *args], cwd=self.project.root, env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )

    def status(self) -> dict[str, object]:
        result = self.smithers("daemon", "status", "--json", env=self.env(SMITHERS_NO_DAEMON="1"))
        return json.loads(result.stdout)


@pytest.fixture
def daemon(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    # a short folder: a unix socket's path is limited to about 100 bytes
    folder = Path(tmp_path_factory.mktemp("sd", numbered=True))
    warm = Daemon(project, folder / "d.sock")
    started = warm.smithers("daemon", "start", "--json", env=warm.env(SMITHERS_NO_DAEMON="1"))
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["running"] is True
    yield warm
    warm.smithers("daemon", "stop", env=warm.env(SMITHERS_NO_DAEMON="1"))


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _daemon_pid(warm: Daemon) -> int:
    return int(warm.status()["pid"])


def test_a_command_runs_in_the_daemon_with_this_process_arguments_cwd_env_and_stdout(daemon: Daemon) -> None:
    daemon.project.write("hello.py", HELLO)
    before = daemon.status()["served"]
    result = daemon.smithers("up", "hello.py", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "finished"  # stdout is this process's pipe
    assert daemon.project.db.is_file()  # SMITHERS_DB from this process's environment, relative to its cwd
    listed = daemon.smithers("ps", "--json")
    assert [r["status"] for r in json.loads(listed.stdout)] == ["finished"]
    status = daemon.status()
    assert status["current"] is True
    assert status["served"] == before + 2  # both commands were forked by the daemon


def test_exit_codes_and_stderr_come_back_unchanged(daemon: Daemon) -> None:
    daemon.project.write("failing.py", FAILING)
    before = daemon.status()["served"]
    failed = daemon.smithers("up", "failing.py", "--quiet")
    here = daemon.smithers("up", "failing.py", "--quiet", env=daemon.env(SMITHERS_NO_DAEMON="1"))
    assert failed.returncode == here.returncode == 1
    assert "boom" in failed.stdout and "boom" in here.stdout
    usage = daemon.smithers("nosuchcommand")
    usage_here = daemon.smithers("nosuchcommand", env=daemon.env(SMITHERS_NO_DAEMON="1"))
    assert usage.returncode == usage_here.returncode == 4
    assert usage.stderr == usage_here.stderr
    assert "No such command" in usage.stderr
    assert daemon.status()["served"] == before + 2


def test_the_run_is_driven_by_a_forked_child_of_the_daemon(daemon: Daemon) -> None:
    daemon.project.write("slow.py", SLOW)
    client = daemon.popen("up", "slow.py", "--quiet")
    try:
        owner = _wait_for_owner(daemon.project.db)
        assert owner != client.pid
        assert _parent_of(owner) == _daemon_pid(daemon)
    finally:
        client.kill()
        client.communicate(timeout=10)


def _wait_for_owner(db: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.is_file():
            try:
                with sqlite3.connect(db) as conn:
                    row = conn.execute("SELECT owner_pid FROM _smithers_runs WHERE status = 'running'").fetchone()
            except sqlite3.OperationalError:
                row = None
            if row and row[0]:
                return int(row[0])
        time.sleep(0.05)
    raise AssertionError("the run never started")


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigkill_of_the_client_kills_the_run_and_resume_finishes_it(daemon: Daemon) -> None:
    daemon.project.write("slow.py", SLOW)
    client = daemon.popen("up", "slow.py", "--quiet")
    owner = _wait_for_owner(daemon.project.db)
    os.kill(client.pid, signal.SIGKILL)
    client.communicate(timeout=10)
    assert _gone(owner), "the daemon's child outlived its SIGKILLed client"
    with sqlite3.connect(daemon.project.db) as conn:
        run_id = conn.execute("SELECT run_id FROM _smithers_runs").fetchone()[0]
    resumed = daemon.smithers("resume", run_id, "--quiet", env=daemon.env(NAP_S="0.1"))
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_sigterm_reaches_the_run_as_it_would_without_the_daemon(daemon: Daemon) -> None:
    daemon.project.write("slow.py", SLOW)
    client = daemon.popen("up", "slow.py", "--quiet")
    _wait_for_owner(daemon.project.db)
    client.send_signal(signal.SIGTERM)
    client.communicate(timeout=30)
    assert client.returncode == 143  # DESIGN §6: a run stopped by SIGTERM exits 143
    with sqlite3.connect(daemon.project.db) as conn:
        status = conn.execute("SELECT status FROM _smithers_runs").fetchone()[0]
    assert status == "cancelled"


def test_a_client_with_other_code_is_refused_and_runs_the_command_itself(daemon: Daemon, tmp_path: Path) -> None:
    daemon.project.write("slow.py", SLOW)
    other = tmp_path / "elsewhere"
    other.mkdir()
    env = daemon.env(PYTHONPATH=os.pathsep.join(filter(None, [str(other), os.environ.get("PYTHONPATH", "")])))
    client = subprocess.Popen(
        [sys.executable, "-c", CONSOLE_SCRIPT, "up", "slow.py", "--quiet"], cwd=daemon.project.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        assert _wait_for_owner(daemon.project.db) == client.pid  # no fork: this process drove the run
    finally:
        client.kill()
        client.communicate(timeout=10)


def test_status_stop_and_a_missing_daemon(daemon: Daemon) -> None:
    assert daemon.status()["running"] is True
    stopped = daemon.smithers("daemon", "stop", "--json", env=daemon.env(SMITHERS_NO_DAEMON="1"))
    assert json.loads(stopped.stdout)["stopped"] is True
    assert not daemon.socket.exists()
    missing = daemon.smithers("daemon", "status", env=daemon.env(SMITHERS_NO_DAEMON="1"))
    assert missing.returncode == 1
    assert "no smithers daemon running" in missing.stdout
    daemon.project.write("hello.py", HELLO)
    alone = daemon.smithers("up", "hello.py", "--quiet")  # no daemon: the command runs here, as always
    assert alone.returncode == 0, alone.stderr
