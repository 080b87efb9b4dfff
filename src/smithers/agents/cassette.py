"""Agent cassettes: record every agent call of a run to a JSONL file, and answer agent calls
from it later without starting an agent (no subprocess, no network).

>>> with use_cassette(Cassette.for_replay("tests/cassettes/review.jsonl")):
...     outcome = ops.start_run("review.py", store=store, raw_input={})   # doctest: +SKIP

``smithers up WF --record FILE`` / ``--replay FILE`` (and ``resume``) and
``smithers.testing.cassette(path)`` are built on this module; the engine asks
:func:`active_cassette` once per agent call (engine/agent_task.py).

**One line per agent call** (each ``agent.run(request)``: the task's prompt, a JSON-only
follow-up or a repair turn): ``node_id``, ``iteration``, ``attempt``, ``turn``, ``agent``,
``prompt``, ``resume_session_id``, ``events`` (every event the agent reported, in order),
``tool_calls`` (a summary of them), ``text``, ``output``, ``usage``, ``session_id``, ``model``,
``error`` (when the call raised), ``duration_ms``. A line is appended and flushed when its call
ends, so a killed run keeps every call that finished. Secrets are scrubbed from everything
written (see ``_secrets.py``); the run id and the task's working directory are written as
``{run_id}`` and ``{cwd}``, so a cassette replays in another run and another checkout.

**Matching.** Calls are matched per ``(node_id, iteration)`` in order: the n-th call a replay
makes for a node's iteration gets the n-th recorded call for it, whatever the attempt numbers
(a recording that was killed and resumed retried with a higher attempt number). The one
exception: a process whose first call for a node's iteration is attempt a > 1 (a resumed run
retrying a failed task) starts at the first recorded call of an attempt ≥ a when there is one.
A call whose prompt differs from the recording, or that the cassette does not have, fails the
task with ``CASSETTE_MISMATCH`` (not retried) naming the node and showing a unified diff.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

from ..errors import AgentConfigError, AgentError, CassetteFileError, CassetteMismatchError, SmithersError
from ._secrets import Scrubber, is_secret_name
from .base import AgentEvent, AgentRequest, AgentResult

Mode = Literal["record", "replay"]
FORMAT_VERSION = 1
ENV_PATH = "SMITHERS_CASSETTE"  # a cassette for every run of this process (and its children)
ENV_MODE = "SMITHERS_CASSETTE_MODE"  # record | replay | auto (replay when the file exists)
MAX_DIFF_CHARS = 6000

_ACTIVE: ContextVar[Cassette | None] = ContextVar("smithers_cassette", default=None)
_FROM_ENV: dict[tuple[str, str], Cassette] = {}
_FROM_ENV_LOCK = threading.Lock()


@dataclass
class Cassette:
    """One cassette file, open for recording or for replay. Build it with :meth:`for_record`
    or :meth:`for_replay`; make it active with :func:`use_cassette`."""

    path: Path
    mode: Mode
    entries: list[dict[str, Any]] = field(default_factory=list)  # replay: every recorded call, in file order
    _index: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    _cursor: dict[tuple[str, int], int] = field(default_factory=dict)
    _used: set[int] = field(default_factory=set)
    _file: IO[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _scrubbers: dict[int, tuple[Any, Scrubber]] = field(default_factory=dict)  # per agent object (its env and api_key)
    recorded: int = 0

    @classmethod
    def for_record(cls, path: str | os.PathLike[str], *, append: bool = False) -> Cassette:
        """Record into ``path``: a new file (an existing one is replaced), or appended to with
        ``append`` (``resume --record`` adds the calls of the resumed part)."""
        target = Path(path).expanduser().resolve()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not append:
                target.write_text("", encoding="utf-8")
            # O_APPEND: a `smithers up` subprocess recording into the same file (pytest helper) never overwrites a line
            handle = open(target, "a", encoding="utf-8")  # noqa: SIM115 (open for the process)
        except OSError as err:
            raise CassetteFileError(
                f"cannot write the cassette {target}: {err.strerror}", hint="pass a writable path to --record"
            ) from None
        return cls(path=target, mode="record", _file=handle)

    @classmethod
    def for_replay(cls, path: str | os.PathLike[str]) -> Cassette:
        """Replay from ``path``; a missing or malformed file is a :class:`CassetteFileError`
        naming the file (and line)."""
        source = Path(path).expanduser().resolve()
        try:
            lines = source.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise CassetteFileError(
                f"the cassette {source} does not exist", hint=f"record it first: smithers up WORKFLOW --record {path}"
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise CassetteFileError(f"cannot read the cassette {source}: {err}") from None
        cassette = cls(path=source, mode="replay")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as err:
                raise CassetteFileError(
                    f"{source}:{number}: not a JSON line ({err})", hint="a cassette is written by --record; re-record it"
                ) from None
            if not isinstance(entry, dict) or not isinstance(entry.get("node_id"), str) or not isinstance(entry.get("prompt"), str):
                raise CassetteFileError(f"{source}:{number}: not a cassette entry (needs node_id and prompt)")
            cassette._index.setdefault((entry["node_id"], int(entry.get("iteration") or 0)), []).append(len(cassette.entries))
            cassette.entries.append(entry)
        return cassette

    @property
    def unused(self) -> list[dict[str, Any]]:
        """Replay: the recorded calls no agent call has asked for (yet)."""
        return [entry for index, entry in enumerate(self.entries) if index not in self._used]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- the one entry point: the engine calls this instead of agent.run ----------------------

    async def call(self, agent: Any, name: str, request: AgentRequest) -> AgentResult:
        """Run ``agent`` and record the call, or answer it from the recording."""
        if self.mode == "replay":
            return self._replay(agent, name, request)
        return await self._record(agent, name, request)

    # -- recording -----------------------------------------------------------------------

    async def _record(self, agent: Any, name: str, request: AgentRequest) -> AgentResult:
        events: list[AgentEvent] = []
        forward = request.on_event

        def capture(event: AgentEvent) -> None:
            events.append(event)
            if forward is not None:
                forward(event)

        started = time.monotonic()
        try:
            result: AgentResult = await agent.run(replace(request, on_event=capture))
        except AgentError as err:
            self._write(agent, name, request, events, started, error=_error_of(err))
            raise
        except Exception as err:  # an agent is user code: recorded, then the engine wraps it as always
            self._write(agent, name, request, events, started, error={"type": type(err).__name__, "message": str(err), "retryable": True})
            raise
        self._write(agent, name, request, events, started, result=result)
        return result

    def _write(
        self, agent: Any, name: str, request: AgentRequest, events: list[AgentEvent], started: float, *,
        result: AgentResult | None = None, error: dict[str, Any] | None = None,
    ) -> None:
        scrub = self._scrubber(agent, request)
        entry: dict[str, Any] = {
            "v": FORMAT_VERSION, "node_id": request.node_id, "iteration": request.iteration, "attempt": request.attempt,
            "turn": request.turn, "agent": name, "prompt": _portable(request.prompt, request),
            "resume_session_id": request.resume_session_id,
            "events": [{"kind": event.kind, "data": event.data} for event in events],
            "tool_calls": _tool_calls(events),
        }
        if result is not None:
            entry.update(text=result.text, output=result.output, usage=result.usage, session_id=result.session_id, model=result.model)
        if error is not None:
            entry["error"] = error
        entry["duration_ms"] = int((time.monotonic() - started) * 1000)
        plain = json.loads(json.dumps(entry, default=_jsonable))  # JSON types only, so every string is scrubbed
        line = json.dumps(scrub.value(plain), ensure_ascii=False)
        with self._lock:
            if self._file is None:
                raise CassetteFileError(f"the cassette {self.path} is closed")
            self._file.write(line + "\n")
            self._file.flush()  # a killed run keeps every call that finished
            self.recorded += 1

    def _scrubber(self, agent: Any, request: AgentRequest) -> Scrubber:
        if request.env:  # rare: a request with its own environment gets a scrubber of its own
            return _scrubber_for(agent, request)
        key = id(agent)
        if key not in self._scrubbers or self._scrubbers[key][0] is not agent:  # the agent is kept: its id is not reused
            self._scrubbers[key] = (agent, _scrubber_for(agent, request))
        return self._scrubbers[key][1]

    # -- replay --------------------------------------------------------------------------

    def _replay(self, agent: Any, name: str, request: AgentRequest) -> AgentResult:
        key = (request.node_id, request.iteration)
        positions = self._index.get(key, [])
        with self._lock:
            cursor = self._cursor.get(key)
            if cursor is None:
                cursor = _first_cursor(self.entries, positions, request.attempt)
            self._cursor[key] = cursor + 1
        where = f"task {request.node_id!r} (iteration {request.iteration}, attempt {request.attempt}, turn {request.turn})"
        if cursor >= len(positions):
            raise CassetteMismatchError(
                f"{where}: the cassette {self.path} has no call #{cursor + 1} for it (it recorded {len(positions)})",
                hint="the workflow makes calls the recording did not; re-record the cassette with --record",
                details={"cassette": str(self.path), "node_id": request.node_id, "iteration": request.iteration, "reason": "missing"},
            )
        self._used.add(positions[cursor])
        entry = self.entries[positions[cursor]]
        prompt = self._scrubber(agent, request).text(_portable(request.prompt, request))
        if prompt != entry["prompt"] or (entry.get("agent") and entry["agent"] != name):
            raise _mismatch(where, self.path, entry, prompt, name, request)
        for event in entry.get("events") or []:
            request.emit(str(event.get("kind")), **(event.get("data") or {}))
        if entry.get("error"):
            raise _error_from(entry["error"], name)
        return AgentResult(
            text=entry.get("text") or "", output=entry.get("output"), usage=entry.get("usage") or {},
            session_id=entry.get("session_id"), model=entry.get("model"),
        )


def _jsonable(value: Any) -> Any:
    """A value json cannot write: a pydantic model as its JSON data, anything else as text."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else str(value)


