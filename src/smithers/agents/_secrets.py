"""Keep secrets out of files that leave the machine (agent cassettes).

>>> scrubber = Scrubber(secrets={"OPENAI_API_KEY": "abc123secret"})
>>> scrubber.text("key abc123secret, header Authorization: Bearer tok_live_12345678")
'key [REDACTED:OPENAI_API_KEY], header Authorization: Bearer [REDACTED]'

What is scrubbed, from every string (and nested dict/list) it is given:

- the *values* of environment variables whose names contain KEY, TOKEN, SECRET, PASSWORD,
  PASSWD or CREDENTIAL (values shorter than :data:`MIN_SECRET_LENGTH` are ignored: they
  would scrub ordinary words), from ``os.environ`` and from any extra mapping given (an
  agent's own ``env``, a ``ModelAgent``'s ``api_key``);
- ``Authorization``/``X-Api-Key``/``api_key`` header or field values, ``Bearer`` tokens;
- well-known key shapes: ``sk-...`` (OpenAI, Anthropic), ``ghp_...`` (GitHub), ``AKIA...`` (AWS);
- the value of any dict entry whose key names a secret (``{"api_key": ...}``, ``{"token": ...}``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# a field of a JSON value whose name says it holds a secret ("input_tokens" is a count, "keyword" a word)
SECRET_FIELD = re.compile(
    r"(^|[_-])(api[_-]?key|access[_-]?key|private[_-]?key|secret|password|passwd|token|authorization|credentials?)$", re.IGNORECASE
)

PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a header or field: keep the name and the scheme, drop the value
    (re.compile(r"(?i)\b(authorization|proxy-authorization|x-api-key|x-goog-api-key|api[-_]?key)"
                r"([\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|token)\s+)?[^\s\"',;}]+"), r"\1\2\3" + REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+(?!\[REDACTED)[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
)


def is_secret_name(name: str) -> bool:
    """An environment variable whose value is treated as a secret."""
    return bool(SECRET_NAME.search(name))


class Scrubber:
    """Replaces secrets in strings and JSON-like values. ``secrets`` maps a name to a secret
    value (shown as ``[REDACTED:NAME]``); by default the secret-named variables of
    ``os.environ`` are taken."""

    def __init__(self, secrets: Mapping[str, str] | None = None, *, environ: Mapping[str, str] | None = None) -> None:
        found: dict[str, str] = {}
        for source in (os.environ if environ is None else environ, secrets or {}):
            for name, value in source.items():
                if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and (source is secrets or is_secret_name(name)):
                    found[value] = name
        # the longest first, so a secret that contains another is replaced whole
        self._values = sorted(found.items(), key=lambda item: -len(item[0]))

    def add(self, name: str, value: str | None) -> None:
        if value and len(value) >= MIN_SECRET_LENGTH and all(value != known for known, _ in self._values):
            self._values.append((value, name))
            self._values.sort(key=lambda item: -len(item[0]))

    def text(self, value: str) -> str:
        for secret, name in self._values:
            if secret in value:
                value = value.replace(secret, f"[REDACTED:{name}]")
        for pattern, replacement in PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {key: REDACTED if _secret_field(key, item) else self.value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(item) for item in value]
        return value


def _secret_field(key: Any, item: Any) -> bool:
    return isinstance(key, str) and bool(SECRET_FIELD.search(key)) and isinstance(item, str) and bool(item)
