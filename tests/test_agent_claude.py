"""The Claude Code adapter, driving the real ``claude`` binary (installed by
scripts/install-agents) against the fake Anthropic server on 127.0.0.1: a workflow task that
writes a file and returns validated JSON, events and usage, structured output, session resume,
a 401, cancellation that kills the whole process tree, and a missing binary."""

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
from proctree import _cmdline, alive, cancel_when

from smithers import ops
from smithers.agents import AgentEvent, AgentRequest, ClaudeCode
from smithers.agents._process import ProcessResult
from smithers.agents.cli import ParseState
from smithers.errors import AgentConfigError, AgentError
from smithers.storage.store import Store
from smithers.testing.cli_env import claude_env
from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app
from smithers.testing.fakes.anthropic import tool_results

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
FINAL = 'All done.\n\n```json\n{"ok": true}\n```'


# an API error that is not about credentials, though its words mention keys, 401 and access
NOT_AUTH_MESSAGE = "unsupported parameter: this request mentions an API key, a 401 and unauthorized access"


@pytest.fixture(scope="module")
def claude_bin() -> str:
    path = AGENTS_BIN / "claude"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the claude CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


@contextmanager
def fake(steps: list) -> Iterator[FakeServer]:
    with FakeServer(anthropic_app(steps)) as server:
        yield server


def agent_for(server: FakeServer, home: Path, binary: str, **options) -> ClaudeCode:
    return ClaudeCode(binary=binary, env=claude_env(server.url, home), **options)


def request(cwd: Path, events: list[AgentEvent] | None = None, **fields) -> AgentRequest:
    fields.setdefault("output_schema", SCHEMA)
    on_event = events.append if events is not None else None
    return AgentRequest(prompt=fields.pop("prompt", "Do the task."), cwd=str(cwd), on_event=on_event, **fields)


# -- the command line and environment (no binary needed) ------------------------------------


def test_argv_maps_the_options():
    agent = ClaudeCode(model="sonnet", system_prompt="Be brief.", allowed_tools=["Read", "Write"], extra_args=["--max-budget-usd", "1"])
    argv = agent.build_argv("claude", AgentRequest(prompt="-starts with a dash", output_schema=SCHEMA, cwd=".", resume_session_id="s-1"))
    assert argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert argv[argv.index("--append-system-prompt") + 1] == "Be brief."
    assert argv[argv.index("--allowedTools") + 1] == "Read,Write"
    assert argv[argv.index("--resume") + 1] == "s-1"
    assert json.loads(argv[argv.index("--json-schema") + 1]) == SCHEMA
    assert "--dangerously-skip-permissions" in argv
    assert argv[-4:] == ["--max-budget-usd", "1", "--", "-starts with a dash"]

    plain = ClaudeCode(permission="accept-edits", structured=False).build_argv("claude", request(Path(".")))
    assert "--json-schema" not in plain and "--dangerously-skip-permissions" not in plain
    assert plain[plain.index("--permission-mode") + 1] == "acceptEdits"
    assert "--permission-mode" not in ClaudeCode(permission="default").build_argv("claude", request(Path(".")))


def test_env_drops_nested_session_vars_and_sets_is_sandbox_for_root(monkeypatch):
    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    env = ClaudeCode(env={"A": "1"}).build_env(request(Path(".")))
    assert "CLAUDECODE" not in env and env["A"] == "1"
    assert ("IS_SANDBOX" in env) == (os.geteuid() == 0)
    assert "IS_SANDBOX" not in ClaudeCode(permission="default").build_env(request(Path(".")))


def parse(lines: list[dict], events: list[AgentEvent] | None = None) -> ParseState:
    agent, state, req = ClaudeCode(), ParseState(), request(Path("."), events)
    for line in ["not json: a banner", *map(json.dumps, lines)]:
        agent.parse_line(line, state, req)
    return state


def test_not_logged_in_is_a_configuration_error():
    # what claude 2.1 prints without any credentials: an API error message marked authentication_failed
    login = "Not logged in · Please run /login"
    state = parse([
        {"type": "assistant", "error": "authentication_failed", "is_api_error_message": True,
         "message": {"role": "assistant", "content": [{"type": "text", "text": login}]}},
        {"type": "result", "subtype": "success", "is_error": True, "result": login, "api_error_status": None},
    ])
    with pytest.raises(AgentConfigError, match="could not authenticate: Not logged in"):
        ClaudeCode().check_exit(ProcessResult(exit_code=1, stderr="", lines=2), state)
    # the result's own status and type fields say so too
    state = parse([{"type": "result", "subtype": "success", "is_error": True, "result": "API Error: 401 invalid x-api-key",
                    "api_error_status": 401, "api_error_type": "authentication_error"}])
    with pytest.raises(AgentConfigError, match="could not authenticate"):
        ClaudeCode().check_exit(ProcessResult(exit_code=1, stderr="", lines=1), state)


