"""The Gemini adapter, driving the real ``gemini`` binary (installed by scripts/install-agents)
against the fake Gemini API server on 127.0.0.1: a workflow task that writes a file and returns
validated JSON, events, usage and sessions, auth failures (401, exit 41), cancellation that
kills the whole process tree, and a missing binary."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
from proctree import _cmdline, alive, cancel_when

from smithers import ops
from smithers.agents import AgentEvent, AgentRequest, Gemini
from smithers.agents.cli import ParseState
from smithers.errors import AgentConfigError, AgentError
from smithers.storage.store import Store
from smithers.testing.cli_env import gemini_env
from smithers.testing.fakes import FakeServer, Reply, ToolCall, gemini_app, gemini_shell

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
FINAL = 'Done.\n\n```json\n{"ok": true}\n```'


# an API error that is not about credentials, though its words mention keys, 401 and access
NOT_AUTH_MESSAGE = "unsupported parameter: this request mentions an API key, a 401 and unauthorized access"


@pytest.fixture(scope="module")
def gemini_bin() -> str:
    path = AGENTS_BIN / "gemini"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the gemini CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


def after_tool(call: ToolCall, final: str, **usage: int):
    """A fake model that makes ``call``, then answers ``final`` once the tool's result is back."""

    def step(body: dict) -> Reply:
        parts = body["contents"][-1].get("parts") or []
        if any("functionResponse" in part for part in parts):
            return Reply(text=final, **usage)
        return Reply(text="", tool_calls=[call], **usage)

    return step


def request(cwd: Path, events: list[AgentEvent] | None = None, **fields) -> AgentRequest:
    fields.setdefault("output_schema", SCHEMA)
    on_event = events.append if events is not None else None
    return AgentRequest(prompt=fields.pop("prompt", "Do the task."), cwd=str(cwd), on_event=on_event, **fields)


# -- the command line and the event parser (no binary needed) -------------------------------


def test_argv_maps_the_options():
    agent = Gemini(model="gemini-2.5-pro", system_prompt="Be brief.", allowed_tools=["read_file"], extra_args=["--debug"])
    argv = agent.build_argv("gemini", request(Path("."), prompt="-starts with a dash"))
    assert argv[:4] == ["gemini", "--prompt=Be brief.\n\n-starts with a dash", "--output-format", "stream-json"]
    assert argv[argv.index("--model") + 1] == "gemini-2.5-pro"
    assert "--yolo" in argv and "--skip-trust" in argv
    assert argv[argv.index("--allowed-tools") + 1] == "read_file" and argv[-1] == "--debug"

    resumed = Gemini(permission="accept-edits", system_prompt="Be brief.").build_argv("gemini", request(Path("."), resume_session_id="s-1"))
    assert resumed[1] == "--prompt=Do the task.", "the system prompt went in with the first turn"
    assert resumed[resumed.index("--resume") + 1] == "s-1"
    assert resumed[resumed.index("--approval-mode") + 1] == "auto_edit" and "--yolo" not in resumed
    plain = Gemini(permission="default").build_argv("gemini", request(Path(".")))
    assert "--yolo" not in plain and "--skip-trust" not in plain and "--approval-mode" not in plain


def test_parse_line_gathers_deltas_and_reads_stats():
    agent, state, events = Gemini(), ParseState(), []
    req = request(Path("."), events)
    lines = [
        {"type": "init", "session_id": "s-1", "model": "auto"},
        {"type": "message", "role": "user", "content": "Do the task."},
        {"type": "message", "role": "assistant", "content": "Let me ", "delta": True},
        {"type": "message", "role": "assistant", "content": "look.", "delta": True},
        {"type": "tool_use", "tool_name": "read_file", "tool_id": "t1", "parameters": {"file_path": "a"}},
        {"type": "tool_result", "tool_id": "t1", "status": "error", "error": {"type": "x", "message": "no such file"}},
        {"type": "error", "severity": "warning", "message": "Loop detected"},
        {"type": "message", "role": "assistant", "content": '{"ok":', "delta": True},
        {"type": "message", "role": "assistant", "content": " true}", "delta": True},
        {"type": "result", "status": "success", "stats": {
            "input_tokens": 100, "cached": 30, "input": 70, "output_tokens": 12,
            "models": {"gemini-3.5-flash-lite": {"total_tokens": 2}, "gemini-3.8-flash": {"total_tokens": 110}},
        }},
    ]
    for line in lines:
        agent.parse_line(json.dumps(line), state, req)
    agent.parse_line("YOLO mode is enabled.", state, req)
    assert state.session_id == "s-1" and state.model == "gemini-3.8-flash" and state.finished
    assert state.text == '{"ok": true}', "the reply is the text after the last tool call"
    assert (state.usage.input_tokens, state.usage.cache_read_tokens, state.usage.output_tokens) == (70, 30, 12)
    assert [e.kind for e in events] == ["text", "tool_use", "tool_result", "error", "text"]
    assert events[0].data["text"] == "Let me look."
    assert events[2].data == {"id": "t1", "output": "no such file", "is_error": True}
    assert events[3].data["fatal"] is False


