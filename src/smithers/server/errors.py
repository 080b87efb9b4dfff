"""HTTP errors: one envelope ``{"error": {"code", "message", "details"}}`` for every failure.

Smithers' own errors keep their stable codes; the HTTP status comes from the code (an unknown
run is 404, a run owned by a live process is 409, bad input is 400, ...).
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ErrorCode, SmithersError, UserError

log = logging.getLogger("smithers.server")

# HTTP status of smithers' own error codes (user errors not listed here are 400)
_STATUS = {
    ErrorCode.UNKNOWN_RUN: 404,
    ErrorCode.UNKNOWN_NODE: 404,
    ErrorCode.NO_SNAPSHOT: 404,
    ErrorCode.UNSAVED_CHANGES: 409,
    ErrorCode.RUN_EXISTS: 409,
    ErrorCode.RUN_OWNED: 409,
    ErrorCode.INPUT_CHANGED: 409,
    ErrorCode.SOURCE_CHANGED: 409,
    ErrorCode.UNKNOWN_FRAME: 404,
}

_HTTP_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 500: "INTERNAL", 503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An HTTP error raised by a route: ``raise ApiError(409, "RUN_NOT_ACTIVE", "run x is finished")``."""

    def __init__(self, status: int, code: str, message: str, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def envelope(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def status_for(err: SmithersError) -> int:
    if err.code in _STATUS:
        return _STATUS[err.code]
    return 400 if isinstance(err, UserError) else 500


def smithers_envelope(err: SmithersError) -> dict[str, Any]:
    details = {k: v for k, v in err.details.items() if k != "traceback"}
    if err.hint:
        details["hint"] = err.hint
    return envelope(str(err.code), err.message, details)


def install(app: Any) -> None:
    """Register the handlers that turn every error into the envelope."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def api_error(_request: Any, err: ApiError) -> JSONResponse:
        return JSONResponse(envelope(err.code, err.message, err.details), status_code=err.status, headers=err.headers)

    async def smithers_error(_request: Any, err: SmithersError) -> JSONResponse:
        status = status_for(err)
        if status >= 500:
            log.error("request failed: %s: %s", err.code, err.message)
        return JSONResponse(smithers_envelope(err), status_code=status)

    async def validation_error(request: Any, err: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type"), "message": e.get("msg")} for e in err.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return JSONResponse(envelope("INVALID_JSON", "the request body is not valid JSON", {"errors": errors}), status_code=400)
        content_type = request.headers.get("content-type", "")
        if "json" not in content_type and any(e["loc"][:1] == ["body"] for e in errors):
            message = "the request body must be JSON, sent with 'Content-Type: application/json'"
            return JSONResponse(envelope("INVALID_JSON", message, {"errors": errors}), status_code=400)
        lines = "; ".join(f"{'.'.join(e['loc'][1:] or e['loc'])}: {e['message']}" for e in errors)
        return JSONResponse(envelope("INVALID_REQUEST", f"invalid request: {lines}", {"errors": errors}), status_code=400)

    async def http_error(_request: Any, err: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(err.status_code, f"HTTP_{err.status_code}")
        return JSONResponse(envelope(code, str(err.detail)), status_code=err.status_code, headers=getattr(err, "headers", None))

    async def unexpected(_request: Any, err: Exception) -> JSONResponse:
        log.exception("unexpected error while serving a request")
        return JSONResponse(envelope("INTERNAL", f"internal error: {type(err).__name__}"), status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(SmithersError, smithers_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