def _first_cursor(entries: list[dict[str, Any]], positions: list[int], attempt: int) -> int:
    if attempt > 1:
        for cursor, position in enumerate(positions):
            if int(entries[position].get("attempt") or 1) >= attempt:
                return cursor
    return 0


def _mismatch(where: str, path: Path, entry: dict[str, Any], prompt: str, name: str, request: AgentRequest) -> CassetteMismatchError:
    import difflib

    details = {"cassette": str(path), "node_id": request.node_id, "iteration": request.iteration, "reason": "prompt"}
    if entry.get("agent") and entry["agent"] != name:
        return CassetteMismatchError(
            f"{where}: the cassette {path} recorded agent {entry['agent']!r} here, but the task now uses {name!r}",
            hint="re-record the cassette with --record", details={**details, "reason": "agent"},
        )
    diff = "\n".join(difflib.unified_diff(
        entry["prompt"].splitlines(), prompt.splitlines(), "recorded prompt", "prompt now", lineterm="", n=2,
    ))
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n… ({len(diff) - MAX_DIFF_CHARS} more characters of diff)"
    return CassetteMismatchError(
        f"{where}: the prompt differs from the cassette {path}:\n{diff}",
        hint="if the change is intended, re-record the cassette with --record", details={**details, "diff": diff},
    )


