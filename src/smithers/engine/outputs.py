"""Agent output: find the JSON in a reply (whole text → last fenced ```json block → last
top-level ``{…}`` object that parses) and validate it against the task's model."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import InvalidOutputError

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.DOTALL)


def schema_instruction(model: type[BaseModel]) -> str:
    schema = json.dumps(model.model_json_schema(), indent=2)
    return (
        "\n\nWhen you are done, end your reply with a single JSON object, in a ```json code block, "
        f"that validates against this JSON schema:\n```json\n{schema}\n```"
    )


def extract_json(text: str) -> Any:
    """The JSON value in an agent's reply, or raise ValueError."""
    stripped = text.strip()
    if stripped:
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            pass
    for block in reversed(_FENCE.findall(text)):
        try:
            return json.loads(block)
        except (ValueError, RecursionError):
            continue
    candidate = _last_balanced_object(text)
    if candidate is not None:
        return json.loads(candidate)
    raise ValueError("no JSON object found in the reply")


_DECODER = json.JSONDecoder()
_OBJECT_START = re.compile(r'\{\s*["}]')  # how every JSON object begins
_FIRST_WINDOW = 4096  # characters handed to the decoder at first; doubled while the object runs past it
_RETRY_BUDGET = 8  # times the text's length: decoding work allowed before broken objects are skipped whole


def _last_balanced_object(text: str) -> str | None:
    """The last top-level JSON object in ``text`` (the one that ends last), or None.

    One left-to-right pass over the places an object can start, decoding each with
    ``JSONDecoder.raw_decode``: an object that decodes is a candidate and the scan jumps past
    its end (objects nested in it are never decoded again). The work stays linear in the
    text's length whatever it holds:

    - the decoder sees a window that starts at the ``{`` and grows only while the object runs
      past it, so no attempt (nor its error, whose line number is counted from the start of
      what the decoder was given) costs more than what it had to read;
    - a ``{`` that starts a broken object is skipped and the ``{`` positions inside it are
      tried in turn (a reply may wrap its answer in broken prose); once that re-reading adds
      up to a few times the text's length, the scan jumps to where the broken object stopped
      instead.
    """
    found: tuple[int, int] | None = None
    budget = _RETRY_BUDGET * len(text) + _FIRST_WINDOW
    match = _OBJECT_START.search(text)
    while match is not None:
        start = match.start()
        end, stopped, cost = _decode_object_at(text, start)
        if end is not None:
            found = (start, end)
            match = _OBJECT_START.search(text, end)
            continue
        budget -= cost
        match = _OBJECT_START.search(text, start + 1 if budget > 0 else stopped)
    return text[found[0] : found[1]] if found else None


def _decode_object_at(text: str, start: int) -> tuple[int | None, int, int]:
    """(end, stopped, cost): the end of the JSON object that starts at ``start`` (None when it
    does not parse), where the decoder stopped (past ``start``) and how many characters it read."""
    window = _FIRST_WINDOW
    cost = 0
    while True:
        chunk = text[start : start + window]
        truncated = start + window < len(text)
        try:
            _, end = _DECODER.raw_decode(chunk)
            return start + end, start + end, cost + end
        except json.JSONDecodeError as err:
            # the window may have cut the object short: an unterminated string (reported where
            # the string starts) or an error at the window's very end; decode again with more
            if truncated and (err.pos >= len(chunk) - 8 or err.msg.startswith("Unterminated string")):
                cost += len(chunk)
                window *= 2
                continue
            return None, start + max(err.pos, 1), cost + max(err.pos, 1)
        except RecursionError:  # nested deeper than the decoder recurses: no reply's answer
            return None, start + len(chunk), cost + len(chunk)


def validate_output(model: type[BaseModel], value: Any, *, node_id: str, retryable: bool) -> BaseModel:
    """Validate a task's result; a mismatch is an InvalidOutputError naming the node and fields."""
    if isinstance(value, model):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump()
    try:
        return model.model_validate(value)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors(include_url=False)
        )
        raise InvalidOutputError(
            f"task {node_id!r}: output does not match {model.__name__}: {problems}",
            retryable=retryable,
            details={"errors": err.errors(include_url=False, include_context=False)},
        ) from None
