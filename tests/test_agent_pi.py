"""The pi adapter, driving the real ``pi`` CLI (installed by scripts/install-agents) against
the fake Anthropic server on 127.0.0.1 (pi's ``anthropic-messages`` provider api): a workflow
task that writes a file and returns validated JSON, events and usage, session resume, a 401,
cancellation that kills the whole process tree (also through `smithers cancel` of a run), and a missing binary."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from proctree import _cmdline, alive, cancel_when, process_tree, wait_gone
from waiting import wait_until

from smithers import ops
from smithers.agents import AgentEvent, AgentRequest, Pi
from smithers.agents._process import ProcessResult
from smithers.agents.cli import ParseState
from smithers.errors import AgentConfigError, AgentError
from smithers.states import AttemptStatus, RunStatus
from smithers.storage.store import Store
from smithers.testing.cli_env import pi_env
from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app
from smithers.testing.fakes.anthropic import tool_results

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
FINAL = 'All done.\n\n```json\n{"ok": true}\n```'


# an API error that is not about credentials, though its words mention keys, 401 and access
NOT_AUTH_MESSAGE = "unsupported parameter: this request mentions an API key, a 401 and unauthorized access"


@pytest.fixture(scope="module")
def pi_bin() -> str:
    path = AGENTS_BIN / "pi"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the pi CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


@contextmanager
def fake(steps: list) -> Iterator[FakeServer]:
    with FakeServer(anthropic_app(steps)) as server:
        yield server


def agent_for(server: FakeServer, home: Path, binary: str, **options) -> Pi:
    return Pi(binary=binary, env=pi_env(server.url, home), **options)


def request(cwd: Path, events: list[AgentEvent] | None = None, **fields) -> AgentRequest:
    fields.setdefault("output_schema", SCHEMA)
    on_event = events.append if events is not None else None
    return AgentRequest(prompt=fields.pop("prompt", "Do the task."), cwd=str(cwd), on_event=on_event, **fields)


def test_argv_maps_the_options():
    agent = Pi(provider="fake", model="m", thinking="low", offline=True, system_prompt="Be brief.", allowed_tools=["read", "write"])
    argv = agent.build_argv("pi", AgentRequest(prompt="-starts with a dash", output_schema=SCHEMA, cwd=".", resume_session_id="s-1"))
    assert argv[:3] == ["pi", "--mode", "json"] and "--offline" in argv
    pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert pairs["--provider"] == "fake" and pairs["--model"] == "m" and pairs["--thinking"] == "low"
    assert pairs["--append-system-prompt"] == "Be brief." and pairs["--tools"] == "read,write" and pairs["--session"] == "s-1"
    assert argv[-2:] == ["-p", " -starts with a dash"], "pi has no `--`, so a leading dash is padded"
    assert Pi().build_argv("pi", request(Path(".")))[-2:] == ["-p", "Do the task."]
    assert Pi().build_argv("pi", request(Path("."), prompt="@file"))[-1] == " @file"


def test_a_retry_that_succeeds_clears_the_error():
    failed = {"role": "assistant", "content": [], "stopReason": "error", "errorMessage": "529 overloaded", "usage": {}}
    ok = {"role": "assistant", "content": [{"type": "text", "text": "fine"}], "stopReason": "stop", "model": "m",
          "usage": {"input": 5, "output": 2, "cacheRead": 3, "cacheWrite": 1, "cost": {"total": 0.25}}}
    lines = [
        {"type": "session", "id": "s-9"}, {"type": "message_end", "message": failed},
        {"type": "auto_retry_start", "attempt": 1, "maxAttempts": 3, "errorMessage": "529 overloaded"},
        {"type": "message_end", "message": ok}, {"type": "agent_end", "messages": []},
    ]
    events: list[AgentEvent] = []
    agent, state, req = Pi(), ParseState(), request(Path("."), events)
    for line in ["a warning pi printed", *map(json.dumps, lines)]:
        agent.parse_line(line, state, req)
    assert [e.kind for e in events] == ["error", "raw", "text"]
    assert state.error is None and state.finished and state.text == "fine" and state.session_id == "s-9" and state.model == "m"
    assert state.usage.to_dict() == {
        "input_tokens": 5, "output_tokens": 2, "cache_read_tokens": 3, "cache_write_tokens": 1, "cost_usd": 0.25,
    }

    agent.parse_line(json.dumps({"type": "auto_retry_end", "success": False, "finalError": "gave up"}), state, req)
    with pytest.raises(AgentError, match="gave up"):
        agent.check_exit(ProcessResult(exit_code=0, stderr="", lines=5), state)


@pytest.mark.slow
def test_workflow_task_writes_a_file_and_returns_validated_json(tmp_path, pi_bin):
    project = tmp_path / "project"
    project.mkdir()
    write = ToolCall("write", {"path": "note.txt", "content": "written by pi\n"})  # relative: pi runs in the task's cwd
    with fake([Reply(text="Writing the note.", tool_calls=[write]), FINAL]) as server:
        (project / "wf.py").write_text(textwrap.dedent(f"""
            from pydantic import BaseModel
            from smithers import Task, workflow
            from smithers.agents import Pi

            class Done(BaseModel):
                ok: bool

            agent = Pi(binary={pi_bin!r}, env={pi_env(server.url, tmp_path / "home")!r})

            @workflow
            def wf(ctx):
                return Task("note", output=Done, agent=agent, prompt="Write note.txt, then report.", retries=0)
        """))
        store = Store.open(project / "smithers.db")
        try:
            outcome = ops.start_run(str(project / "wf.py"), store=store, raw_input={})
            assert outcome.status == "finished", outcome.error
            assert sqlite3.connect(store.path).execute("select ok from done").fetchall() == [(1,)]
            kinds = [e["payload"]["kind"] for e in store.events(outcome.run_id, type_prefix="AgentEvent")]
            usage = store.events(outcome.run_id, type_prefix="TokenUsageReported")
        finally:
            store.close()
        prompt = json.dumps(server.requests[0]["messages"])
    assert (project / "note.txt").read_text() == "written by pi\n"
    assert "tool_use" in kinds and "tool_result" in kinds and "text" in kinds
    assert usage and usage[0]["payload"]["input_tokens"] > 0
    assert "Write note.txt, then report." in prompt and "JSON" in prompt, "the engine's prompt reached the model"


@pytest.mark.slow
def test_events_usage_session_and_resume(tmp_path, pi_bin):
    work = tmp_path / "work"
    work.mkdir()
    steps = [
        Reply(tool_calls=[ToolCall("write", {"path": "a.txt", "content": "A"})], input_tokens=100, output_tokens=20),
        Reply(text=FINAL, input_tokens=150, output_tokens=30),
    ]
    events: list[AgentEvent] = []
    with fake(steps) as server:
        agent = agent_for(server, tmp_path / "home", pi_bin)
        result = asyncio.run(agent.run(request(work, events)))
        assert len(server.requests) == 2
        assert tool_results(server.requests[1])[0]["tool_use_id"] == next(e.data["id"] for e in events if e.kind == "tool_use")

        server.app.state.script.steps.append("Resumed.")
        again = asyncio.run(agent.run(request(work, prompt="And now?", resume_session_id=result.session_id)))
        resumed = server.requests[-1]
    by_kind = {e.kind: e.data for e in events}
    assert by_kind["tool_use"]["name"] == "write" and by_kind["tool_use"]["input"] == {"path": "a.txt", "content": "A"}
    assert by_kind["tool_result"]["id"] == by_kind["tool_use"]["id"] and by_kind["tool_result"]["is_error"] is False
    assert "Successfully wrote" in by_kind["tool_result"]["output"]
    assert by_kind["text"]["text"] == FINAL
    assert result.text == FINAL and result.output is None
    assert result.usage["input_tokens"] == 250 and result.usage["output_tokens"] == 50
    assert result.session_id and len(result.session_id) == 36 and result.model == "fake-claude"
    assert (work / "a.txt").read_text() == "A"
    assert again.text == "Resumed." and again.session_id == result.session_id
    history = json.dumps(resumed["messages"])
    assert by_kind["tool_use"]["id"] in history and "And now?" in history, "--session continued the conversation"


@pytest.mark.slow
def test_401_is_a_configuration_error(tmp_path, pi_bin):
    with fake([Reply(status=401, error_message="invalid x-api-key")]) as server:
        events: list[AgentEvent] = []
        with pytest.raises(AgentConfigError) as caught:
            asyncio.run(agent_for(server, tmp_path / "home", pi_bin).run(request(tmp_path, events)))
        assert len(server.requests) == 1, "pi does not retry a 401"
    assert "authenticate" in caught.value.message and "401" in caught.value.message
    assert [e.kind for e in events if e.kind == "error"] == ["error"]


@pytest.mark.slow
def test_an_api_error_that_mentions_keys_is_not_an_auth_failure(tmp_path, pi_bin):
    with fake([Reply(status=400, error_message=NOT_AUTH_MESSAGE)]) as server, pytest.raises(AgentError) as caught:
        asyncio.run(agent_for(server, tmp_path / "home", pi_bin).run(request(tmp_path)))
    assert not isinstance(caught.value, AgentConfigError), caught.value.message
    assert NOT_AUTH_MESSAGE in caught.value.message


@pytest.mark.slow
def test_missing_binary_is_a_configuration_error():
    with pytest.raises(AgentConfigError) as caught:
        asyncio.run(Pi(binary="/nonexistent/pi").run(request(Path("."))))
    assert "/nonexistent/pi" in caught.value.message
    assert "npm install -g @mariozechner/pi-coding-agent" in (caught.value.hint or "")


# -- cancellation kills the CLI and everything it started ------------------------------------


@pytest.mark.slow
def test_cancel_while_waiting_for_the_model_kills_the_cli(tmp_path, pi_bin):
    asked, release = threading.Event(), threading.Event()

    def slow(body: dict) -> Reply:
        asked.set()
        release.wait(60)  # longer than cancel_when waits for the tree to go
        return Reply(text="too late")

    with fake([slow]) as server:
        try:
            agent = agent_for(server, tmp_path / "home", pi_bin)
            tree = asyncio.run(cancel_when(agent, request(tmp_path), lambda _tree: asked.is_set()))
        finally:
            release.set()
    assert tree and not alive(tree), f"still alive after cancel: {alive(tree)}"


@pytest.mark.slow
def test_cancel_during_a_tool_kills_its_processes_too(tmp_path, pi_bin):
    marker = f"smithers-pi-cancel-{os.getpid()}"
    command = f"{sys.executable} -c 'import time; time.sleep(60)' {marker}; echo finished"
    steps = [Reply(tool_calls=[ToolCall("bash", {"command": command})]), "done"]

    def tool_running(tree: set[int]) -> bool:
        return any(marker in _cmdline(pid) for pid in tree)

    with fake(steps) as server:
        agent = agent_for(server, tmp_path / "home", pi_bin)
        tree = asyncio.run(cancel_when(agent, request(tmp_path), tool_running))
    assert len(tree) >= 2, "pi and the tool's python (seen before the cancel; the shell may exec it)"
    assert not alive(tree), f"still alive after cancel: {[_cmdline(pid) for pid in alive(tree)]}"


@pytest.mark.slow
def test_cancelling_the_run_kills_pi_and_its_tool_and_records_the_attempt_cancelled(project, pi_bin):
    """The same guarantee through the engine and the CLI: `smithers cancel` of a live run whose agent is
    inside a tool ends the whole tree, and the attempt and the run are recorded cancelled."""
    marker = f"smithers-pi-run-cancel-{os.getpid()}"
    command = f"{sys.executable} -c 'import time; time.sleep(60)' {marker}; echo finished"
    with fake([Reply(tool_calls=[ToolCall("bash", {"command": command})]), "done"]) as server:
        project.write("wf.py", f"""
            from pydantic import BaseModel
            from smithers import Task, workflow
            from smithers.agents import Pi

            class Done(BaseModel):
                ok: bool

            agent = Pi(binary={pi_bin!r}, env={pi_env(server.url, project.root / "home")!r})

            @workflow
            def wf(ctx):
                return Task("tool", output=Done, agent=agent, prompt="Run the command.", retries=0)
        """)
        up = project.popen("up", "wf.py", "--run-id", "pi-cancel")
        try:
            def tool_tree() -> set[int]:
                tree = process_tree(up.pid) - {up.pid}
                return tree if any(marker in _cmdline(pid) for pid in tree) else set()

            tree = wait_until(tool_tree, 60, "pi to start the tool under `smithers up`")
            cancelled = project.cli("cancel", "pi-cancel")
            assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
            assert up.wait(timeout=30) == 2, up.communicate()
        finally:
            if up.poll() is None:
                up.kill()
            up.communicate()
        wait_gone(tree)  # the tool sleeps a minute: only a kill ends it before wait_gone gives up
    attempts = project.query("SELECT status FROM _smithers_attempts WHERE run_id = 'pi-cancel' AND node_id = 'tool'")
    assert attempts == [(AttemptStatus.CANCELLED,)]
    assert project.query("SELECT status FROM _smithers_runs WHERE run_id = 'pi-cancel'") == [(RunStatus.CANCELLED,)]
