"""A scripted fake of the OpenAI Responses API (and Chat Completions) for offline tests.

``POST /v1/responses`` answers each request with the script's next :class:`Reply`, streamed
as server-sent events when the body says ``"stream": true`` (``response.created``,
``response.output_item.added``, ``response.output_text.delta``, ``response.output_item.done``,
``response.completed`` with usage) and as one JSON ``response`` object otherwise. A reply's
``tool_calls`` become ``function_call`` output items, which is how the fake makes the real
``codex`` CLI run a command: codex 0.171 offers its shell as the function ``exec_command``
with arguments ``{"cmd": "..."}`` (see :func:`codex_shell`). A reply whose ``status`` is 400 or
more is answered with that HTTP status and an OpenAI error body.

``POST /v1/chat/completions`` (streamed or not) serves the same script to Chat Completions
clients. ``GET /v1/models`` lists one model. The script is ``app.state.script``.

>>> from smithers.testing.fakes import FakeServer, Reply, openai_app
>>> with FakeServer(openai_app(['{"ok": true}'])) as server:  # doctest: +SKIP
...     OpenAI(base_url=server.url + "/v1", api_key="x").responses.create(model="m", input="hi")
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .base import Reply, ReplyFn, Script, ToolCall

__all__ = ["codex_shell", "openai_app"]

ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


def codex_shell(command: str, **extra: Any) -> ToolCall:
    """A tool call that makes the real codex CLI run ``command`` in its shell tool."""
    return ToolCall("exec_command", {"cmd": command, **extra})


def _as_script(script: Script | Sequence[Reply | str | ReplyFn]) -> Script:
    return script if isinstance(script, Script) else Script(list(script))


def _error(reply: Reply) -> JSONResponse:
    kind, code = ERROR_TYPES.get(reply.status, ("server_error" if reply.status >= 500 else "invalid_request_error", None))
    body = {"error": {"message": reply.error_message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=reply.status)


def _call_id(call: ToolCall, index: int) -> str:
    return call.id or f"call_{uuid.uuid4().hex[:12]}_{index}"


def _sse(events: list[tuple[str, dict[str, Any]]]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for name, data in events:
            yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    return StreamingResponse(body(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


# -- Responses API ---------------------------------------------------------------------------


def _response_items(reply: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        items.append({
            "id": f"msg_{uuid.uuid4().hex[:16]}", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
        })
    for index, call in enumerate(reply.tool_calls):
        items.append({
            "id": f"fc_{uuid.uuid4().hex[:16]}", "type": "function_call", "status": "completed", "call_id": _call_id(call, index),
            "name": call.name, "arguments": json.dumps(call.arguments),
        })
    return items


def _response(body: dict[str, Any], reply: Reply, items: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": f"resp_{uuid.uuid4().hex[:16]}", "object": "response", "created_at": int(time.time()), "status": status,
        "model": body.get("model") or "fake-model", "output": items, "parallel_tool_calls": True, "tool_choice": "auto",
        "tools": [], "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
        "temperature": 1.0, "top_p": 1.0, "text": {"format": {"type": "text"}},
        "usage": {
            "input_tokens": reply.input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens,
        } if status == "completed" else None,
    }


def _response_events(body: dict[str, Any], reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    items = _response_items(reply)
    final = _response(body, reply, items, "completed")
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str, dict[str, Any]]] = [("response.created", {"response": start}), ("response.in_progress", {"response": start})]
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            events.append(("response.output_item.added", {"output_index": index, "item": {**item, "status": "in_progress", "content": []}}))
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append(("response.content_part.added", {**where, "part": part}))
            for start_at in range(0, len(text), 40):
                events.append(("response.output_text.delta", {**where, "delta": text[start_at:start_at + 40], "logprobs": []}))
            events.append(("response.output_text.done", {**where, "text": text, "logprobs": []}))
            events.append(("response.content_part.done", {**where, "part": {**part, "text": text}}))
        else:
            added = {**item, "status": "in_progress", "arguments": ""}
            events.append(("response.output_item.added", {"output_index": index, "item": added}))
            where = {"item_id": item["id"], "output_index": index}
            events.append(("response.function_call_arguments.delta", {**where, "delta": item["arguments"]}))
            events.append(("response.function_call_arguments.done", {**where, "arguments": item["arguments"]}))
        events.append(("response.output_item.done", {"output_index": index, "item": item}))
    events.append(("response.completed", {"response": final}))
    return [(name, {"type": name, "sequence_number": n, **data}) for n, (name, data) in enumerate(events)]


async def _responses(request: Request) -> Response:
    script: Script = request.app.state.script
    body = await request.json()
    reply = await run_in_threadpool(script.next, body)
    if reply.status >= 400:
        return _error(reply)
    if body.get("stream"):
        return _sse(_response_events(body, reply))
    return JSONResponse(_response(body, reply, _response_items(reply), "completed"))


# -- Chat Completions ------------------------------------------------------------------------


def _chat_tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"id": _call_id(call, i), "type": "function", "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
        for i, call in enumerate(reply.tool_calls)
    ]


def _chat_usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


async def _chat_completions(request: Request) -> Response:
    script: Script = request.app.state.script
    body = await request.json()
    reply = await run_in_threadpool(script.next, body)
    if reply.status >= 400:
        return _error(reply)
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "created": int(time.time()), "model": body.get("model") or "fake-model"}
    calls = _chat_tool_calls(reply)
    finish = "tool_calls" if calls else "stop"
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        return JSONResponse({
            **base, "object": "chat.completion", "usage": _chat_usage(reply),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        })
    chunk = {**base, "object": "chat.completion.chunk"}

    def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}

    chunks = [choice({"role": "assistant", "content": ""})]
    chunks += [choice({"content": reply.text[i:i + 40]}) for i in range(0, len(reply.text), 40)]
    chunks += [choice({"tool_calls": [{"index": i, **call}]}) for i, call in enumerate(calls)]
    chunks.append(choice({}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**chunk, "choices": [], "usage": _chat_usage(reply)})

    async def stream() -> AsyncIterator[bytes]:
        for item in chunks:
            yield f"data: {json.dumps(item)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


async def _models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "smithers"}]})


async def _not_found(request: Request) -> Response:
    return JSONResponse({"error": {"message": f"no route {request.method} {request.url.path}", "type": "invalid_request_error",
                                   "param": None, "code": None}}, status_code=404)


def openai_app(script: Script | Sequence[Reply | str | ReplyFn]) -> Starlette:
    """A Starlette app serving ``script`` as the OpenAI Responses and Chat Completions APIs."""
    routes = [
        Route("/v1/responses", _responses, methods=["POST"]),
        Route("/responses", _responses, methods=["POST"]),
        Route("/v1/chat/completions", _chat_completions, methods=["POST"]),
        Route("/chat/completions", _chat_completions, methods=["POST"]),
        Route("/v1/models", _models, methods=["GET"]),
        Route("/models", _models, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.add_route("/{path:path}", _not_found, methods=["GET", "POST", "HEAD", "PUT", "DELETE"])
    app.state.script = _as_script(script)
    return app
