"""The Codex adapter, driving the real ``codex`` binary (installed by scripts/install-agents)
against the fake OpenAI Responses server on 127.0.0.1: a workflow task that runs a shell command
and returns validated JSON, events, usage and sessions, the sandbox, a 401, cancellation that
kills the whole process tree, and a missing binary. Plus the strict-schema rewrite."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import tempfile
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from proctree import _cmdline, alive, cancel_when
from pydantic import BaseModel

from smithers import ops
from smithers.agents import AgentEvent, AgentRequest, Codex
from smithers.agents.cli import ParseState
from smithers.agents.codex import drop_optional_nulls, strict_json_schema
from smithers.errors import AgentConfigError, AgentError
from smithers.storage.store import Store
from smithers.testing.cli_env import codex_env
from smithers.testing.fakes import FakeServer, Reply, codex_shell, openai_app

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


# an API error that is not about credentials, though its words mention keys, 401 and access
NOT_AUTH_MESSAGE = "unsupported parameter: this request mentions an API key, a 401 and unauthorized access"


@pytest.fixture(scope="module")
def codex_bin() -> str:
    path = AGENTS_BIN / "codex"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the codex CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


@pytest.fixture
def codex_home() -> Iterator[Path]:
    """A HOME outside /tmp: codex will not set up its sandbox helpers under a temp directory."""
    root = Path.home() / ".cache" / "smithers-tests"
    root.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="codex-home-", dir=root))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def after_tool(command: str, final: str, **usage: int):
    """A fake model that runs ``command`` with codex's shell tool, then answers ``final``."""

    def step(body: dict) -> Reply:
        last = body["input"][-1] if isinstance(body.get("input"), list) else {}
        if last.get("type") == "function_call_output":
            return Reply(text=final, **usage)
        return Reply(tool_calls=[codex_shell(command)], **usage)

    return step


def request(cwd: Path, events: list[AgentEvent] | None = None, **fields) -> AgentRequest:
    fields.setdefault("output_schema", SCHEMA)
    on_event = events.append if events is not None else None
    return AgentRequest(prompt=fields.pop("prompt", "Do the task."), cwd=str(cwd), on_event=on_event, **fields)


# -- the command line and the strict schema (no binary needed) ------------------------------


def test_argv_maps_the_options():
    agent = Codex(model="gpt-5", system_prompt='Be "brief".', config={"model_reasoning_effort": "high", "n": 2}, extra_args=["--ephemeral"])
    argv = agent.build_argv("codex", request(Path("."), prompt="-starts with a dash"))
    assert argv[:4] == ["codex", "exec", "--json", "--skip-git-repo-check"]
    assert argv[argv.index("-m") + 1] == "gpt-5"
    assert "--dangerously-bypass-approvals-and-sandbox" in argv
    assert 'developer_instructions="Be \\"brief\\"."' in argv
    assert 'model_reasoning_effort="high"' in argv and "n=2" in argv
    assert argv[-3:] == ["--ephemeral", "--", "-starts with a dash"]

    resumed = Codex(permission="accept-edits").build_argv("codex", request(Path("."), resume_session_id="t-1"))
    assert resumed[:3] == ["codex", "exec", "resume"]
    assert 'sandbox_mode="workspace-write"' in resumed and "--dangerously-bypass-approvals-and-sandbox" not in resumed
    assert resumed[-3:] == ["--", "t-1", "Do the task."]
    plain = Codex(permission="default").build_argv("codex", request(Path(".")))
    assert not any("sandbox" in arg for arg in plain)
    assert 'sandbox_mode="read-only"' in Codex(sandbox="read-only").build_argv("codex", request(Path(".")))
    with pytest.raises(AgentConfigError):
        Codex(sandbox="everything")


class Item(BaseModel):
    name: str
    size: int = 0


class Report(BaseModel):
    summary: str
    level: int = 3
    note: str | None = "n/a"
    items: list[Item] = []
    tag: Item | None = None


