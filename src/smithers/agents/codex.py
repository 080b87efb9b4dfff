"""OpenAI's Codex CLI as an agent: ``codex exec --json``, one JSONL event per line.

What the adapter runs (codex 0.171)::

    codex exec [resume] --json --skip-git-repo-check [-m MODEL] [PERMISSION FLAGS]
               [-c developer_instructions=SYSTEM_PROMPT] [-c KEY=VALUE ...]
               [--output-schema FILE] [EXTRA ARGS] -- [SESSION_ID] PROMPT      (stdin closed)

- **Permissions.** ``permission="bypass"`` (the default) passes
  ``--dangerously-bypass-approvals-and-sandbox``: ``codex exec`` never stops for approvals, so
  bypass is about codex's own sandbox (bubblewrap + seccomp on Linux), which needs user
  namespaces, refuses to work when ``CODEX_HOME`` is under /tmp, and often cannot start inside
  containers; a workflow's isolation (its worktree, Smithers' sandbox) is the boundary instead.
  ``"accept-edits"`` selects ``sandbox_mode="workspace-write"`` (writes in the cwd and /tmp, no
  network) and ``"default"`` leaves codex's configuration alone (read-only in ``exec``).
  ``sandbox=`` picks a mode explicitly. The mode is passed as ``-c sandbox_mode=…`` because
  ``exec resume`` has no ``-s`` flag. Both ways work as root.
- **Structured output.** The request's output schema is made strict (OpenAI's rules: every
  object closed with ``additionalProperties: false``, every property required, optional ones
  nullable, no ``default``/``oneOf``) and passed with ``--output-schema``; codex sends it as
  ``text.format = json_schema`` and its final ``agent_message`` is the JSON, which becomes
  ``AgentResult.output`` with nulls for optional, non-nullable fields dropped (so defaults
  apply). A schema strict mode cannot express (``dict`` fields) is not passed; the engine then
  extracts the JSON from the reply text as for any agent.
- **Sessions.** ``thread.started.thread_id`` is the session id; follow-up turns run
  ``codex exec resume ID``. Codex reports the *thread's* cumulative usage on
  ``turn.completed``, so for a resumed thread the adapter subtracts the totals it saw last
  time (within this process; after a restart the first resumed turn reports the total).
  ``input_tokens`` is reported without the cached part (``cached_input_tokens`` goes to
  ``cache_read_tokens``), as for the other agents.
- **Events.** ``command_execution`` items become ``tool_use`` (name ``shell``) and
  ``tool_result`` (with ``exit_code``); ``file_change``, ``mcp_tool_call`` and ``web_search``
  likewise; ``agent_message`` → ``text`` (the last one is the reply text); ``reasoning`` →
  ``thinking``; ``error`` items and top-level ``error`` events → ``error`` (``fatal: False``:
  "Model metadata for `m` not found" and "Reconnecting… n/5" are warnings); ``turn.failed``
  fails the attempt. A 401/403, even while codex is still retrying, ends the run at once with
  :class:`AgentConfigError`: codex words an HTTP failure ``unexpected status 401 Unauthorized: …``
  (inside ``Reconnecting… n/m (…)`` while it retries) or passes the API's JSON error body on,
  and only that status or the body's error type counts, never the words of a message.
- **Cleanup.** Codex runs each command in a session of its own, outside its process group,
  so after every run the adapter also kills whatever the run left behind (see
  ``_descendants``).
- The prompt is an argument (after ``--``, so a prompt starting with ``-`` is safe); Linux
  caps one argument at 128 KiB.
"""

from __future__ import annotations

import contextvars
import copy
import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import AgentConfigError
from ._api_errors import ApiError, error_body
from .base import AgentRequest, AgentResult
from .cli import CliAgent, ParseState, parse_json_line

__all__ = ["Codex", "strict_json_schema"]

SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")
_TOOL_ITEMS = ("command_execution", "file_change", "mcp_tool_call", "web_search")
# codex's own wording of an HTTP failure, optionally inside its retry notice
_UNEXPECTED_STATUS = re.compile(r"(?:Reconnecting\.\.\. \d+/\d+ \()?unexpected status (\d{3})\b")
_MAX_REMEMBERED_THREADS = 1000

_schema_file: contextvars.ContextVar[str | None] = contextvars.ContextVar("smithers_codex_schema_file", default=None)


class Codex(CliAgent):
    """The ``codex`` CLI. Options beyond :class:`CliAgent`'s:

    - ``sandbox``: ``"read-only"``, ``"workspace-write"`` or ``"danger-full-access"``, instead
      of what ``permission`` implies;
    - ``config``: codex ``-c`` overrides, ``{"model_reasoning_effort": "high"}`` (values are
      written as TOML);
    - ``profile``: a codex config profile (``-p``);
    - ``output_schema``: pass the task's output schema natively (default True).

    ``allowed_tools`` has no codex equivalent and is ignored.
    """

    binary_name = "codex"
    name = "codex"
    install_hint = "install the Codex CLI: `npm install -g @openai/codex` (in the smithers repo: scripts/install-agents)"
    auth_hint = "check the API key codex uses (OPENAI_API_KEY / CODEX_API_KEY, `codex login`, or the provider's env_key)"

    def __init__(
        self,
        *,
        sandbox: str | None = None,
        config: Mapping[str, Any] | None = None,
        profile: str | None = None,
        output_schema: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if sandbox is not None and sandbox not in SANDBOX_MODES:
            raise AgentConfigError(f"codex: sandbox must be one of {', '.join(SANDBOX_MODES)}, got {sandbox!r}")
        self.sandbox = sandbox
        self.config = dict(config or {})
        self.profile = profile
        self.output_schema = output_schema
        self._thread_totals: dict[str, tuple[int, int, int, int]] = {}

    # -- the command line --------------------------------------------------------------------

    def permission_args(self) -> list[str]:
        if self.sandbox is not None:
            return ["-c", f"sandbox_mode={json.dumps(self.sandbox)}"]
        if self.permission == "bypass":
            return ["--dangerously-bypass-approvals-and-sandbox"]
        if self.permission == "accept-edits":
            return ["-c", 'sandbox_mode="workspace-write"']
        return []

    def build_argv(self, binary: str, request: AgentRequest) -> list[str]:
        resume = request.resume_session_id
        argv = [binary, "exec", *(["resume"] if resume else []), "--json", "--skip-git-repo-check"]
        if self.model:
            argv += ["-m", self.model]
        if self.profile and not resume:
            argv += ["-p", self.profile]
        argv += self.permission_args()
        if self.system_prompt:
            argv += ["-c", f"developer_instructions={json.dumps(self.system_prompt)}"]
        for key, value in self.config.items():
            argv += ["-c", f"{key}={_toml_value(value)}"]
        schema_file = _schema_file.get()
        if schema_file:
            argv += ["--output-schema", schema_file]
        argv += self.extra_args
        argv.append("--")
        if resume:
            argv.append(resume)
        argv.append(request.prompt)
        return argv

    # -- the run -----------------------------------------------------------------------------

    async def run(self, request: AgentRequest) -> AgentResult:
        strict = strict_json_schema(request.output_schema) if self.output_schema and request.output_schema else None
        tmpdir = None
        token = None
        try:
            if strict is not None:
                tmpdir = tempfile.mkdtemp(prefix="smithers-codex-")
                path = Path(tmpdir) / "output-schema.json"
                path.write_text(json.dumps(strict), encoding="utf-8")
                token = _schema_file.set(str(path))
            result = await super().run(request)
        finally:
            if token is not None:
                _schema_file.reset(token)
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)
        if strict is not None and result.output is None:
            try:
                value = json.loads(result.text)
            except ValueError:
                value = None
            if isinstance(value, dict):
                result.output = drop_optional_nulls(value, request.output_schema)
        return result

    # -- the event stream --------------------------------------------------------------------

    def parse_line(self, line: str, state: ParseState, request: AgentRequest) -> None:
        event = parse_json_line(line)
        if event is None:
            return
        kind = event.get("type")
        if kind == "thread.started":
            state.session_id = event.get("thread_id") or state.session_id
        elif kind in ("item.started", "item.updated", "item.completed"):
            item = event.get("item") or {}
            self._item(item, done=kind == "item.completed", state=state, request=request)
        elif kind == "turn.completed":
            self._usage(event.get("usage") or {}, state, request)
            state.finished = True
        elif kind == "turn.failed":
            message = (event.get("error") or {}).get("message") or "codex: the turn failed"
            state.error = message
            request.emit("error", message=message, fatal=True)
            if _api_error(message).is_auth:
                state.auth_error = message
        elif kind == "error":
            message = str(event.get("message") or "")
            request.emit("error", message=message, fatal=False)
            if _api_error(message).is_auth:  # even while codex still retries: the key will not get better
                raise self.auth_failed(message)
        elif kind != "turn.started":
            request.emit("raw", event=event)

    def _item(self, item: dict[str, Any], *, done: bool, state: ParseState, request: AgentRequest) -> None:
        item_type = item.get("type")
        item_id = str(item.get("id") or "")
        if item_type in _TOOL_ITEMS:
            started: set[str] = state.extra.setdefault("started_tools", set())
            if item_id not in started:
                started.add(item_id)
                name, tool_input = _tool_call(item)
                request.emit("tool_use", id=item_id, name=name, input=tool_input)
            if done:
                request.emit("tool_result", **_tool_result(item))
        elif not done:
            return
        elif item_type == "agent_message":
            text = str(item.get("text") or "")
            state.text = text
            request.emit("text", text=text)
        elif item_type == "reasoning":
            request.emit("thinking", text=str(item.get("text") or ""))
        elif item_type == "error":
            request.emit("error", message=str(item.get("message") or ""), fatal=False)
        else:
            request.emit("raw", event=item)

    def _usage(self, usage: dict[str, Any], state: ParseState, request: AgentRequest) -> None:
        totals = (
            int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0),
            int(usage.get("cached_input_tokens") or 0), int(usage.get("cache_write_input_tokens") or 0),
        )
        thread = state.session_id
        before = self._thread_totals.get(thread) if thread and request.resume_session_id else None
        turn = totals if before is None else tuple(max(0, now - then) for now, then in zip(totals, before, strict=True))
        if thread:
            self._thread_totals.pop(thread, None)
            self._thread_totals[thread] = totals
            while len(self._thread_totals) > _MAX_REMEMBERED_THREADS:
                self._thread_totals.pop(next(iter(self._thread_totals)))
        input_tokens, output_tokens, cached, cache_write = turn
        state.usage.input_tokens = max(0, input_tokens - cached)  # OpenAI counts cached input in input_tokens
        state.usage.output_tokens, state.usage.cache_read_tokens, state.usage.cache_write_tokens = output_tokens, cached, cache_write