# -- the real CLI against the fake ----------------------------------------------------------


@pytest.mark.slow
def test_workflow_task_writes_a_file_and_returns_validated_json(tmp_path, gemini_bin):
    project = tmp_path / "project"
    project.mkdir()
    write = ToolCall("write_file", {"file_path": str(project / "note.txt"), "content": "written by gemini\n"})
    app = gemini_app([after_tool(write, FINAL)])
    with FakeServer(app) as server:
        (project / "wf.py").write_text(textwrap.dedent(f"""
            from pydantic import BaseModel
            from smithers import Task, workflow
            from smithers.agents import Gemini

            class Done(BaseModel):
                ok: bool

            agent = Gemini(binary={gemini_bin!r}, env={gemini_env(server.url, tmp_path / "home")!r})

            @workflow
            def wf(ctx):
                return Task("note", output=Done, agent=agent, prompt="Write note.txt, then report.", retries=0)
        """))
        store = Store.open(project / "smithers.db")
        try:
            outcome = ops.start_run(str(project / "wf.py"), store=store, raw_input={})
            assert outcome.status == "finished", outcome.error
            rows = sqlite3.connect(store.path).execute("select ok from done").fetchall()
            agent_events = [e["payload"] for e in store.events(outcome.run_id, type_prefix="AgentEvent")]
            usage = store.events(outcome.run_id, type_prefix="TokenUsageReported")
            meta = json.loads(store.attempts(outcome.run_id)[0]["meta_json"])
        finally:
            store.close()
        first = server.requests[0]
    assert (project / "note.txt").read_text() == "written by gemini\n"
    assert rows == [(1,)]
    kinds = [e["kind"] for e in agent_events]
    assert "tool_use" in kinds and "tool_result" in kinds and "text" in kinds
    assert usage and usage[0]["payload"]["input_tokens"] > 0 and usage[0]["payload"]["output_tokens"] > 0
    assert meta["agent"] == "gemini" and meta["session_id"] and meta["model"]
    assert "Write note.txt, then report." in json.dumps(first["contents"])
    assert app.state.utility_requests, "the model router asked the fake, without using up the script"


@pytest.mark.slow
def test_events_usage_session_and_resume(tmp_path, gemini_bin):
    work = tmp_path / "work"
    work.mkdir()
    events: list[AgentEvent] = []
    with FakeServer(gemini_app([after_tool(gemini_shell("echo one >> log.txt"), FINAL, input_tokens=40, output_tokens=6)])) as server:
        agent = Gemini(binary=gemini_bin, env=gemini_env(server.url, tmp_path / "home"), model="gemini-fake")
        result = asyncio.run(agent.run(request(work, events)))
        again = asyncio.run(agent.run(request(work, prompt="Once more.", resume_session_id=result.session_id)))
        resumed = server.requests[-1]
    uses = [e.data for e in events if e.kind == "tool_use"]
    results = [e.data for e in events if e.kind == "tool_result"]
    assert len(uses) == 1 and uses[0]["name"] == "run_shell_command" and uses[0]["input"]["command"] == "echo one >> log.txt"
    assert results[0]["id"] == uses[0]["id"] and results[0]["is_error"] is False
    assert any(e.kind == "text" and e.data["text"] == FINAL for e in events)
    assert result.text == FINAL and result.output is None
    assert result.usage == {"input_tokens": 80, "output_tokens": 12, "cache_read_tokens": 0, "cache_write_tokens": 0}
    assert result.session_id and len(result.session_id) == 36 and result.model == "gemini-fake"
    assert (work / "log.txt").read_text() == "one\none\n"
    assert again.session_id == result.session_id and again.text == FINAL
    assert again.usage["input_tokens"] == 80, "gemini reports each invocation's own usage"
    history = json.dumps(resumed["contents"])
    assert "Do the task." in history and "Once more." in history, "--resume continued the session"