def test_strict_schema_closes_objects_and_makes_optional_fields_nullable():
    strict = strict_json_schema(Report.model_json_schema())
    assert strict is not None

    def check(node):
        if isinstance(node, dict):
            assert "default" not in node
            if node.get("type") == "object":
                assert node["additionalProperties"] is False
                assert sorted(node["required"]) == sorted(node["properties"])
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    check(strict)
    assert {"type": "null"} in strict["properties"]["level"]["anyOf"]
    assert strict["properties"]["summary"] == {"title": "Summary", "type": "string"}
    assert strict["$defs"]["Item"]["required"] == ["name", "size"]

    class Free(BaseModel):
        labels: dict[str, int]

    assert strict_json_schema(Free.model_json_schema()) is None, "dict fields cannot be strict"


def test_nulls_forced_on_optional_fields_are_dropped_so_defaults_apply():
    schema = Report.model_json_schema()
    raw = {"summary": "s", "level": None, "note": None, "items": [{"name": "a", "size": None}], "tag": None}
    cleaned = drop_optional_nulls(raw, schema)
    assert cleaned == {"summary": "s", "note": None, "items": [{"name": "a"}], "tag": None}
    assert Report.model_validate(cleaned) == Report(summary="s", note=None, items=[Item(name="a")])


def test_parse_line_events_warnings_and_fail_fast_auth():
    agent, state, events = Codex(), ParseState(), []
    req = request(Path("."), events)
    lines = [
        {"type": "thread.started", "thread_id": "t-9"},
        {"type": "item.completed", "item": {"id": "item_0", "type": "error", "message": "Model metadata for `m` not found."}},
        {"type": "turn.started"},
        {"type": "item.started", "item": {
            "id": "item_1", "type": "command_execution", "command": "ls", "exit_code": None, "status": "in_progress",
        }},
        {"type": "item.completed", "item": {
            "id": "item_1", "type": "command_execution", "command": "ls", "aggregated_output": "a\n", "exit_code": 2, "status": "failed",
        }},
        {"type": "item.completed", "item": {
            "id": "item_2", "type": "file_change", "changes": [{"path": "a.py", "kind": "add"}], "status": "completed",
        }},
        {"type": "item.completed", "item": {"id": "item_3", "type": "agent_message", "text": "first"}},
        {"type": "item.completed", "item": {"id": "item_4", "type": "agent_message", "text": '{"ok": true}'}},
        {"type": "turn.completed", "usage": {"input_tokens": 100, "cached_input_tokens": 40, "output_tokens": 9}},
    ]
    for line in lines:
        agent.parse_line(json.dumps(line), state, req)
    agent.parse_line("Reading additional input from stdin...", state, req)  # noise is ignored
    assert state.session_id == "t-9" and state.text == '{"ok": true}' and state.error is None
    assert (state.usage.input_tokens, state.usage.cache_read_tokens, state.usage.output_tokens) == (60, 40, 9)
    kinds = [(e.kind, e.data.get("name") or e.data.get("id")) for e in events]
    assert kinds[:5] == [
        ("error", None), ("tool_use", "shell"), ("tool_result", "item_1"), ("tool_use", "file_change"), ("tool_result", "item_2"),
    ]
    result = next(e.data for e in events if e.kind == "tool_result")
    assert result["exit_code"] == 2 and result["is_error"] is True and result["output"] == "a\n"
    assert events[0].data["fatal"] is False

    agent.parse_line(json.dumps({"type": "turn.failed", "error": {"message": "boom"}}), state, req)
    assert state.error == "boom"
    with pytest.raises(AgentConfigError):
        reconnecting = {"type": "error", "message": "Reconnecting... 1/5 (unexpected status 401 Unauthorized: bad key)"}
        agent.parse_line(json.dumps(reconnecting), state, req)


# -- the real CLI against the fake ----------------------------------------------------------