def test_words_about_keys_or_401_are_not_an_auth_failure():
    for text in ("Not logged in · Please run /login", "Invalid API key mentioned in the docs; see HTTP 401 handling"):
        state = parse([{"type": "result", "subtype": "error_during_execution", "is_error": True, "result": text}])
        with pytest.raises(AgentError) as caught:
            ClaudeCode().check_exit(ProcessResult(exit_code=1, stderr="401 unauthorized api key", lines=1), state)
        assert not isinstance(caught.value, AgentConfigError)
    state = parse([{"type": "result", "subtype": "success", "is_error": True, "result": "API Error: 400 bad api key parameter 401",
                    "api_error_status": 400, "api_error_type": "invalid_request_error"}])
    with pytest.raises(AgentError) as caught:
        ClaudeCode().check_exit(ProcessResult(exit_code=1, stderr="", lines=1), state)
    assert not isinstance(caught.value, AgentConfigError)


def test_errors_in_the_result_fail_the_turn():
    state = parse([{"type": "result", "subtype": "error_max_turns", "is_error": True, "errors": ["reached the turn limit"]}])
    with pytest.raises(AgentError, match="error_max_turns: reached the turn limit") as caught:
        ClaudeCode().check_exit(ProcessResult(exit_code=1, stderr="", lines=1), state)
    assert not isinstance(caught.value, AgentConfigError)
    with pytest.raises(AgentError, match="without a result"):
        ClaudeCode().check_exit(ProcessResult(exit_code=0, stderr="", lines=0), parse([]))


def test_api_retries_are_reported_and_auth_failures_stop_the_run():
    events: list[AgentEvent] = []
    parse([{"type": "system", "subtype": "api_retry", "attempt": 1, "error_status": 529, "error": "overloaded"}], events)
    assert events == [AgentEvent("raw", {"type": "api_retry", "attempt": 1, "status": 529, "error": "overloaded"})]
    with pytest.raises(AgentConfigError, match="403"):
        parse([{"type": "system", "subtype": "api_retry", "attempt": 1, "error_status": 403, "error": "forbidden"}])


# -- the real CLI against the fake ----------------------------------------------------------


