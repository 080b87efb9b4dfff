"""The fake Gemini API over real HTTP, driven by the official ``google-genai`` SDK: text, SSE
streaming, function calls, usage, errors, and the gemini CLI's utility calls kept off the script."""

from __future__ import annotations

import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

from smithers.testing.fakes import (
    FakeServer,
    Reply,
    Script,
    ToolCall,
    gemini_app,
    gemini_shell,
)

CLI_AGENT = "GeminiCLI/0.61.0/gemini-3.1-pro-preview (linux; x64; terminal)"


def client(server: FakeServer) -> genai.Client:
    return genai.Client(api_key="fake", http_options=types.HttpOptions(base_url=server.url))


def test_generate_content_text_and_usage():
    script = Script([Reply(text="hello from the fake", input_tokens=21, output_tokens=5)])
    with FakeServer(gemini_app(script)) as server:
        api = client(server)
        response = api.models.generate_content(model="gemini-fake", contents="say hello")
    assert response.text == "hello from the fake"
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (21, 5, 26)
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert script.requests[0]["model"] == "gemini-fake"
    assert script.requests[0]["contents"][0]["parts"][0]["text"] == "say hello"


def test_stream_generate_content_over_sse():
    text = "a streamed reply that is long enough to arrive in several chunks"
    with FakeServer(gemini_app([Reply(text=text, output_tokens=11)])) as server:
        api = client(server)
        chunks = list(api.models.generate_content_stream(model="gemini-fake", contents="go"))
    assert len(chunks) > 1
    assert "".join(chunk.text or "" for chunk in chunks) == text
    assert chunks[-1].usage_metadata.candidates_token_count == 11
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


@pytest.mark.parametrize("stream", [False, True])
def test_function_calls(stream):
    reply = Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}), gemini_shell("ls -la")])
    with FakeServer(gemini_app([reply, "sunny"])) as server:
        api = client(server)
        if stream:
            response = list(api.models.generate_content_stream(model="gemini-fake", contents="weather?"))[-1]
        else:
            response = api.models.generate_content(model="gemini-fake", contents="weather?")
        calls = response.function_calls
        assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"}), ("run_shell_command", {"command": "ls -la"})]
        follow_up = api.models.generate_content(model="gemini-fake", contents=[
            types.Content(role="user", parts=[types.Part(text="weather?")]),
            types.Content(role="model", parts=[types.Part(function_call=calls[0])]),
            types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"sky": "sunny"})]),
        ])
    assert follow_up.text == "sunny"
    assert "functionResponse" in server.requests[1]["contents"][-1]["parts"][0]


@pytest.mark.parametrize(
    ("status", "name"), [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND")],
)
@pytest.mark.parametrize("stream", [False, True])
def test_errors_use_the_status_and_a_google_error_body(status, name, stream):
    with FakeServer(gemini_app([Reply(status=status, error_message="API key not valid.")])) as server:
        api = client(server)
        with pytest.raises(errors.ClientError) as caught:
            if stream:
                list(api.models.generate_content_stream(model="gemini-fake", contents="hi"))
            else:
                api.models.generate_content(model="gemini-fake", contents="hi")
    assert caught.value.code == status and caught.value.status == name
    assert "API key not valid." in str(caught.value)


def test_gemini_cli_utility_requests_do_not_consume_the_script():
    router_body = {
        "contents": [{"role": "user", "parts": [{"text": "classify"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {
            "type": "OBJECT", "required": ["complexity_reasoning", "complexity_score"],
            "properties": {"complexity_reasoning": {"type": "STRING"}, "complexity_score": {"type": "INTEGER"}},
        }},
    }
    speaker_body = {**router_body, "generationConfig": {"responseJsonSchema": {
        "type": "object", "properties": {"reasoning": {"type": "string"}, "next_speaker": {"type": "string", "enum": ["user", "model"]}},
    }}}
    app = gemini_app(["the scripted reply"])
    with FakeServer(app) as server:
        url = server.url + "/v1beta/models/gemini-3.5-flash-lite:generateContent"
        routed = httpx.post(url, json=router_body, headers={"user-agent": CLI_AGENT}).json()
        speaker = httpx.post(url, json=speaker_body, headers={"user-agent": CLI_AGENT}).json()
        # the same request from anyone else (an SDK user asking for structured output) is scripted
        sdk = httpx.post(url, json=router_body).json()
    route = json.loads(routed["candidates"][0]["content"]["parts"][0]["text"])
    assert route["complexity_score"] >= 1 and isinstance(route["complexity_reasoning"], str)
    assert json.loads(speaker["candidates"][0]["content"]["parts"][0]["text"])["next_speaker"] == "user"
    assert sdk["candidates"][0]["content"]["parts"][0]["text"] == "the scripted reply"
    assert len(app.state.utility_requests) == 2 and len(server.requests) == 1


def test_count_tokens_list_models_and_unknown_routes():
    with FakeServer(gemini_app(["x"])) as server:
        api = client(server)
        assert api.models.count_tokens(model="gemini-fake", contents="some words here").total_tokens >= 1
        listed = httpx.get(server.url + "/v1beta/models").json()
        missing = httpx.post(server.url + "/v1beta/models/gemini-fake:embedContent", json={})
    assert listed["models"][0]["name"] == "models/gemini-fake"
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    assert server.requests == []