@pytest.mark.slow
def test_workflow_task_runs_a_command_and_returns_validated_json(tmp_path, codex_bin, codex_home):
    project = tmp_path / "project"
    project.mkdir()
    final = json.dumps(
        {"summary": "wrote hello.txt", "level": None, "note": None, "items": [{"name": "hello.txt", "size": None}], "tag": None}
    )
    with FakeServer(openai_app([after_tool("echo written by codex > hello.txt", final)])) as server:
        (project / "wf.py").write_text(textwrap.dedent(f"""
            from pydantic import BaseModel
            from smithers import Task, workflow
            from smithers.agents import Codex

            class Item(BaseModel):
                name: str
                size: int = 0

            class Report(BaseModel):
                summary: str
                level: int = 3
                note: str | None = "n/a"
                items: list[Item] = []
                tag: Item | None = None

            agent = Codex(binary={codex_bin!r}, env={codex_env(server.url, codex_home)!r})

            @workflow
            def wf(ctx):
                return Task("write", output=Report, agent=agent, prompt="Write hello.txt, then report.", retries=0)
        """))
        store = Store.open(project / "smithers.db")
        try:
            outcome = ops.start_run(str(project / "wf.py"), store=store, raw_input={})
            assert outcome.status == "finished", outcome.error
            rows = sqlite3.connect(store.path).execute("select summary, level, note, items from report").fetchall()
            agent_events = [e["payload"] for e in store.events(outcome.run_id, type_prefix="AgentEvent")]
            usage = store.events(outcome.run_id, type_prefix="TokenUsageReported")
            meta = json.loads(store.attempts(outcome.run_id)[0]["meta_json"])
        finally:
            store.close()
        first = server.requests[0]
    assert (project / "hello.txt").read_text() == "written by codex\n", "the command ran in the task's cwd"
    assert len(rows) == 1 and rows[0][:3] == ("wrote hello.txt", 3, None), "null for a non-nullable optional field → its default"
    assert json.loads(rows[0][3]) == [{"name": "hello.txt", "size": 0}]
    kinds = [e["kind"] for e in agent_events]
    assert "tool_use" in kinds and "tool_result" in kinds and "text" in kinds
    tool_result = next(e["data"] for e in agent_events if e["kind"] == "tool_result")
    assert tool_result["exit_code"] == 0 and tool_result["is_error"] is False
    assert usage and usage[0]["payload"]["input_tokens"] == 24 and usage[0]["payload"]["output_tokens"] == 14
    assert meta["agent"] == "codex" and meta["session_id"] and meta["turns"] == 1
    schema = first["text"]["format"]
    assert schema["type"] == "json_schema" and schema["strict"] is True, "--output-schema reached the model"
    assert schema["schema"]["additionalProperties"] is False
    assert sorted(schema["schema"]["required"]) == ["items", "level", "note", "summary", "tag"]
    assert "Write hello.txt, then report." in json.dumps(first["input"])


@pytest.mark.slow
@pytest.mark.parametrize("permission", ["bypass", "accept-edits"])
def test_events_usage_session_and_resume(tmp_path, codex_bin, codex_home, permission):
    work = tmp_path / "work"  # under /tmp: fine for the cwd, even in the workspace-write sandbox
    work.mkdir()
    events: list[AgentEvent] = []
    with FakeServer(openai_app([after_tool("echo one >> log.txt", '{"ok": true}', input_tokens=50, output_tokens=5)])) as server:
        agent = Codex(binary=codex_bin, env=codex_env(server.url, codex_home), permission=permission)
        result = asyncio.run(agent.run(request(work, events)))
        again = asyncio.run(agent.run(request(work, prompt="Once more.", resume_session_id=result.session_id)))
        resumed = server.requests[-1]
    uses = [e.data for e in events if e.kind == "tool_use"]
    results = [e.data for e in events if e.kind == "tool_result"]
    assert len(uses) == 1 and uses[0]["name"] == "shell" and "echo one >> log.txt" in uses[0]["input"]["command"]
    assert results[0]["id"] == uses[0]["id"] and results[0]["exit_code"] == 0 and results[0]["is_error"] is False
    assert any(e.kind == "text" and e.data["text"] == '{"ok": true}' for e in events)
    assert any(e.kind == "error" and "Model metadata" in e.data["message"] and e.data["fatal"] is False for e in events)
    assert result.text == '{"ok": true}' and result.output == {"ok": True}
    assert result.usage == {"input_tokens": 100, "output_tokens": 10, "cache_read_tokens": 0, "cache_write_tokens": 0}
    assert result.session_id and len(result.session_id) == 36 and result.model is None
    assert (work / "log.txt").read_text() == "one\none\n", "both turns ran the command"
    assert again.session_id == result.session_id and again.output == {"ok": True}
    assert again.usage["input_tokens"] == 100, "codex reports the thread's total; the adapter reports this turn's"
    history = json.dumps(resumed["input"])
    assert "Do the task." in history and "Once more." in history, "exec resume continued the thread"


