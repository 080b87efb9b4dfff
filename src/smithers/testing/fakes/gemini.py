"""A scripted fake of the Gemini API (``generativelanguage.googleapis.com``) for offline tests.

``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` streams the script's next
:class:`Reply` as server-sent events (``data: {GenerateContentResponse}`` lines) and
``POST /v1beta/models/{model}:generateContent`` returns it as one JSON object. A reply's
text becomes a ``text`` part, its ``tool_calls`` become ``functionCall`` parts (how the fake
makes the real ``gemini`` CLI run a tool: ``run_shell_command {"command": ...}`` or
``write_file {"file_path": ..., "content": ...}``, see :func:`gemini_shell`), and its token
counts the ``usageMetadata``. A reply whose ``status`` is 400 or more is answered with that
HTTP status and a Google API error body (``{"error": {"code", "message", "status"}}``).

Utility requests do not consume the script. Besides its main turns, which always stream, the
gemini CLI asks the model side questions with non-streamed ``generateContent`` calls that
carry a JSON response schema (``generationConfig.responseJsonSchema``): the model router
(0.61 sends ``{"complexity_reasoning", "complexity_score"}`` to ``gemini-3.5-flash-lite``
before each prompt when the model is ``auto``), the next-speaker check, loop detection and the
like. A request with the CLI's ``User-Agent`` (``GeminiCLI…``), not streamed and with such a
schema is answered by the fake itself, with an object holding every schema property
(placeholders; integers at their ``minimum`` or 1, so the router picks the flash model;
``next_speaker: "user"``; ``model_choice: "flash"``), and kept in
``app.state.utility_requests``; only the rest reaches ``app.state.script``. ``:countTokens``
answers a rough count and ``GET /v1beta/models`` lists one model.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .base import Reply, ReplyFn, Script, ToolCall

__all__ = ["gemini_app", "gemini_shell", "is_utility_request"]

STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
}


def gemini_shell(command: str, **extra: Any) -> ToolCall:
    """A tool call that makes the real gemini CLI run ``command`` with its shell tool."""
    return ToolCall("run_shell_command", {"command": command, **extra})


def _as_script(script: Script | Sequence[Reply | str | ReplyFn]) -> Script:
    return script if isinstance(script, Script) else Script(list(script))


def _response_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or config.get("response_schema")
    return schema if isinstance(schema, dict) else None


def is_utility_request(body: dict[str, Any], *, streaming: bool, user_agent: str) -> bool:
    """Whether a request is one of the gemini CLI's side questions (routing, next speaker, …):
    sent by the CLI (its ``User-Agent`` starts ``GeminiCLI``), not streamed, and asking for JSON
    matching a schema. The CLI's main turns always stream; SDK callers are never affected."""
    return not streaming and user_agent.lower().startswith("geminicli") and _response_schema(body) is not None


def _placeholder(schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    kind = kind.lower() if isinstance(kind, str) else kind
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _placeholder(sub) for name, sub in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return "fake"


def _utility_answer(body: dict[str, Any]) -> dict[str, Any]:
    schema = _response_schema(body) or {}
    props = schema.get("properties") or {}
    answer = _placeholder(schema) if isinstance(_placeholder(schema), dict) else {}
    if "model_choice" in props:
        answer["model_choice"] = "flash"
    if "next_speaker" in props:
        answer["next_speaker"] = "user"
    for key in ("reasoning", "explanation"):
        if key in props:
            answer[key] = "fake server: fixed answer"
    return answer


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "promptTokenCount": reply.input_tokens, "candidatesTokenCount": reply.output_tokens,
        "totalTokenCount": reply.input_tokens + reply.output_tokens,
    }


def _parts(reply: Reply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reply.text:
        parts.append({"text": reply.text})
    for call in reply.tool_calls:
        function_call: dict[str, Any] = {"name": call.name, "args": call.arguments}
        if call.id:
            function_call["id"] = call.id
        parts.append({"functionCall": function_call})
    return parts or [{"text": ""}]


def _chunk(model: str, parts: list[dict[str, Any]], *, finish: bool, usage: dict[str, int] | None, response_id: str) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
    if usage is not None:
        out["usageMetadata"] = usage
    return out


def _error(reply: Reply) -> JSONResponse:
    status = STATUS_NAMES.get(reply.status, "INTERNAL" if reply.status >= 500 else "FAILED_PRECONDITION")
    return JSONResponse({"error": {"code": reply.status, "message": reply.error_message, "status": status}}, status_code=reply.status)


def _status_404(message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}, status_code=404)


async def _model_call(request: Request) -> Response:
    target = request.path_params["target"]
    model, _, method = target.partition(":")
    if method not in ("generateContent", "streamGenerateContent", "countTokens"):
        return _status_404(f"fake server: no method {method!r}")
    body = await request.json()
    if method == "countTokens":
        text = json.dumps(body.get("contents") or body)
        return JSONResponse({"totalTokens": max(1, len(text) // 4)})
    streaming = method == "streamGenerateContent"
    response_id = uuid.uuid4().hex[:16]
    if is_utility_request(body, streaming=streaming, user_agent=request.headers.get("user-agent", "")):
        request.app.state.utility_requests.append({"model": model, **body})
        text = json.dumps(_utility_answer(body))
        usage = {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}
        return JSONResponse(_chunk(model, [{"text": text}], finish=True, usage=usage, response_id=response_id))
    script: Script = request.app.state.script
    reply = await run_in_threadpool(script.next, {"model": model, **body})
    if reply.status >= 400:
        return _error(reply)
    if not streaming:
        return JSONResponse(_chunk(model, _parts(reply), finish=True, usage=_usage(reply), response_id=response_id))
    chunks: list[dict[str, Any]] = []
    text = reply.text
    pieces = [text[i:i + 40] for i in range(0, len(text), 40)]
    for piece in pieces[:-1]:
        chunks.append(_chunk(model, [{"text": piece}], finish=False, usage=None, response_id=response_id))
    last = Reply(text=pieces[-1] if pieces else "", tool_calls=reply.tool_calls)
    chunks.append(_chunk(model, _parts(last), finish=True, usage=_usage(reply), response_id=response_id))

    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()

    return StreamingResponse(stream(), media_type="text/event-stream")


async def _list_models(request: Request) -> Response:
    model = {"name": "models/gemini-fake", "displayName": "fake", "supportedGenerationMethods": ["generateContent"]}
    return JSONResponse({"models": [model]})


async def _not_found(request: Request) -> Response:
    return _status_404(f"fake server: no route {request.method} {request.url.path}")


def gemini_app(script: Script | Sequence[Reply | str | ReplyFn]) -> Starlette:
    """A Starlette app serving ``script`` as the Gemini ``generateContent`` API (v1beta and v1)."""
    routes = [
        Route("/v1beta/models/{target:path}", _model_call, methods=["POST"]),
        Route("/v1/models/{target:path}", _model_call, methods=["POST"]),
        Route("/v1beta/models", _list_models, methods=["GET"]),
        Route("/v1/models", _list_models, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.add_route("/{path:path}", _not_found, methods=["GET", "POST", "HEAD", "PUT", "DELETE"])
    app.state.script = _as_script(script)
    app.state.utility_requests = []
    return app
