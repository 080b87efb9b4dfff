"""ModelAgent over real HTTP: pydantic-ai talking to the fake OpenAI / Anthropic servers from
smithers.testing.fakes, with smithers tools, MCP servers (stdio and streamable HTTP), structured
output, sessions for repair turns, error mapping, and a whole workflow run."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from smithers.agents import ModelAgent
from smithers.agents.base import AgentEvent, AgentRequest, AgentResult
from smithers.errors import AgentConfigError, AgentError
from smithers.testing.fakes import FakeServer, Reply, ToolCall
from smithers.testing.fakes.anthropic import anthropic_app, tool_results
from smithers.testing.fakes.openai import openai_app
from smithers.tools import bash, edit, read, tool, write


class Verdict(BaseModel):
    summary: str
    lines: int


SCHEMA = Verdict.model_json_schema()


def request_for(cwd: Path, events: list[AgentEvent] | None = None, **kwargs: Any) -> AgentRequest:
    return AgentRequest(
        prompt=kwargs.pop("prompt", "Summarize notes.txt."), output_schema=kwargs.pop("output_schema", SCHEMA), cwd=str(cwd),
        on_event=events.append if events is not None else None, run_id="run-1", node_id="summarize", **kwargs,
    )


def run(agent: ModelAgent, request: AgentRequest) -> AgentResult:
    return asyncio.run(agent.run(request))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("one\ntwo\nthree\n")
    return tmp_path


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


def serve(provider: str, script: list[Any]) -> FakeServer:
    return FakeServer(openai_app(script) if provider == "openai" else anthropic_app(script))


def agent_for(provider: str, server: FakeServer, **kwargs: Any) -> ModelAgent:
    base_url = server.url + "/v1" if provider == "openai" else server.url
    return ModelAgent(f"{provider}:fake-model", base_url=base_url, api_key="test-key", **kwargs)


def tool_outputs(provider: str, body: dict[str, Any]) -> dict[str, str]:
    """call id → the tool result text the client sent back to the model."""
    if provider == "openai":
        return {item["call_id"]: item["output"] for item in body.get("input", []) if item.get("type") == "function_call_output"}
    out = {}
    for block in tool_results(body):
        content = block["content"]
        out[block["tool_use_id"]] = content if isinstance(content, str) else "".join(c.get("text", "") for c in content)
    return out


# -- (a) a tool loop with smithers tools, then structured output --------------------------------


def test_tool_loop_then_structured_output(provider: str, project: Path) -> None:
    script = [
        Reply(text="Reading the notes.", tool_calls=[ToolCall("read", {"path": "notes.txt"}, id="call_read")]),
        Reply(tool_calls=[ToolCall("edit", {"path": "notes.txt", "old": "two", "new": "TWO"}, id="call_edit"),
                          ToolCall("read", {"path": "../outside.txt"}, id="call_escape")]),
        Reply(tool_calls=[ToolCall("final_result", {"summary": "three short lines", "lines": 3})], input_tokens=30, output_tokens=9),
    ]
    events: list[AgentEvent] = []
    with serve(provider, script) as server:
        agent = agent_for(provider, server, tools=[read, edit], instructions="Be brief.")
        result = run(agent, request_for(project, events))
        bodies = server.requests
    assert result.output == {"summary": "three short lines", "lines": 3}
    assert Verdict.model_validate(result.output).lines == 3
    assert result.text == "Reading the notes."
    assert result.usage["input_tokens"] == 12 + 12 + 30 and result.usage["output_tokens"] == 7 + 7 + 9
    assert result.session_id and result.model == "fake-model"
    assert (project / "notes.txt").read_text() == "one\nTWO\nthree\n"

    # what went over the wire: tools offered, results sent back (the escape refused, as an error)
    assert len(bodies) == 3
    first = json.dumps(bodies[0])
    assert '"read"' in first and '"edit"' in first and "final_result" in first and "Be brief." in first
    assert tool_outputs(provider, bodies[1]) == {"call_read": "one\ntwo\nthree\n"}
    outputs = tool_outputs(provider, bodies[2])
    assert outputs["call_edit"].startswith("edited notes.txt")
    assert "outside the tool root" in outputs["call_escape"]

    kinds = [e.kind for e in events]
    assert kinds[:5] == ["text", "tool_use", "tool_call_started", "tool_call_finished", "tool_result"]
    uses = [e.data for e in events if e.kind == "tool_use"]
    assert [u["name"] for u in uses] == ["read", "edit", "read"]
    assert uses[0] == {"id": "call_read", "name": "read", "input": {"path": "notes.txt"}}
    results = {e.data["id"]: e.data for e in events if e.kind == "tool_result"}
    assert results["call_read"]["is_error"] is False and results["call_read"]["output"] == "one\ntwo\nthree\n"
    assert results["call_escape"]["is_error"] is True
    finished = {e.data["call_id"]: e.data for e in events if e.kind == "tool_call_finished"}
    assert set(finished) == {"call_read", "call_edit", "call_escape"}
    assert finished["call_escape"]["is_error"] is True and finished["call_read"]["output_bytes"] == 14


def test_text_reply_is_returned_as_text(provider: str, project: Path) -> None:
    with serve(provider, ['Here you go: {"summary": "s", "lines": 1}']) as server:
        result = run(agent_for(provider, server), request_for(project))
    assert result.output is None
    assert result.text == 'Here you go: {"summary": "s", "lines": 1}'


def test_side_effect_tool_gets_the_same_idempotency_key_on_every_attempt(project: Path) -> None:
    keys: list[str] = []

    @tool(side_effects=True)
    def send_email(to: str, idempotency_key: str) -> str:
        """Send an email."""
        keys.append(idempotency_key)
        return "sent"

    script = [
        Reply(tool_calls=[ToolCall("send_email", {"to": "a@b.c"})]),
        Reply(tool_calls=[ToolCall("final_result", {"summary": "x", "lines": 1})]),
    ]
    for attempt in (1, 2):
        with serve("openai", script) as server:
            run(agent_for("openai", server, tools=[send_email]), request_for(project, attempt=attempt, iteration=4))
    assert keys == ["run-1:summarize:4", "run-1:summarize:4"]


def test_bash_tool_through_the_model(project: Path) -> None:
    script = [Reply(tool_calls=[ToolCall("bash", {"command": "wc -l < notes.txt"}, id="c1")]),
              Reply(tool_calls=[ToolCall("final_result", {"summary": "counted", "lines": 3})])]
    with serve("anthropic", script) as server:
        agent = agent_for("anthropic", server, tools=[bash], allow_network=True, tool_timeout=10)
        result = run(agent, request_for(project))
        assert tool_outputs("anthropic", server.requests[1]) == {"c1": "3\n"}
    assert result.output == {"summary": "counted", "lines": 3}


def test_tool_root_can_be_narrowed(project: Path) -> None:
    (project / "sub").mkdir()
    script = [Reply(tool_calls=[ToolCall("write", {"path": "out.txt", "content": "x"}, id="w"),
                                ToolCall("read", {"path": "../notes.txt"}, id="r")]),
              Reply(tool_calls=[ToolCall("final_result", {"summary": "ok", "lines": 0})])]
    with serve("openai", script) as server:
        run(agent_for("openai", server, tools=[read, write], root="sub"), request_for(project))
        outputs = tool_outputs("openai", server.requests[1])
    assert (project / "sub" / "out.txt").read_text() == "x"
    assert "outside the tool root" in outputs["r"]


# -- (b) MCP servers -----------------------------------------------------------------------------

MCP_SERVER = """
import sys
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("calc")