def _api_error(message: str) -> ApiError:
    """What codex's error message says about the API's answer (status, error type)."""
    body = error_body(message)
    if body is not None:
        return body
    match = _UNEXPECTED_STATUS.match(message)
    return ApiError(status=int(match.group(1)), message=message) if match else ApiError(message=message)


def _tool_call(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    item_type = item.get("type")
    if item_type == "command_execution":
        return "shell", {"command": item.get("command")}
    if item_type == "file_change":
        return "file_change", {"changes": item.get("changes") or []}
    if item_type == "mcp_tool_call":
        return f"mcp:{item.get('server')}/{item.get('tool')}", {"arguments": item.get("arguments")}
    return "web_search", {"query": item.get("query")}


def _tool_result(item: dict[str, Any]) -> dict[str, Any]:
    item_type = item.get("type")
    status = item.get("status")
    result: dict[str, Any] = {"id": str(item.get("id") or ""), "is_error": status in ("failed", "declined")}
    if item_type == "command_execution":
        code = item.get("exit_code")
        result.update(output=item.get("aggregated_output") or "", exit_code=code, is_error=result["is_error"] or (code not in (0, None)))
    elif item_type == "file_change":
        result["output"] = ", ".join(f"{c.get('kind')} {c.get('path')}" for c in item.get("changes") or [])
    elif item_type == "mcp_tool_call":
        error = item.get("error")
        result.update(output=(error or {}).get("message") if error else item.get("result"), is_error=result["is_error"] or bool(error))
    else:
        result["output"] = item.get("query")
    return result


# -- strict JSON schema ----------------------------------------------------------------------

_DROP_KEYS = ("default", "discriminator", "examples")


class _NotStrict(Exception):
    pass


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """``schema`` (a pydantic model's JSON schema) rewritten for OpenAI's strict structured
    output, or None when strict mode cannot express it (free-form ``dict`` fields).

    >>> strict_json_schema({"type": "object", "properties": {"a": {"type": "integer", "default": 1}}})  # doctest: +NORMALIZE_WHITESPACE
    {'type': 'object', 'properties': {'a': {'anyOf': [{'type': 'integer'}, {'type': 'null'}]}},
     'additionalProperties': False, 'required': ['a']}
    """
    try:
        out: dict[str, Any] = _strict(copy.deepcopy(dict(schema)))
    except _NotStrict:
        return None
    if out.get("type") != "object":
        return None
    return out


def _is_nullable(schema: Mapping[str, Any]) -> bool:
    if schema.get("type") == "null" or (isinstance(schema.get("type"), list) and "null" in schema["type"]):
        return True
    return any(isinstance(sub, Mapping) and sub.get("type") == "null" for sub in schema.get("anyOf") or ())


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(sub) for sub in node]
    if not isinstance(node, dict):
        return node
    for key in _DROP_KEYS:
        node.pop(key, None)
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "allOf" in node and len(node["allOf"]) == 1:
        node.update(node.pop("allOf")[0])
    for key in ("$defs", "definitions"):
        if key in node:
            node[key] = {name: _strict(sub) for name, sub in node[key].items()}
    for key in ("items", "anyOf", "prefixItems"):
        if key in node:
            node[key] = _strict(node[key])
    if node.get("type") == "object" or "properties" in node:
        extra = node.get("additionalProperties")
        if "properties" not in node or (extra not in (None, False)):
            raise _NotStrict  # a dict[str, X]: strict mode needs a fixed set of keys
        required = set(node.get("required") or ())
        props = {}
        for name, sub in node["properties"].items():
            sub = _strict(sub)
            if name not in required and not _is_nullable(sub):
                sub = {"anyOf": [sub, {"type": "null"}]}
            props[name] = sub
        node["properties"] = props
        node["additionalProperties"] = False
        node["required"] = list(props)
    return node


def drop_optional_nulls(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Any:
    """Remove ``null`` values that strict mode forced on optional, non-nullable fields, so the
    model's defaults apply (``{"z": null}`` for ``z: int = 5`` becomes ``{}``)."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if isinstance(value, dict) and isinstance(schema.get("properties"), Mapping):
        required = set(schema.get("required") or ())
        out = {}
        for key, item in value.items():
            sub = schema["properties"].get(key)
            if sub is None:
                out[key] = item
                continue
            sub = _resolve(sub, root)
            if item is None and key not in required and not _is_nullable(sub):
                continue
            out[key] = drop_optional_nulls(item, sub, root)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [drop_optional_nulls(item, schema["items"], root) for item in value]
    if value is not None and schema.get("anyOf"):
        options = [sub for sub in schema["anyOf"] if isinstance(sub, Mapping) and sub.get("type") != "null"]
        if len(options) == 1:
            return drop_optional_nulls(value, options[0], root)
    return value


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    for _ in range(32):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        schema = target if isinstance(target, Mapping) else {}
    return schema


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise AgentConfigError(f"codex: cannot write config value {value!r} as TOML")