def _error_of(err: AgentError) -> dict[str, Any]:
    record: dict[str, Any] = {"type": type(err).__name__, "code": str(err.code), "message": err.message, "retryable": err.retryable}
    if err.hint:
        record["hint"] = err.hint
    return record


def _error_from(recorded: dict[str, Any], name: str) -> SmithersError:
    """The recorded failure, raised again: a configuration error stays one (the fallback chain
    skips the agent as it did), anything else is an AgentError with the recorded message."""
    message, hint = str(recorded.get("message") or "agent failed"), recorded.get("hint")
    if recorded.get("type") == "AgentConfigError":
        return AgentConfigError(message, hint=hint)
    if "code" not in recorded:  # the agent raised something of its own; the engine words it so
        message = f"agent {name} raised {recorded.get('type')}: {message}"
    return AgentError(message, retryable=bool(recorded.get("retryable", True)), hint=hint)


def _portable(prompt: str, request: AgentRequest) -> str:
    """The prompt with this run's id and the task's folder as placeholders."""
    if request.cwd and len(request.cwd) > 1:
        prompt = prompt.replace(request.cwd, "{cwd}")
    return prompt.replace(request.run_id, "{run_id}") if request.run_id else prompt


def _scrubber_for(agent: Any, request: AgentRequest) -> Scrubber:
    """Secrets of the environment, the agent's own env and api_key, and the request's env."""
    extra: dict[str, str] = {}
    for env in (getattr(agent, "env", None), request.env):
        if isinstance(env, dict):
            extra.update({k: v for k, v in env.items() if isinstance(v, str) and isinstance(k, str) and is_secret_name(k)})
    scrubber = Scrubber(extra)
    api_key = getattr(agent, "api_key", None)
    if isinstance(api_key, str):
        scrubber.add("api_key", api_key)
    return scrubber


