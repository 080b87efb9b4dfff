"""Kill on timeout: an agent task that runs out of its `timeout` while the agent's tool is running ends
with its whole process tree gone (the CLI and what its tool started) and the attempt recorded failed as
a timeout. The real `pi` CLI (scripts/install-agents) against the fake Anthropic server on 127.0.0.1,
run by a real `smithers up`."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project
from proctree import _cmdline, process_tree, wait_gone

from smithers.states import AttemptStatus, RunStatus
from smithers.testing.cli_env import pi_env
from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"
TIMEOUT = 20  # seconds: long enough for pi to start its tool on a loaded machine, far shorter than the tool


@pytest.fixture
def pi_bin() -> str:  # the name marks the test `agents` (conftest)
    path = AGENTS_BIN / "pi"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the pi CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


def test_a_timed_out_agent_task_leaves_no_process_behind(project: Project, pi_bin: str) -> None:
    marker = f"smithers-pi-timeout-{os.getpid()}"
    command = f"{sys.executable} -c 'import time; time.sleep(600)' {marker}; echo finished"
    with FakeServer(anthropic_app([Reply(tool_calls=[ToolCall("bash", {"command": command})]), "done"])) as server:
        project.write("wf.py", f"""
            from pydantic import BaseModel
            from smithers import Task, workflow
            from smithers.agents import Pi

            class Done(BaseModel):
                ok: bool

            agent = Pi(binary={pi_bin!r}, env={pi_env(server.url, project.root / "home")!r})

            @workflow
            def wf(ctx):
                return Task("tool", output=Done, agent=agent, prompt="Run the command.", retries=0, timeout={TIMEOUT})
        """)
        up = project.popen("up", "wf.py", "--run-id", "pi-timeout")
        seen: set[int] = set()  # every process under `smithers up` while it ran
        tool_seen = False
        try:
            while up.poll() is None:  # watch the tree until the run ends by itself (the timeout)
                tree = process_tree(up.pid) - {up.pid}
                seen |= tree
                tool_seen = tool_seen or any(marker in _cmdline(pid) for pid in tree)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    up.wait(timeout=0.2)
            out, err = up.communicate(timeout=30)
        finally:
            if up.poll() is None:
                up.kill()
                up.communicate()
    assert up.returncode == 1, out + err
    assert tool_seen, f"pi never started the tool within {TIMEOUT}s, so the test proved nothing: raise TIMEOUT"
    wait_gone(seen)  # the tool sleeps ten minutes: only the kill on timeout ends it in time
    [(status, error_json)] = project.query(
        "SELECT status, error_json FROM _smithers_attempts WHERE run_id = 'pi-timeout' AND node_id = 'tool'"
    )
    assert status == AttemptStatus.FAILED, status
    error = json.loads(error_json)
    assert "timed out" in error["message"], error
    assert project.query("SELECT status FROM _smithers_runs WHERE run_id = 'pi-timeout'") == [(RunStatus.FAILED,)]
