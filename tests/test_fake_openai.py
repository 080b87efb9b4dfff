"""The fake OpenAI server over real HTTP, driven by the official ``openai`` SDK: Responses
(streamed and not), function calls, API errors, Chat Completions."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from smithers.testing.fakes import (
    FakeServer,
    Reply,
    Script,
    ToolCall,
    codex_shell,
    openai_app,
)


def client(server: FakeServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-fake", max_retries=0)


def test_responses_non_streaming_text_and_usage():
    script = Script([Reply(text="hello there", input_tokens=30, output_tokens=4)])
    with FakeServer(openai_app(script)) as server, client(server) as api:
        response = api.responses.create(model="fake-model", input="say hello", instructions="be brief")
    assert response.output_text == "hello there"
    assert response.status == "completed" and response.model == "fake-model"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (30, 4, 34)
    assert server.requests == script.requests
    assert script.requests[0]["input"] == "say hello" and script.requests[0]["instructions"] == "be brief"


def test_responses_streaming_events_in_order():
    long_text = "x" * 100  # several deltas
    with FakeServer(openai_app([Reply(text=long_text, input_tokens=5, output_tokens=9)])) as server, client(server) as api:
        events = list(api.responses.create(model="fake-model", input="go", stream=True))
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    for expected in ("response.output_item.added", "response.output_text.delta", "response.output_item.done"):
        assert expected in kinds
    assert kinds.index("response.output_item.added") < kinds.index("response.output_text.delta") < kinds.index("response.output_item.done")
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == long_text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == long_text and final.usage.output_tokens == 9


def test_responses_stream_helper_collects_the_final_response():
    with (
        FakeServer(openai_app(['{"ok": true}'])) as server,
        client(server) as api,
        api.responses.stream(model="fake-model", input="go") as stream,
    ):
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert json.loads(final.output_text) == {"ok": True}


@pytest.mark.parametrize("stream", [False, True])
def test_function_calls(stream):
    reply = Reply(text="let me check", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1"), codex_shell("ls")])
    with FakeServer(openai_app([reply, "sunny"])) as server, client(server) as api:
        if stream:
            events = list(api.responses.create(model="m", input="weather?", stream=True))
            response = events[-1].response
            assert "response.function_call_arguments.delta" in [e.type for e in events]
        else:
            response = api.responses.create(model="m", input="weather?")
        calls = [item for item in response.output if item.type == "function_call"]
        assert [c.name for c in calls] == ["get_weather", "exec_command"]
        assert calls[0].call_id == "call_1" and json.loads(calls[0].arguments) == {"city": "Paris"}
        assert json.loads(calls[1].arguments) == {"cmd": "ls"} and calls[1].call_id
        assert response.output[0].type == "message" and response.output_text == "let me check"
        follow_up = api.responses.create(
            model="m", input=[{"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"}],
        )
    assert follow_up.output_text == "sunny"
    assert server.requests[1]["input"][0]["type"] == "function_call_output"


@pytest.mark.parametrize(("status", "error"), [
    (401, openai.AuthenticationError), (403, openai.PermissionDeniedError), (429, openai.RateLimitError),
    (500, openai.InternalServerError),
])
@pytest.mark.parametrize("stream", [False, True])
def test_errors_use_the_status_and_an_openai_error_body(status, error, stream):
    with (
        FakeServer(openai_app([Reply(status=status, error_message="Incorrect API key provided")])) as server,
        client(server) as api,
        pytest.raises(error) as caught,
    ):
        result = api.responses.create(model="m", input="hi", stream=stream)
        if stream:
            list(result)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["message"] == "Incorrect API key provided"
    if status == 401:
        assert caught.value.body["code"] == "invalid_api_key"


def test_script_steps_can_be_functions_of_the_request_and_the_last_step_repeats():
    def echo(body):
        return Reply(text=f"you said {body['input']}")

    with FakeServer(openai_app([echo])) as server, client(server) as api:
        texts = [api.responses.create(model="m", input=word).output_text for word in ("a", "b")]
    assert texts == ["you said a", "you said b"]
    assert len(server.requests) == 2


def test_chat_completions_non_streaming_and_streaming():
    script = Script([
        Reply(text="hi!", input_tokens=3, output_tokens=2),
        Reply(text="streamed text that is longer than one chunk of forty characters"),
        Reply(tool_calls=[ToolCall("lookup", {"q": "x"}, id="call_9")]),
    ])
    with FakeServer(openai_app(script)) as server, client(server) as api:
        done = api.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content == "hi!" and done.usage.total_tokens == 5
        chunks = list(api.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True},
        ))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == script.steps[1].text
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
        tools = api.chat.completions.create(model="m", messages=[{"role": "user", "content": "look"}])
    call = tools.choices[0].message.tool_calls[0]
    assert tools.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_9", "lookup", {"q": "x"})


def test_models_list_and_unknown_routes():
    with FakeServer(openai_app(["x"])) as server:
        with client(server) as api:
            assert [m.id for m in api.models.list()] == ["fake-model"]
        missing = httpx.post(server.url + "/v1/embeddings", json={})
    assert missing.status_code == 404 and "error" in missing.json()
    assert server.requests == []