def _tool_calls(events: list[AgentEvent]) -> list[dict[str, Any]]:
    """The tool calls of one agent call, use and result joined by id (for people reading it)."""
    calls: dict[str, dict[str, Any]] = {}
    for event in events:
        data = event.data
        if event.kind == "tool_use":
            calls[str(data.get("id"))] = {"id": data.get("id"), "name": data.get("name"), "input": data.get("input")}
        elif event.kind == "tool_result":
            call = calls.setdefault(str(data.get("id")), {"id": data.get("id")})
            call.update(output=data.get("output"), is_error=data.get("is_error"))
    return list(calls.values())


# -- which cassette is active -------------------------------------------------------------------


def active_cassette() -> Cassette | None:
    """The cassette for agent calls here: the one :func:`use_cassette` set, else the one
    ``SMITHERS_CASSETTE`` names (mode from ``SMITHERS_CASSETTE_MODE``), else None."""
    active = _ACTIVE.get()
    if active is not None:
        return active
    path = os.environ.get(ENV_PATH)
    if not path:
        return None
    requested = os.environ.get(ENV_MODE) or "auto"
    with _FROM_ENV_LOCK:
        # keyed by the mode as written: "auto" is resolved once per process, not again once the
        # recording has created the file
        key = (str(Path(path).expanduser().resolve()), requested)
        if key not in _FROM_ENV:  # recording through the environment appends: the process that set it chose
            mode = resolve_mode(requested, path)
            _FROM_ENV[key] = Cassette.for_replay(path) if mode == "replay" else Cassette.for_record(path, append=True)
        return _FROM_ENV[key]


def resolve_mode(mode: str, path: str | os.PathLike[str]) -> Mode:
    """``record``, ``replay``, or ``auto``: replay when the file exists, else record."""
    if mode == "auto":
        return "replay" if Path(path).expanduser().exists() else "record"
    if mode in ("record", "replay"):
        return "record" if mode == "record" else "replay"
    raise CassetteFileError(f"{ENV_MODE} must be record, replay or auto, got {mode!r}")


@contextlib.contextmanager
def use_cassette(cassette: Cassette) -> Iterator[Cassette]:
    """Answer (or record) the agent calls of runs driven inside the block with ``cassette``
    (closed at the end)."""
    token = activate(cassette)
    try:
        yield cassette
    finally:
        deactivate(cassette, token)


def activate(cassette: Cassette) -> Token[Cassette | None]:
    """Make ``cassette`` the active one in this context; undo with :func:`deactivate`."""
    return _ACTIVE.set(cassette)


def deactivate(cassette: Cassette, token: Token[Cassette | None]) -> None:
    _ACTIVE.reset(token)
    cassette.close()
