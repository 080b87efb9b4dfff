"""Agent output: find the JSON in a reply (whole text → last fenced ```json block → last
balanced ``{…}``) and validate it against the task's model."""

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
        except ValueError:
            pass
    for block in reversed(_FENCE.findall(text)):
        try:
            return json.loads(block)
        except ValueError:
            continue
    candidate = _last_balanced_object(text)
    if candidate is not None:
        return json.loads(candidate)
    raise ValueError("no JSON object found in the reply")


def _last_balanced_object(text: str) -> str | None:
    end = text.rfind("}")
    while end != -1:
        depth = 0
        in_string = False
        for start in range(end, -1, -1):
            ch = text[start]
            if ch == '"' and (start == 0 or text[start - 1] != "\\"):
                in_string = not in_string
            elif not in_string:
                if ch == "}":
                    depth += 1
                elif ch == "{":
                    depth -= 1
                    if depth == 0:
                        snippet = text[start : end + 1]
                        try:
                            json.loads(snippet)
                            return snippet
                        except ValueError:
                            break
        end = text.rfind("}", 0, end)
    return None


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