@pytest.mark.slow
def test_401_is_a_configuration_error(tmp_path, codex_bin, codex_home):
    with FakeServer(openai_app([Reply(status=401, error_message="Incorrect API key provided: sk-fake")])) as server:
        env = codex_env(server.url, codex_home)
        with pytest.raises(AgentConfigError) as caught:
            asyncio.run(Codex(binary=codex_bin, env=env).run(request(tmp_path)))
        # with codex's default 5 stream retries the first "Reconnecting… 401" ends the run
        (codex_home / ".codex" / "config.toml").write_text(
            (codex_home / ".codex" / "config.toml").read_text().replace("stream_max_retries = 0", "stream_max_retries = 5")
        )
        with pytest.raises(AgentConfigError):
            asyncio.run(Codex(binary=codex_bin, env=env).run(request(tmp_path)))
        requests = len(server.requests)
    assert requests < 4, f"codex's own stream retries are cut short at the first 401 (one request per run): {requests} requests"
    assert "authenticate" in caught.value.message and "401" in caught.value.message
    assert "API key" in (caught.value.hint or "")


@pytest.mark.slow
def test_an_api_error_that_mentions_keys_is_not_an_auth_failure(tmp_path, codex_bin, codex_home):
    with FakeServer(openai_app([Reply(status=400, error_message=NOT_AUTH_MESSAGE)])) as server, pytest.raises(AgentError) as caught:
        asyncio.run(Codex(binary=codex_bin, env=codex_env(server.url, codex_home)).run(request(tmp_path)))
    assert not isinstance(caught.value, AgentConfigError), caught.value.message
    assert NOT_AUTH_MESSAGE in caught.value.message


@pytest.mark.slow
def test_missing_binary_is_a_configuration_error():
    for binary in ("/nonexistent/codex", f"codex-not-installed-{uuid.uuid4().hex[:6]}"):
        with pytest.raises(AgentConfigError) as caught:
            asyncio.run(Codex(binary=binary).run(request(Path("."))))
        assert "npm install -g @openai/codex" in (caught.value.hint or "")
        assert not caught.value.retryable


# -- cancellation kills the CLI and everything it started ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("permission", ["bypass", "accept-edits"])
def test_cancel_during_a_command_kills_codex_and_the_command(tmp_path, codex_bin, codex_home, permission):
    marker = f"{300 + os.getpid() % 1000}.{uuid.uuid4().int % 1000:03d}"
    command = f"sleep {marker} | cat"  # a pipeline: codex's shell session, its bash, sleep and cat

    def running(tree: set[int]) -> bool:
        return any(_cmdline(pid).startswith(f"sleep {marker}") for pid in tree)

    with FakeServer(openai_app([after_tool(command, '{"ok": true}')])) as server:
        agent = Codex(binary=codex_bin, env=codex_env(server.url, codex_home), permission=permission)
        tree = asyncio.run(cancel_when(agent, request(tmp_path), running))
    assert len(tree) >= 4, "node launcher, codex, the command's shell, sleep"
    leftovers = alive(tree)
    assert not leftovers, f"still alive after cancel: {[_cmdline(pid) for pid in leftovers]}"


@pytest.mark.slow
def test_cancel_while_waiting_for_the_model_kills_codex(tmp_path, codex_bin, codex_home):
    asked, release = threading.Event(), threading.Event()

    def slow(body: dict) -> Reply:
        asked.set()
        release.wait(60)  # longer than cancel_when waits for the tree to go
        return Reply(text="too late")

    with FakeServer(openai_app([slow])) as server:
        try:
            agent = Codex(binary=codex_bin, env=codex_env(server.url, codex_home))
            tree = asyncio.run(cancel_when(agent, request(tmp_path), lambda _tree: asked.is_set()))
        finally:
            release.set()
    assert tree and not alive(tree), f"still alive after cancel: {alive(tree)}"
