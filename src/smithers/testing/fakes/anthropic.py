"""A scripted fake of the Anthropic Messages API, for Claude Code, pi and the anthropic SDK.

>>> from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app
>>> app = anthropic_app([Reply(tool_calls=[ToolCall("Write", {"file_path": "a.txt", "content": "hi"})]), "done"])

``POST /v1/messages`` answers each request with the script's next :class:`Reply`, streamed as
server-sent events when the request says ``"stream": true`` and as one JSON message otherwise:
text becomes a ``text`` block, each tool call a ``tool_use`` block (``stop_reason: tool_use``).
A reply whose ``status`` is 400 or more becomes an Anthropic error body with that status.
``POST /v1/messages/count_tokens`` answers a rough estimate and does not use the script.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .base import Reply, ReplyFn, Script

__all__ = ["anthropic_app", "message_body", "tool_results"]

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error",
}
_ALPHABET = string.ascii_letters + string.digits
CHUNK = 24  # characters per streamed text delta


def _id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def message_body(reply: Reply, model: str) -> dict[str, Any]:
    """The Messages API response for ``reply`` (the non-streaming shape)."""
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        content.append({"type": "tool_use", "id": call.id or _id("toolu_01"), "name": call.name, "input": call.arguments})
    return {
        "id": _id("msg_01"), "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn", "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        },
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _stream(message: dict[str, Any]) -> AsyncIterator[bytes]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _sse("message_start", {"type": "message_start", "message": start})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            start = {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            yield _sse("content_block_start", start)
            text = block["text"]
            for at in range(0, len(text), CHUNK):
                delta = {"type": "text_delta", "text": text[at:at + CHUNK]}
                yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        else:
            opened = {**block, "input": {}}
            yield _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield _sse("message_delta", {"type": "message_delta", "delta": stop, "usage": {"output_tokens": usage["output_tokens"]}})
    yield _sse("message_stop", {"type": "message_stop"})


def error_response(status: int, message: str) -> JSONResponse:
    error_type = ERROR_TYPES.get(status, "api_error")
    return JSONResponse({"type": "error", "error": {"type": error_type, "message": message}}, status_code=status)


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``tool_result`` block in a request's messages (all of them: Claude Code may end a
    request with a ``system`` message after the user turn that carries the results)."""
    found: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            found.extend(block for block in content if isinstance(block, dict) and block.get("type") == "tool_result")
    return found


def anthropic_app(script: Script | Sequence[Reply | str | ReplyFn]) -> Starlette:
    """A Starlette app serving the Anthropic Messages API from ``script`` (on ``app.state.script``)."""
    the_script = script if isinstance(script, Script) else Script(script)

    async def messages(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error_response(400, "the request body is not JSON")
        reply = await run_in_threadpool(the_script.next, body)  # a scripted step may block (sleep)
        if reply.status >= 400:
            return error_response(reply.status, reply.error_message)
        message = message_body(reply, str(body.get("model") or "fake-model"))
        if body.get("stream"):
            headers = {"cache-control": "no-cache", "request-id": _id("req_01")}
            return StreamingResponse(_stream(message), media_type="text/event-stream", headers=headers)
        return JSONResponse(message, headers={"request-id": _id("req_01")})

    async def count_tokens(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"input_tokens": max(1, len(body) // 4)})

    app = Starlette(routes=[
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ])
    app.state.script = the_script
    return app