@server.tool()
def add(a: int, b: int) -> int:
    '''Add two integers.'''
    return a + b


@server.tool()
def fail() -> str:
    '''Always fails.'''
    raise ToolError("the calculator is on fire")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        import uvicorn
        uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    else:
        server.run()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mcp_script(tmp_path: Path) -> Path:
    path = tmp_path / "calc_server.py"
    path.write_text(textwrap.dedent(MCP_SERVER))
    return path


@pytest.fixture
def mcp_http_url(mcp_script: Path, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "mcp-http.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, str(mcp_script), str(port)], stdout=sink, stderr=sink, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"MCP server did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _mcp_script_steps() -> list[Reply]:
    return [
        Reply(tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="call_add"), ToolCall("fail", {}, id="call_fail")]),
        Reply(tool_calls=[ToolCall("final_result", {"summary": "2+3", "lines": 5})]),
    ]


def _check_mcp_run(provider: str, result: AgentResult, bodies: list[dict[str, Any]], events: list[AgentEvent]) -> None:
    assert result.output == {"summary": "2+3", "lines": 5}
    assert '"add"' in json.dumps(bodies[0])  # the MCP tool was offered to the model
    outputs = tool_outputs(provider, bodies[1])
    assert outputs["call_add"] == "5"
    assert "on fire" in outputs["call_fail"]
    finished = {e.data["call_id"]: e.data for e in events if e.kind == "tool_call_finished"}
    assert finished["call_add"]["tool"] == "add" and finished["call_add"]["is_error"] is False
    assert finished["call_fail"]["is_error"] is True
    started = [e.data for e in events if e.kind == "tool_call_started"]
    assert {"tool": "add", "call_id": "call_add", "input": {"a": 2, "b": 3}} in started


