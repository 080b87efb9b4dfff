"""Recognise an authentication failure from what a model API said, not from words in the output.

A CLI agent is disabled for the rest of a run when its credentials are wrong, so the decision
must rest on structured facts: the HTTP status of the API's answer (401, 403) or the error type
in its error body. Each provider shapes that body its own way:

- Anthropic: ``{"type": "error", "error": {"type": "authentication_error", "message": …}}``
- OpenAI: ``{"error": {"type": …, "code": "invalid_api_key", "message": …}}``
- Google: ``{"error": {"code": 401, "status": "UNAUTHENTICATED", "message": …}}``

and each CLI wraps it in its own error line (see the adapters). A reply, a tool's output or an
unrelated error that merely *mentions* "401" or "api key" is never an authentication failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

AUTH_STATUSES = frozenset({401, 403})
AUTH_ERROR_TYPES = frozenset({
    "authentication_error", "permission_error",  # Anthropic
    "invalid_api_key", "invalid_authentication", "insufficient_permissions",  # OpenAI (code or type)
    "UNAUTHENTICATED", "PERMISSION_DENIED",  # Google
    "authentication_failed",  # Claude Code's own error kind
})
_STATUS_PREFIX = re.compile(r"(\d{3}) (.*)\Z", re.DOTALL)  # "401 {…body…}": the provider SDKs' APIError message


@dataclass(frozen=True)
class ApiError:
    """What an API error says about itself: HTTP status and error type, when present."""

    status: int | None = None
    kind: str | None = None
    message: str = ""

    @property
    def is_auth(self) -> bool:
        return self.status in AUTH_STATUSES or (self.kind is not None and self.kind in AUTH_ERROR_TYPES)


def error_body(value: Any) -> ApiError | None:
    """An Anthropic-, OpenAI- or Google-shaped error body (a dict or its JSON text), or None."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict) or not isinstance(value.get("error"), dict):
        return None
    error = value["error"]
    code = error.get("code")
    status = code if isinstance(code, int) else None
    kinds = [k for k in (error.get("status"), error.get("type"), code if isinstance(code, str) else None) if isinstance(k, str)]
    kind = next((k for k in kinds if k in AUTH_ERROR_TYPES), kinds[0] if kinds else None)
    return ApiError(status=status, kind=kind, message=str(error.get("message") or ""))


def status_prefixed(message: str) -> ApiError | None:
    """``"401 {body}"`` or ``"401 text"``: how the Anthropic and OpenAI SDKs word an API error
    (pi reports it so). The status must open the message; a body after it adds its type."""
    match = _STATUS_PREFIX.match(message.strip())
    if match is None:
        return None
    body = error_body(match.group(2))
    return ApiError(status=int(match.group(1)), kind=body.kind if body else None, message=body.message if body else match.group(2))
