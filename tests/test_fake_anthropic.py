"""The fake Anthropic Messages server, over real HTTP with the official ``anthropic`` SDK:
streamed and plain replies, tool calls, usage, error statuses and the request log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anthropic
import httpx
import pytest

from smithers.testing.fakes import FakeServer, Reply, Script, ToolCall, anthropic_app
from smithers.testing.fakes.anthropic import tool_results

MODEL = "claude-fake-1"
HELLO = [{"role": "user", "content": "hello"}]


@contextmanager
def serve(steps: list) -> Iterator[tuple[FakeServer, anthropic.Anthropic]]:
    with FakeServer(anthropic_app(steps)) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="sk-fake", max_retries=0, timeout=10)
        try:
            yield server, client
        finally:
            client.close()


def test_plain_json_reply_with_text_and_usage():
    with serve([Reply(text="Hi there", input_tokens=30, output_tokens=4)]) as (server, client):
        message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Hi there"
    assert message.stop_reason == "end_turn" and message.model == MODEL and message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (30, 4)
    assert server.requests == [{"model": MODEL, "max_tokens": 100, "messages": HELLO}]


def test_streamed_reply_reassembles_and_reports_usage():
    text = "A longer answer, so that it arrives in several text_delta chunks. " * 3
    with (
        serve([Reply(text=text, input_tokens=50, output_tokens=21)]) as (_, client),
        client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream,
    ):
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert message.content[0].text == text
    assert kinds.count("text") > 2, "text is streamed in several deltas"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (50, 21)
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_tool_calls_become_tool_use_blocks(stream):
    calls = [ToolCall("Write", {"file_path": "/w/a.txt", "content": "hi"}), ToolCall("Read", {"file_path": "/w/b"}, id="toolu_fixed")]
    with serve([Reply(text="Writing it.", tool_calls=calls)]) as (_, client):
        if stream:
            with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    first, second = message.content[1], message.content[2]
    assert first.name == "Write" and first.input == {"file_path": "/w/a.txt", "content": "hi"}
    assert first.id.startswith("toolu_01") and len(first.id) > 20
    assert second.id == "toolu_fixed" and second.input == {"file_path": "/w/b"}
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(("status", "error", "error_type"), [
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (529, anthropic.InternalServerError, "overloaded_error"),
])
def test_error_status_gives_an_anthropic_error_body(status, error, error_type):
    with serve([Reply(status=status, error_message="nope")]) as (_, client), pytest.raises(error) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.status_code == status
    assert caught.value.body == {"type": "error", "error": {"type": error_type, "message": "nope"}}


def test_script_steps_run_in_order_and_the_last_repeats():
    seen: list[int] = []

    def by_request(body: dict) -> Reply:
        seen.append(len(body["messages"]))
        return Reply(text=f"saw {len(body['messages'])} messages")

    with serve(["first", by_request]) as (server, client):
        texts = [client.messages.create(model=MODEL, max_tokens=10, messages=HELLO * n).content[0].text for n in (1, 2, 3)]
    assert texts == ["first", "saw 2 messages", "saw 3 messages"]
    assert seen == [2, 3] and len(server.requests) == 3


def test_other_routes():
    app = anthropic_app(Script(["unused"]))
    with FakeServer(app) as server:
        assert httpx.head(server.url + "/").status_code == 404
        assert httpx.get(server.url + "/v1/models").status_code == 404
        assert httpx.get(server.url + "/v1/messages").status_code == 405
        counted = httpx.post(server.url + "/v1/messages/count_tokens", json={"model": MODEL, "messages": HELLO})
        assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
        bad = httpx.post(server.url + "/v1/messages", content=b"not json")
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        assert server.requests == [], "count_tokens and bad requests do not use the script"
    assert app.state.script.requests == []


def test_tool_results_scans_every_message():
    body = {"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        {"role": "system", "content": "a reminder Claude Code appends after the user turn"},
    ]}
    assert tool_results(body) == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]