def test_mcp_stdio_server(provider: str, project: Path, mcp_script: Path) -> None:
    events: list[AgentEvent] = []
    with serve(provider, _mcp_script_steps()) as server:
        agent = agent_for(provider, server, mcp_servers=[{"command": sys.executable, "args": [str(mcp_script)]}])
        result = run(agent, request_for(project, events))
        _check_mcp_run(provider, result, server.requests, events)


def test_mcp_streamable_http_server(project: Path, mcp_http_url: str) -> None:
    events: list[AgentEvent] = []
    with serve("openai", _mcp_script_steps()) as server:
        agent = agent_for("openai", server, tools=[read], mcp_servers=[mcp_http_url])
        result = run(agent, request_for(project, events))
        _check_mcp_run("openai", result, server.requests, events)
        assert '"read"' in json.dumps(server.requests[0])  # our tools sit next to the MCP ones


# -- (c) structured output and sessions --------------------------------------------------------


def test_follow_up_turn_continues_the_session(provider: str, project: Path) -> None:
    script = [
        Reply(tool_calls=[ToolCall("final_result", {"summary": "s", "lines": "many"})]),  # does not validate
        Reply(tool_calls=[ToolCall("final_result", {"summary": "s", "lines": 3})]),
    ]
    with serve(provider, script) as server:
        agent = agent_for(provider, server)
        first = run(agent, request_for(project))
        with pytest.raises(ValueError):
            Verdict.model_validate(first.output)
        second = run(agent, request_for(project, prompt="lines must be an integer; reply again", resume_session_id=first.session_id))
        repair_body = json.dumps(server.requests[1])
    assert second.session_id == first.session_id
    assert Verdict.model_validate(second.output) == Verdict(summary="s", lines=3)
    # the repair request carries the whole conversation: the task prompt and the first answer
    assert "Summarize notes.txt." in repair_body and "many" in repair_body and "reply again" in repair_body


def test_unknown_session_starts_fresh(project: Path) -> None:
    with serve("openai", ['{"summary": "s", "lines": 1}']) as server:
        result = run(agent_for("openai", server), request_for(project, resume_session_id="gone"))
        assert "Summarize" in json.dumps(server.requests[0])
    assert result.session_id == "gone"


# -- (e) errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_config_errors(provider: str, project: Path, status: int) -> None:
    with serve(provider, [Reply(status=status, error_message="invalid api key")]) as server, pytest.raises(AgentConfigError) as info:
        run(agent_for(provider, server), request_for(project))
    assert info.value.retryable is False
    assert str(status) in info.value.message
    assert "api_key" in (info.value.hint or "") and provider.upper() + "_API_KEY" in (info.value.hint or "")


def test_unknown_model_is_a_config_error(provider: str, project: Path) -> None:
    with serve(provider, [Reply(status=404, error_message="The model `nope` does not exist")]) as server, \
            pytest.raises(AgentConfigError, match="unknown model"):
        run(agent_for(provider, server), request_for(project))


def test_bad_request_is_a_retryable_agent_error(project: Path) -> None:
    with serve("anthropic", [Reply(status=400, error_message="bad thing")]) as server, pytest.raises(AgentError) as info:
        run(agent_for("anthropic", server), request_for(project))
    assert not isinstance(info.value, AgentConfigError) and info.value.retryable


def test_configuration_errors_before_any_request(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AgentConfigError, match="provider:model"):
        ModelAgent("gpt-5")
    with pytest.raises(AgentConfigError, match="unknown model provider 'nope'"):
        run(ModelAgent("nope:model"), request_for(project))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AgentConfigError) as info:
        run(ModelAgent("openai:gpt-5"), request_for(project))
    assert "OPENAI_API_KEY" in str(info.value)
    with pytest.raises(AgentConfigError, match="not a directory"):
        run(ModelAgent("openai:gpt-5", api_key="k", root="missing"), request_for(project))


def test_request_timeout_is_an_agent_error(project: Path) -> None:
    release, answered = threading.Event(), threading.Event()

    def slow(body: dict[str, Any]) -> Reply:
        release.wait(30)  # the reply comes only after the test has seen the agent give up
        answered.set()
        return Reply(text="late")

    with serve("anthropic", [slow]) as server:
        try:
            with pytest.raises(AgentError, match=r"timed out after 0\.3s"):
                run(agent_for("anthropic", server), request_for(project, timeout=0.3))
            assert not answered.is_set(), "the agent gave up before the model answered"
        finally:
            release.set()


# -- (d) a workflow with a ModelAgent task, end to end ------------------------------------------