@pytest.mark.slow
def test_401_is_a_configuration_error(tmp_path, gemini_bin):
    with FakeServer(gemini_app([Reply(status=401, error_message="API key not valid. Please pass a valid API key.")])) as server:
        with pytest.raises(AgentConfigError) as caught:
            agent = Gemini(binary=gemini_bin, env=gemini_env(server.url, tmp_path / "home"), model="gemini-fake")
            asyncio.run(agent.run(request(tmp_path)))
        requests = len(server.requests)
    assert requests < 4, f"gemini's own retries are cut short at the first 401: {requests} requests"
    assert "authenticate" in caught.value.message and "API key not valid" in caught.value.message
    assert "GEMINI_API_KEY" in (caught.value.hint or "")


@pytest.mark.slow
def test_an_api_error_that_mentions_keys_is_not_an_auth_failure(tmp_path, gemini_bin):
    with FakeServer(gemini_app([Reply(status=400, error_message=NOT_AUTH_MESSAGE)])) as server, pytest.raises(AgentError) as caught:
        asyncio.run(Gemini(binary=gemini_bin, env=gemini_env(server.url, tmp_path / "home"), model="gemini-fake").run(request(tmp_path)))
    assert not isinstance(caught.value, AgentConfigError), caught.value.message
    assert NOT_AUTH_MESSAGE in caught.value.message


@pytest.mark.slow
def test_exit_41_without_an_auth_method_is_a_configuration_error(tmp_path, gemini_bin):
    env = gemini_env("http://127.0.0.1:9", tmp_path / "home")
    (tmp_path / "home" / ".gemini" / "settings.json").write_text("{}")
    with pytest.raises(AgentConfigError) as caught:
        asyncio.run(Gemini(binary=gemini_bin, env=env, model="gemini-fake").run(request(tmp_path)))
    assert "exit 41" in caught.value.message and "Invalid auth method" in caught.value.message
    assert "selectedType" in (caught.value.hint or "")


@pytest.mark.slow
def test_missing_binary_is_a_configuration_error():
    for binary in ("/nonexistent/gemini", f"gemini-not-installed-{uuid.uuid4().hex[:6]}"):
        with pytest.raises(AgentConfigError) as caught:
            asyncio.run(Gemini(binary=binary).run(request(Path("."))))
        assert "npm install -g @google/gemini-cli" in (caught.value.hint or "")
        assert not caught.value.retryable


# -- cancellation kills the CLI and everything it started ------------------------------------


@pytest.mark.slow
def test_cancel_during_a_command_kills_gemini_and_the_command(tmp_path, gemini_bin):
    marker = f"{300 + os.getpid() % 1000}.{uuid.uuid4().int % 1000:03d}"

    def running(tree: set[int]) -> bool:
        return any(_cmdline(pid).startswith(f"sleep {marker}") for pid in tree)

    with FakeServer(gemini_app([after_tool(gemini_shell(f"sleep {marker} | cat"), FINAL)])) as server:
        agent = Gemini(binary=gemini_bin, env=gemini_env(server.url, tmp_path / "home"), model="gemini-fake")
        tree = asyncio.run(cancel_when(agent, request(tmp_path), running))
    assert len(tree) >= 4, "gemini's launcher, node, the command's shell, sleep"
    leftovers = alive(tree)
    assert not leftovers, f"still alive after cancel: {[_cmdline(pid) for pid in leftovers]}"


@pytest.mark.slow
def test_cancel_while_waiting_for_the_model_kills_gemini(tmp_path, gemini_bin):
    asked, release = threading.Event(), threading.Event()

    def slow(body: dict) -> Reply:
        asked.set()
        release.wait(60)  # longer than cancel_when waits for the tree to go
        return Reply(text="too late")

    with FakeServer(gemini_app([slow])) as server:
        try:
            agent = Gemini(binary=gemini_bin, env=gemini_env(server.url, tmp_path / "home"), model="gemini-fake")
            tree = asyncio.run(cancel_when(agent, request(tmp_path), lambda _tree: asked.is_set()))
        finally:
            release.set()
    assert tree and not alive(tree), f"still alive after cancel: {alive(tree)}"
