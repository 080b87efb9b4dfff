"""Authentication failures are read from API error structure (status, error type), never from words."""

from __future__ import annotations

import json

from smithers.agents._api_errors import error_body, status_prefixed
from smithers.agents.codex import _api_error as codex_error
from smithers.agents.gemini import _api_error as gemini_error
from smithers.agents.pi import _is_auth_failure as pi_auth


def test_each_providers_error_body() -> None:
    anthropic = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    openai = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}
    google = {"error": {"code": 401, "message": "API key not valid", "status": "UNAUTHENTICATED"}}
    for body in (anthropic, openai, google, json.dumps(google)):
        found = error_body(body)
        assert found is not None and found.is_auth, body
    not_auth = {"error": {"code": 400, "message": "bad api key parameter 401 unauthorized", "status": "INVALID_ARGUMENT"}}
    assert error_body(not_auth) is not None and not error_body(not_auth).is_auth
    assert error_body("the API key 401 is unauthorized") is None


def test_the_status_must_open_the_message() -> None:
    assert status_prefixed('401 {"type":"error","error":{"type":"authentication_error","message":"x"}}').is_auth
    assert status_prefixed("403 Forbidden").is_auth
    assert not status_prefixed('400 {"type":"error","error":{"type":"invalid_request_error","message":"api key 401"}}').is_auth
    assert status_prefixed("request failed: 401 unauthorized") is None
    assert pi_auth("No API key found for anthropic.\n\nUse /login")
    assert not pi_auth("The model said: No API key found for anthropic")


def test_codex_and_gemini_wrappers() -> None:
    assert codex_error("unexpected status 401 Unauthorized: invalid x-api-key, url: http://x/v1/responses").is_auth
    assert codex_error("Reconnecting... 2/5 (unexpected status 403 Forbidden: nope)").is_auth
    assert not codex_error("unexpected status 500 Internal Server Error: api key 401").is_auth
    assert not codex_error("command output mentions unexpected status 401").is_auth
    assert gemini_error('[API Error: {"error":{"code":401,"message":"bad","status":"UNAUTHENTICATED"}}]').is_auth
    assert not gemini_error('[API Error: {"error":{"code":400,"message":"api key 401","status":"INVALID_ARGUMENT"}}]').is_auth
    assert not gemini_error("API key not valid, 401 unauthenticated").is_auth