WORKFLOW = """
from pydantic import BaseModel

from smithers import Sequence, Task, workflow
from smithers.agents import ModelAgent
from smithers.tools import read


class Verdict(BaseModel):
    summary: str
    lines: int


agent = ModelAgent("openai:fake-model", tools=[read], base_url="{base_url}", api_key="test-key")


@workflow
def summarize(ctx):
    return Sequence(Task("summarize", output=Verdict, agent=agent, prompt="Summarize notes.txt."))
"""


def test_workflow_runs_a_model_agent_task(project: Path) -> None:
    from smithers.ops import start_run
    from smithers.storage.store import Store

    script = [
        Reply(text="Let me look.", tool_calls=[ToolCall("read", {"path": "notes.txt"}, id="call_read")]),
        Reply(tool_calls=[ToolCall("final_result", {"summary": "three lines", "lines": "three"})]),  # invalid: repair turn
        Reply(tool_calls=[ToolCall("final_result", {"summary": "three lines", "lines": 3})]),
    ]
    with serve("openai", script) as server:
        (project / "wf.py").write_text(textwrap.dedent(WORKFLOW).replace("{base_url}", server.url + "/v1"))
        store = Store.open(project / "smithers.db")
        try:
            outcome = start_run(str(project / "wf.py"), store=store, raw_input=None)
            assert outcome.status == "finished", outcome
            events = store.events(outcome.run_id)
            rows = store.read_output_rows("verdict", outcome.run_id, "summarize")
        finally:
            store.close()
        bodies = server.requests
    assert len(bodies) == 3
    assert rows and rows[0]["summary"] == "three lines" and rows[0]["lines"] == 3
    repair = json.dumps(bodies[2])  # the repair turn continued the session: the tool exchange is in it
    assert "function_call_output" in repair and "one\\ntwo\\nthree" in repair
    types = [e["type"] for e in events]
    assert "ToolCallStarted" in types and "ToolCallFinished" in types
    started = next(e for e in events if e["type"] == "ToolCallStarted")
    assert started["payload"]["tool"] == "read" and started["payload"]["call_id"] == "call_read"
    kinds = [e["payload"].get("kind") for e in events if e["type"] == "AgentEvent"]
    assert "tool_use" in kinds and "tool_result" in kinds and "text" in kinds


# -- extra unit tests with pydantic-ai's FunctionModel (no HTTP) ------------------------------


def test_model_instances_plain_functions_and_pydantic_ai_toolsets(project: Path) -> None:
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.toolsets import FunctionToolset

    def shout(text: str) -> str:
        """Upper-case some text."""
        return text.upper()

    theirs = FunctionToolset()

    @theirs.tool_plain
    def double(n: int) -> int:
        return 2 * n

    def model(messages: list[Any], info: AgentInfo) -> ModelResponse:
        assert {t.name for t in info.function_tools} == {"shout", "double"}
        if len(messages) == 1:
            return ModelResponse(parts=[TextPart("working"), ToolCallPart("shout", {"text": "hi"}, tool_call_id="s"),
                                        ToolCallPart("double", {"n": 21}, tool_call_id="d")])
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"summary": "HI", "lines": 42})])

    events: list[AgentEvent] = []
    agent = ModelAgent(FunctionModel(model), tools=[shout, theirs])
    result = run(agent, request_for(project, events))
    assert result.output == {"summary": "HI", "lines": 42}
    assert agent.name.startswith("model:")
    results = {e.data["id"]: e.data["output"] for e in events if e.kind == "tool_result"}
    assert results == {"s": "HI", "d": "42"}
    finished = {e.data["call_id"]: e.data["tool"] for e in events if e.kind == "tool_call_finished"}
    assert finished == {"s": "shout", "d": "double"}


def test_request_limit_is_an_agent_error(project: Path) -> None:
    from pydantic_ai.messages import ModelResponse, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def loop_forever(messages: list[Any], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[ToolCallPart("read", {"path": "notes.txt"})])

    agent = ModelAgent(FunctionModel(loop_forever), tools=[read], max_requests=3)
    with pytest.raises(AgentError, match="max_requests"):
        run(agent, request_for(project))


def test_missing_models_extra_is_a_config_error_with_the_install_hint(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import asyncio, sys
        sys.modules["pydantic_ai"] = None  # as if the [models] extra were not installed
        from smithers.agents import ModelAgent
        from smithers.agents.base import AgentRequest
        from smithers.errors import AgentConfigError
        try:
            asyncio.run(ModelAgent("openai:gpt-5").run(AgentRequest(prompt="p", output_schema={}, cwd=".")))
        except AgentConfigError as err:
            print(err.hint)
    """)
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "smithers-orchestrator[models]" in done.stdout
