"""OpenTelemetry traces of runs, exported over OTLP/HTTP (opt-in: ``SMITHERS_OTEL_ENABLED=1``).

A :class:`TraceListener` is a store commit listener: it turns the committed events of a run
into spans, with explicit parents::

    smithers.run                      RunStarted … RunFinished/RunFailed/RunCancelled/RunContinuedAsNew
    └── smithers.task                 NodeStarted … NodeFinished/NodeFailed/NodeCancelled (one per attempt)
        ├── smithers.agent            AgentTurn … AgentReply (one per turn)
        │   └── smithers.tool         ToolCallStarted … ToolCallFinished
        └── smithers.run              a subflow's child run, under the attempt that runs it

Span times are the events' commit times. The exporter is configured by the standard OTel
variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, default ``http://localhost:4318``;
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``,
default ``smithers``, ``OTEL_RESOURCE_ATTRIBUTES``). The OpenTelemetry packages (the ``otel``
extra) are imported only when tracing is enabled; without them a warning is printed once.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from ..states import AttemptStatus, EventType, RunStatus

if TYPE_CHECKING:
    from ..storage.store import Store

ENABLE_VAR = "SMITHERS_OTEL_ENABLED"
FLUSH_TIMEOUT_MS = 10_000
INSTALL_HINT = "pip install 'smithers-orchestrator[otel]'"

_provider_lock = threading.Lock()
_provider: Any = None
_warned = False

RUN_END = {
    EventType.RUN_FINISHED: RunStatus.FINISHED, EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_CANCELLED: RunStatus.CANCELLED, EventType.RUN_CONTINUED_AS_NEW: RunStatus.CONTINUED,
}
ATTEMPT_END = (
    EventType.NODE_FINISHED, EventType.NODE_FAILED, EventType.NODE_CANCELLED, EventType.ATTEMPT_ABANDONED, EventType.ATTEMPT_SUSPENDED,
)


def enabled() -> bool:
    return os.environ.get(ENABLE_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        sys.stderr.write(f"smithers: warning: {message}\n")
        sys.stderr.flush()


def tracer_provider() -> Any:
    """The process's tracer provider (OTLP/HTTP, batching), or None without the otel extra.
    Smithers keeps its own provider: it does not replace a global one the workflow may set."""
    global _provider
    with _provider_lock:
        if _provider is not None:
            return _provider
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as err:
            _warn_once(
                f"{ENABLE_VAR}=1 but the OpenTelemetry packages are not installed ({err.name or err}); "
                f"runs are not traced. Install them with: {INSTALL_HINT}"
            )
            return None
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "smithers"}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _provider = provider
        return provider


def attach_tracing(store: Store, run_id: str) -> TraceListener | None:
    """With ``SMITHERS_OTEL_ENABLED=1``: a :class:`TraceListener` for ``run_id`` to append to
    ``store.commit_listeners`` (and to :meth:`~TraceListener.close` when the run's process is
    done driving it). Otherwise None. ``store`` is accepted for symmetry with the metrics."""
    del store
    if not enabled():
        return None
    provider = tracer_provider()
    if provider is None:
        return None
    return TraceListener(run_id, provider)


def _ns(ts_ms: Any) -> int:
    return int(ts_ms) * 1_000_000 if isinstance(ts_ms, (int, float)) else time.time_ns()


class TraceListener:
    """Turns the committed events of one run (and of its subflows' child runs) into spans."""

    def __init__(self, run_id: str, provider: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        self._trace, self._Status, self._StatusCode = trace, Status, StatusCode
        self.run_id = run_id
        self.provider = provider
        self.tracer = provider.get_tracer("smithers")
        self._lock = threading.Lock()
        self.runs: dict[str, Any] = {}  # run id -> open run span (this run and its child runs)
        self.ended: set[str] = set()
        self.run_status: dict[str, str] = {}
        self.attempts: dict[tuple[str, str, int, int], Any] = {}  # (run, node, iteration, attempt) -> span
        self.turns: dict[tuple[str, str, int, int], Any] = {}  # attempt key -> the open turn span
        self.tools: dict[tuple[str, str], tuple[Any, tuple[str, str, int, int]]] = {}  # (run, call id) -> (span, attempt)
        self.closed = False

    # -- the listener ----------------------------------------------------------------------------

    def __call__(self, events: list[dict[str, Any]]) -> None:
        if self.closed:
            return
        with self._lock:
            for event in events:
                try:
                    self._on_event(event)
                except Exception as err:  # tracing must never break a run
                    _warn_once(f"tracing stopped recording a span: {type(err).__name__}: {err}")

    def close(self) -> None:
        """End every span still open (a run that is waiting, or whose process stops driving it)
        and flush the exporter."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            end = time.time_ns()
            for run_id in list(self.runs):
                self._end_run(run_id, end, self.run_status.get(run_id, "stopped"))
        try:
            self.provider.force_flush(FLUSH_TIMEOUT_MS)
        except Exception as err:
            _warn_once(f"could not flush traces: {err}")

    # -- events ----------------------------------------------------------------------------------

    def _follows(self, event: dict[str, Any]) -> bool:
        run_id = event.get("run_id")
        if run_id in self.runs or run_id == self.run_id:
            return True
        payload = event.get("payload") or {}
        return event.get("type") == EventType.RUN_STARTED and payload.get("parent_run_id") in self.runs

    def _on_event(self, event: dict[str, Any]) -> None:
        if not self._follows(event):
            return
        kind = event["type"]
        run_id = event["run_id"]
        ts = _ns(event.get("ts_ms"))
        payload = event.get("payload") or {}
        if kind == EventType.RUN_STARTED:
            self._start_run(run_id, ts, payload)
            return
        if run_id not in self.runs:
            if run_id in self.ended:
                return
            self._start_run(run_id, ts, {})  # events of a run whose RunStarted came before this process
        if kind in RUN_END:
            self._end_run(run_id, ts, RUN_END[kind], payload)
        elif kind == EventType.RUN_WAITING:
            self.run_status[run_id] = str(payload.get("status") or "waiting")
            self.runs[run_id].add_event("smithers.run.waiting", {"smithers.status": self.run_status[run_id]}, timestamp=ts)
        elif kind == EventType.RUN_WAIT_ENDED:
            self.run_status.pop(run_id, None)
            self.runs[run_id].add_event("smithers.run.wait_ended", timestamp=ts)
        elif kind == EventType.NODE_STARTED and event.get("attempt") is not None:
            self._start_attempt(event, ts)
        elif kind in ATTEMPT_END and event.get("attempt") is not None:
            self._end_attempt(event, ts, payload)
        elif kind == EventType.AGENT_TURN:
            self._start_turn(event, ts, payload)
        elif kind == EventType.TOKEN_USAGE_REPORTED:
            self._usage(event, payload)
        elif kind == EventType.AGENT_REPLY:
            self._end_turn(event, ts, payload)
        elif kind == EventType.TOOL_CALL_STARTED:
            self._start_tool(event, ts, payload)
        elif kind == EventType.TOOL_CALL_FINISHED:
            self._end_tool(event, ts, payload)

    # -- runs ------------------------------------------------------------------------------------

    def _start_run(self, run_id: str, ts: int, payload: dict[str, Any]) -> None:
        if run_id in self.runs:
            return
        self.ended.discard(run_id)
        parent = payload.get("parent_run_id")
        context = None
        if parent in self.runs:  # a subflow's child run: under the attempt that runs it (id parent.node.iteration)
            holder = next(
                (span for (r, node, it, _), span in self.attempts.items() if r == parent and f"{r}.{node}.{it}" == run_id),
                self.runs[parent],
            )
            context = self._trace.set_span_in_context(holder)
        attributes: dict[str, Any] = {"smithers.run_id": run_id}
        for key in ("workflow", "parent_run_id", "continued_from"):
            if payload.get(key):
                attributes[f"smithers.{key}"] = str(payload[key])
        attributes["smithers.resumed"] = bool(payload.get("resumed"))
        self.runs[run_id] = self.tracer.start_span("smithers.run", context=context, attributes=attributes, start_time=ts)

    def _end_run(self, run_id: str, ts: int, status: str, payload: dict[str, Any] | None = None) -> None:
        span = self.runs.pop(run_id, None)
        if span is None:
            return
        payload = payload or {}
        for tool_key in [k for k in self.tools if k[0] == run_id]:
            tool, _ = self.tools.pop(tool_key)
            tool.end(end_time=ts)
        for key in [k for k in self.attempts if k[0] == run_id]:
            self._close_attempt(key, ts, "stopped")
        for child in [r for r in self.runs if r.startswith(run_id + ".")]:  # child runs still open
            self._end_run(child, ts, self.run_status.get(child, "stopped"))
        span.set_attribute("smithers.run.status", str(status))
        if status == RunStatus.FAILED:
            error = payload.get("error") or {}
            span.set_status(self._Status(self._StatusCode.ERROR, str(error.get("message") or "run failed")))
            if error.get("code"):
                span.set_attribute("smithers.error.code", str(error["code"]))
        elif status == RunStatus.FINISHED:
            span.set_status(self._Status(self._StatusCode.OK))
        if payload.get("next_run_id"):
            span.set_attribute("smithers.next_run_id", str(payload["next_run_id"]))
        if payload.get("reason"):
            span.set_attribute("smithers.reason", str(payload["reason"]))
        span.end(end_time=ts)
        self.ended.add(run_id)
        self.run_status.pop(run_id, None)

    # -- attempts --------------------------------------------------------------------------------

    @staticmethod
    def _key(event: dict[str, Any]) -> tuple[str, str, int, int]:
        return (event["run_id"], event.get("node_id") or "", event.get("iteration") or 0, event.get("attempt") or 0)

    def _start_attempt(self, event: dict[str, Any], ts: int) -> None:
        key = self._key(event)
        if key in self.attempts:
            return
        context = self._trace.set_span_in_context(self.runs[event["run_id"]])
        self.attempts[key] = self.tracer.start_span(
            "smithers.task", context=context, start_time=ts,
            attributes={
                "smithers.run_id": key[0], "smithers.node_id": key[1], "smithers.iteration": key[2], "smithers.attempt": key[3],
            },
        )

    def _end_attempt(self, event: dict[str, Any], ts: int, payload: dict[str, Any]) -> None:
        key = self._key(event)
        span = self.attempts.get(key)
        if span is None:
            return
        kind = event["type"]
        if kind == EventType.NODE_FAILED:
            error = payload.get("error") or {}
            message = str(error.get("message") or "attempt failed")
            span.add_event("exception", {"exception.type": str(error.get("type") or "Error"), "exception.message": message}, timestamp=ts)
            if error.get("code"):
                span.set_attribute("smithers.error.code", str(error["code"]))
            span.set_attribute("smithers.will_retry", bool(payload.get("will_retry")))
            self._close_attempt(key, ts, AttemptStatus.FAILED, message)
        elif kind == EventType.ATTEMPT_ABANDONED:
            self._close_attempt(key, ts, AttemptStatus.ABANDONED, str(payload.get("reason") or "abandoned"))
        elif kind == EventType.NODE_CANCELLED:
            if payload.get("reason"):
                span.set_attribute("smithers.reason", str(payload["reason"]))
            self._close_attempt(key, ts, AttemptStatus.CANCELLED)
        else:
            self._close_attempt(key, ts, AttemptStatus.FINISHED)

    def _close_attempt(self, key: tuple[str, str, int, int], ts: int, status: str, error: str | None = None) -> None:
        for tool_key in [k for k, (_, attempt) in self.tools.items() if attempt == key]:
            tool, _ = self.tools.pop(tool_key)
            tool.end(end_time=ts)
        turn = self.turns.pop(key, None)
        if turn is not None:
            if error is not None:
                turn.set_status(self._Status(self._StatusCode.ERROR, error))
            turn.end(end_time=ts)
        span = self.attempts.pop(key)
        span.set_attribute("smithers.status", str(status))
        if error is not None:
            span.set_status(self._Status(self._StatusCode.ERROR, error))
        elif status == RunStatus.FINISHED:
            span.set_status(self._Status(self._StatusCode.OK))
        span.end(end_time=ts)

    # -- agent turns and tool calls ----------------------------------------------------------------

    def _start_turn(self, event: dict[str, Any], ts: int, payload: dict[str, Any]) -> None:
        key = self._key(event)
        attempt = self.attempts.get(key)
        if attempt is None:
            return
        previous = self.turns.pop(key, None)
        if previous is not None:
            previous.end(end_time=ts)
        attributes: dict[str, Any] = {
            "smithers.run_id": key[0], "smithers.node_id": key[1], "smithers.iteration": key[2], "smithers.attempt": key[3],
            "smithers.agent": str(payload.get("agent") or ""), "smithers.turn": int(payload.get("turn") or 0),
            "smithers.turn.kind": str(payload.get("kind") or ""),
        }
        self.turns[key] = self.tracer.start_span(
            "smithers.agent", context=self._trace.set_span_in_context(attempt), attributes=attributes, start_time=ts
        )

    def _usage(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        span = self.turns.get(self._key(event))
        if span is None:
            return
        if payload.get("model"):
            span.set_attribute("smithers.model", str(payload["model"]))
            span.set_attribute("gen_ai.request.model", str(payload["model"]))
        for kind in ("input", "output", "cache_read", "cache_write"):
            value = payload.get(f"{kind}_tokens")
            if isinstance(value, int):
                span.set_attribute(f"smithers.tokens.{kind}", value)
        if isinstance(payload.get("input_tokens"), int):
            span.set_attribute("gen_ai.usage.input_tokens", payload["input_tokens"])
        if isinstance(payload.get("output_tokens"), int):
            span.set_attribute("gen_ai.usage.output_tokens", payload["output_tokens"])
        if isinstance(payload.get("cost_usd"), (int, float)):
            span.set_attribute("smithers.cost_usd", float(payload["cost_usd"]))

    def _end_turn(self, event: dict[str, Any], ts: int, payload: dict[str, Any]) -> None:
        key = self._key(event)
        span = self.turns.pop(key, None)
        if span is None:
            return
        outcome = str(payload.get("outcome") or "")
        span.set_attribute("smithers.reply.outcome", outcome)
        if outcome == "valid":
            span.set_status(self._Status(self._StatusCode.OK))
        for tool_key in [k for k, (_, attempt) in self.tools.items() if attempt == key]:
            tool, _ = self.tools.pop(tool_key)
            tool.end(end_time=ts)
        span.end(end_time=ts)

    def _start_tool(self, event: dict[str, Any], ts: int, payload: dict[str, Any]) -> None:
        key = self._key(event)
        parent = self.turns.get(key) or self.attempts.get(key)
        if parent is None:
            return
        call_id = str(payload.get("call_id") or f"{payload.get('tool')}@{ts}")
        attributes: dict[str, Any] = {
            "smithers.run_id": key[0], "smithers.node_id": key[1], "smithers.iteration": key[2], "smithers.attempt": key[3],
            "smithers.tool": str(payload.get("tool") or ""), "smithers.tool.call_id": call_id,
        }
        span = self.tracer.start_span(
            "smithers.tool", context=self._trace.set_span_in_context(parent), attributes=attributes, start_time=ts,
        )
        self.tools[(key[0], call_id)] = (span, key)

    def _end_tool(self, event: dict[str, Any], ts: int, payload: dict[str, Any]) -> None:
        call_id = str(payload.get("call_id") or "")
        found = self.tools.pop((event["run_id"], call_id), None)
        if found is None:
            return
        span, _ = found
        if isinstance(payload.get("duration_ms"), (int, float)):
            span.set_attribute("smithers.tool.duration_ms", payload["duration_ms"])
        if isinstance(payload.get("output_bytes"), int):
            span.set_attribute("smithers.tool.output_bytes", payload["output_bytes"])
        if payload.get("is_error"):
            span.set_status(self._Status(self._StatusCode.ERROR, str(payload.get("error") or "tool call failed")))
        span.end(end_time=ts)


__all__ = ["TraceListener", "attach_tracing", "enabled", "tracer_provider"]