@pytest.mark.slow
def test_workflow_task_writes_a_file_and_returns_validated_json(tmp_path, claude_bin):
    project = tmp_path / "project"
    project.mkdir()
    note = project / "note.txt"
    write = ToolCall("Write", {"file_path": str(note), "content": "written by claude\n"})
    with fake([Reply(text="I'll write the note.", tool_calls=[write]), FINAL]) as server:
        (project / "wf.py").write_text(textwrap.dedent(f"""
            from pydantic import BaseModel
            from smithers import Task, workflow
            from smithers.agents import ClaudeCode

            class Done(BaseModel):
                ok: bool

            agent = ClaudeCode(binary={claude_bin!r}, env={claude_env(server.url, tmp_path / "home")!r})

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
        first = server.requests[0]
    assert note.read_text() == "written by claude\n"
    assert "tool_use" in kinds and "tool_result" in kinds and "text" in kinds
    assert usage and usage[0]["payload"]["input_tokens"] > 0
    prompt = json.dumps(first["messages"])
    assert "Write note.txt, then report." in prompt and "JSON" in prompt, "the engine's prompt reached the model"
    assert any(tool["name"] == "StructuredOutput" for tool in first["tools"]), "--json-schema offers the StructuredOutput tool"


@pytest.mark.slow
def test_events_usage_session_and_resume(tmp_path, claude_bin):
    work = tmp_path / "work"
    work.mkdir()
    write = ToolCall("Write", {"file_path": str(work / "a.txt"), "content": "A"})
    steps = [Reply(tool_calls=[write], input_tokens=100, output_tokens=20), Reply(text=FINAL, input_tokens=150, output_tokens=30)]
    events: list[AgentEvent] = []
    with fake(steps) as server:
        agent = agent_for(server, tmp_path / "home", claude_bin, structured=False)
        result = asyncio.run(agent.run(request(work, events)))
        assert len(server.requests) == 2
        assert tool_results(server.requests[1])[0]["tool_use_id"] == next(e.data["id"] for e in events if e.kind == "tool_use")

        server.app.state.script.steps.append("Resumed.")
        again = asyncio.run(agent.run(request(work, prompt="And now?", resume_session_id=result.session_id)))
        resumed = server.requests[-1]
    by_kind = {e.kind: e.data for e in events}
    assert by_kind["tool_use"]["name"] == "Write" and by_kind["tool_use"]["input"] == {"file_path": str(work / "a.txt"), "content": "A"}
    assert by_kind["tool_result"]["id"] == by_kind["tool_use"]["id"] and by_kind["tool_result"]["is_error"] is False
    assert "File created" in by_kind["tool_result"]["output"]
    assert by_kind["text"]["text"] == FINAL
    assert result.text == FINAL and result.output is None
    assert result.usage["input_tokens"] == 250 and result.usage["output_tokens"] == 50
    assert result.usage["cache_read_tokens"] == 0 and result.usage["cost_usd"] > 0
    assert result.session_id and len(result.session_id) == 36 and result.model
    assert (work / "a.txt").read_text() == "A"
    assert again.text == "Resumed." and again.session_id == result.session_id
    history = json.dumps(resumed["messages"])
    assert by_kind["tool_use"]["id"] in history and "And now?" in history, "--resume continued the conversation"


@pytest.mark.slow
def test_structured_output_tool_fills_the_result_output(tmp_path, claude_bin):
    with fake([Reply(tool_calls=[ToolCall("StructuredOutput", {"ok": True})])]) as server:
        result = asyncio.run(agent_for(server, tmp_path / "home", claude_bin).run(request(tmp_path)))
        schema = next(t for t in server.requests[0]["tools"] if t["name"] == "StructuredOutput")["input_schema"]
    assert result.output == {"ok": True}
    assert schema["properties"] == SCHEMA["properties"]


@pytest.mark.slow
def test_401_is_a_configuration_error_at_once(tmp_path, claude_bin):
    with fake([Reply(status=401, error_message="invalid x-api-key")]) as server:
        with pytest.raises(AgentConfigError) as caught:
            asyncio.run(agent_for(server, tmp_path / "home", claude_bin).run(request(tmp_path)))
        requests = len(server.requests)
    assert requests < 4, f"Claude Code's own retries are cut short at the first 401: {requests} requests"
    assert "authenticate" in caught.value.message and "401" in caught.value.message
    assert "ANTHROPIC_API_KEY" in (caught.value.hint or "")


@pytest.mark.slow
def test_no_credentials_at_all_is_a_configuration_error(tmp_path, claude_bin):
    with fake(["unused"]) as server:
        agent = agent_for(server, tmp_path / "home", claude_bin)
        agent.env.update(ANTHROPIC_API_KEY="", ANTHROPIC_AUTH_TOKEN="")
        with pytest.raises(AgentConfigError) as caught:
            asyncio.run(agent.run(request(tmp_path)))
        assert server.requests == []
    assert "authenticate" in caught.value.message and "Not logged in" in caught.value.message


@pytest.mark.slow
def test_an_api_error_that_mentions_keys_is_not_an_auth_failure(tmp_path, claude_bin):
    with fake([Reply(status=400, error_message=NOT_AUTH_MESSAGE)]) as server, pytest.raises(AgentError) as caught:
        asyncio.run(agent_for(server, tmp_path / "home", claude_bin).run(request(tmp_path)))
    assert not isinstance(caught.value, AgentConfigError), caught.value.message
    assert NOT_AUTH_MESSAGE in caught.value.message


@pytest.mark.slow
def test_missing_binary_is_a_configuration_error():
    with pytest.raises(AgentConfigError) as caught:
        asyncio.run(ClaudeCode(binary="/nonexistent/claude").run(request(Path("."))))
    assert "/nonexistent/claude" in caught.value.message
    assert "npm install -g @anthropic-ai/claude-code" in (caught.value.hint or "")


# -- cancellation kills the CLI and everything it started ------------------------------------


@pytest.mark.slow
def test_cancel_while_waiting_for_the_model_kills_the_cli(tmp_path, claude_bin):
    asked, release = threading.Event(), threading.Event()

    def slow(body: dict) -> Reply:
        asked.set()
        release.wait(60)  # longer than cancel_when waits for the tree to go
        return Reply(text="too late")

    with fake([slow]) as server:
        try:
            agent = agent_for(server, tmp_path / "home", claude_bin)
            tree = asyncio.run(cancel_when(agent, request(tmp_path), lambda _tree: asked.is_set()))
        finally:
            release.set()
    assert tree and not alive(tree), f"still alive after cancel: {alive(tree)}"


@pytest.mark.slow
def test_cancel_during_a_tool_kills_its_processes_too(tmp_path, claude_bin):
    marker = f"smithers-claude-cancel-{os.getpid()}"
    command = f"{sys.executable} -c 'import time; time.sleep(60)' {marker}; echo finished"
    steps = [Reply(tool_calls=[ToolCall("Bash", {"command": command, "description": "wait"})]), "done"]

    def tool_running(tree: set[int]) -> bool:
        return any(marker in _cmdline(pid) and "echo finished" not in _cmdline(pid) for pid in tree)  # the python, not only its shell

    with fake(steps) as server:
        agent = agent_for(server, tmp_path / "home", claude_bin)
        tree = asyncio.run(cancel_when(agent, request(tmp_path), tool_running))
    assert len(tree) >= 3, "claude, the tool's shell and its python"
    assert not alive(tree), f"still alive after cancel: {[_cmdline(pid) for pid in alive(tree)]}"


