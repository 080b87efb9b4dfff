"""Prometheus metrics, built from the database so they cover every process on the store.

Runs are executed by many processes (``smithers up``, subprocesses of the server, the
supervisor's resumes) but scraped from one (``smithers serve``). So the metrics are not
counted where things happen: a :class:`MetricsCollector` per database reads, on each scrape,
the ``_smithers_events`` rows committed since its last scrape (a rowid cursor, so a scrape
costs what happened since the previous one, not the length of the history) and updates
counters and histograms from them; gauges come from the current table state.

All metrics live in the collector's own ``CollectorRegistry`` (never the global default
one) and are named ``smithers_*``. ``prometheus-client`` is imported lazily (the ``server``
extra); :func:`observe_transaction` is a no-op without it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..storage.store import Store

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
TRANSACTION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")
BATCH = 5000  # events read per query while catching up

# what a ``smithers_attempt_duration_seconds`` / ``smithers_node_duration_seconds`` sample is labelled with
_ATTEMPT_END = {"NodeFinished": "finished", "NodeFailed": "failed", "NodeCancelled": "cancelled", "AttemptAbandoned": "abandoned"}
_RUN_COUNTERS = {
    "RunFinished": "finished", "RunFailed": "failed", "RunCancelled": "cancelled", "RunContinuedAsNew": "continued",
}

# -- the store transaction histogram (in-process) ----------------------------------------------

_tx_lock = threading.Lock()
_tx_histogram: Any = None
_tx_unavailable = False


def _transaction_histogram() -> Any:
    global _tx_histogram, _tx_unavailable
    if _tx_histogram is None and not _tx_unavailable:
        with _tx_lock:
            if _tx_histogram is None and not _tx_unavailable:
                try:
                    from prometheus_client import Histogram
                except ImportError:
                    _tx_unavailable = True
                    return None
                _tx_histogram = Histogram(
                    "smithers_store_transaction_seconds",
                    "Time of one store write transaction (BEGIN IMMEDIATE to COMMIT), measured in this process",
                    buckets=TRANSACTION_BUCKETS, registry=None,
                )
    return _tx_histogram


def observe_transaction(seconds: float) -> None:
    """Record one store write transaction's duration (called by ``Store.tx``). Safe and cheap
    without ``prometheus-client`` installed. Only transactions of the scraped process show up."""
    histogram = _tx_histogram if _tx_histogram is not None else _transaction_histogram()
    if histogram is not None:
        histogram.observe(seconds)


# -- the collector -----------------------------------------------------------------------------


class _ProcessMetrics:
    """Adds the in-process transaction histogram to a collector's registry."""

    def collect(self) -> Any:
        histogram = _transaction_histogram()
        return histogram.collect() if histogram is not None else []


class MetricsCollector:
    """The metrics of one database. Call :meth:`scrape` (or :meth:`render`) on each scrape."""

    def __init__(self, path: Path | str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.cursor = 0  # rowid of the last event counted
        self._attempt_started: dict[tuple[str, str, int, int], int] = {}  # (run, node, iteration, attempt) -> ts_ms
        self._node_started: dict[tuple[str, str, int], int] = {}  # (run, node, iteration) -> first attempt's ts_ms
        self._tool_started: dict[tuple[str, str], int] = {}  # (run, call_id) -> ts_ms
        r = self.registry = CollectorRegistry(auto_describe=True)

        self.runs_started = Counter("smithers_runs_started", "Runs started (not counting resumes)", registry=r)
        self.runs_resumed = Counter("smithers_runs_resumed", "Runs resumed after their process stopped", registry=r)
        self.runs_ended = {
            status: Counter(f"smithers_runs_{status}", f"Runs that ended {status}", registry=r)
            for status in ("finished", "failed", "cancelled", "continued")
        }
        self.runs_active = Gauge("smithers_runs_active", "Runs in status running", registry=r)
        self.runs_waiting = Gauge("smithers_runs_waiting", "Runs waiting for an approval, a signal or a timer", registry=r)
        self.nodes_started = Counter("smithers_node_attempts_started", "Task attempts started", registry=r)
        self.attempts_ended = Counter("smithers_node_attempts", "Task attempts ended, by status", ["status"], registry=r)
        self.node_duration = Histogram(
            "smithers_node_duration_seconds", "Time from a task's first attempt start to its final finish or failure",
            ["status"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.attempt_duration = Histogram(
            "smithers_attempt_duration_seconds", "Time of one task attempt, by how it ended", ["status"],
            buckets=DURATION_BUCKETS, registry=r,
        )
        self.retries = Counter("smithers_node_retries", "Task retries scheduled after a failed attempt", registry=r)
        self.nodes_skipped = Counter("smithers_nodes_skipped", "Tasks skipped", registry=r)
        self.agent_turns = Counter("smithers_agent_turns", "Agent turns (prompts sent to an agent)", ["agent"], registry=r)
        self.tokens = Counter("smithers_tokens", "Tokens reported by agents", ["agent", "model", "kind"], registry=r)
        self.cost = Counter("smithers_agent_cost_usd", "Cost reported by agents, in US dollars", ["agent", "model"], registry=r)
        self.tool_calls = Counter("smithers_tool_calls", "Tool calls made by agents", ["tool", "status"], registry=r)
        self.tool_duration = Histogram(
            "smithers_tool_duration_seconds", "Time of one tool call", ["tool"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.approvals_requested = Counter("smithers_approvals_requested", "Approvals requested", registry=r)
        self.approvals_decided = Counter("smithers_approvals_decided", "Approvals decided, by outcome", ["decision"], registry=r)
        self.approvals_pending = Gauge("smithers_approvals_pending", "Approvals waiting for a decision", registry=r)
        self.queue_depth = Gauge("smithers_scheduler_queue_depth", "Tasks pending in running runs", registry=r)
        self.events = Counter("smithers_events", "Events recorded, by type", ["type"], registry=r)
        r.register(_ProcessMetrics())

    # -- reading -------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """Its own connection: scrapes never share a transaction with the server's writes."""
        if self._conn is None:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return self._conn

    def scrape(self) -> None:
        """Count the events committed since the last scrape, then refresh the gauges."""
        with self._lock:
            conn = self._connection()
            while True:
                rows = conn.execute(
                    "SELECT rowid, run_id, type, ts_ms, node_id, iteration, attempt, payload_json FROM _smithers_events "
                    "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (self.cursor, BATCH),
                ).fetchall()
                for row in rows:
                    self._count(row)
                if rows:
                    self.cursor = rows[-1][0]
                if len(rows) < BATCH:
                    break
            self._gauges(conn)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.scrape()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _gauges(self, conn: sqlite3.Connection) -> None:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        self.runs_active.set(one("SELECT COUNT(*) FROM _smithers_runs WHERE status = 'running'"))
        self.runs_waiting.set(one("SELECT COUNT(*) FROM _smithers_runs WHERE status LIKE 'waiting-%'"))
        self.approvals_pending.set(one("SELECT COUNT(*) FROM _smithers_approvals WHERE status = 'requested'"))
        self.queue_depth.set(one(
            "SELECT COUNT(*) FROM _smithers_runs r JOIN _smithers_nodes n ON n.run_id = r.run_id "
            "WHERE r.status = 'running' AND n.status = 'pending'"
        ))

    # -- counting one event --------------------------------------------------------------------

    def _count(self, row: tuple[Any, ...]) -> None:
        _, run_id, kind, ts_ms, node_id, iteration, attempt, payload_json = row
        payload: dict[str, Any] = {}
        if payload_json:
            try:
                loaded = json.loads(payload_json)
            except ValueError:
                loaded = None
            if isinstance(loaded, dict):
                payload = loaded
        self.events.labels(type=kind).inc()
        if kind == "RunStarted":
            (self.runs_resumed if payload.get("resumed") else self.runs_started).inc()
        elif kind in _RUN_COUNTERS:
            self.runs_ended[_RUN_COUNTERS[kind]].inc()
        elif kind == "NodeStarted" and attempt is not None:
            self.nodes_started.inc()
            self._attempt_started[(run_id, node_id, iteration, attempt)] = ts_ms
            self._node_started.setdefault((run_id, node_id, iteration), ts_ms)
        elif kind in _ATTEMPT_END and attempt is not None:
            self._attempt_ended(run_id, node_id, iteration, attempt, ts_ms, _ATTEMPT_END[kind], payload)
        elif kind == "NodeRetrying":
            self.retries.inc()
        elif kind == "NodeSkipped":
            self.nodes_skipped.inc()
        elif kind == "AgentTurn":
            self.agent_turns.labels(agent=str(payload.get("agent") or "unknown")).inc()
        elif kind == "TokenUsageReported":
            self._usage(payload)
        elif kind == "ToolCallStarted":
            self._tool_started[(run_id, str(payload.get("call_id")))] = ts_ms
        elif kind == "ToolCallFinished":
            self._tool_finished(run_id, ts_ms, payload)
        elif kind == "ApprovalRequested":
            self.approvals_requested.inc()
        elif kind == "ApprovalDecided":  # the decision itself (ApprovalGranted/Denied: the run consuming it)
            self.approvals_decided.labels(decision="approved" if payload.get("approved") else "denied").inc()

    def _attempt_ended(
        self, run_id: str, node_id: str, iteration: int, attempt: int, ts_ms: int, status: str, payload: dict[str, Any]
    ) -> None:
        self.attempts_ended.labels(status=status).inc()
        started = self._attempt_started.pop((run_id, node_id, iteration, attempt), None)
        if started is not None:
            self.attempt_duration.labels(status=status).observe(max(ts_ms - started, 0) / 1000)
        final = status == "finished" or (status == "failed" and not payload.get("will_retry")) or status == "cancelled"
        if final:
            first = self._node_started.pop((run_id, node_id, iteration), None)
            if first is not None:
                self.node_duration.labels(status=status).observe(max(ts_ms - first, 0) / 1000)

    def _usage(self, payload: dict[str, Any]) -> None:
        agent = str(payload.get("agent") or "unknown")
        model = str(payload.get("model") or "unknown")
        for kind in TOKEN_KINDS:
            value = payload.get(f"{kind}_tokens")
            if isinstance(value, (int, float)) and value > 0:
                self.tokens.labels(agent=agent, model=model, kind=kind).inc(value)
        cost = payload.get("cost_usd")
        if isinstance(cost, (int, float)) and cost > 0:
            self.cost.labels(agent=agent, model=model).inc(cost)

    def _tool_finished(self, run_id: str, ts_ms: int, payload: dict[str, Any]) -> None:
        tool = str(payload.get("tool") or "unknown")
        self.tool_calls.labels(tool=tool, status="error" if payload.get("is_error") else "ok").inc()
        started = self._tool_started.pop((run_id, str(payload.get("call_id"))), None)
        duration_ms = payload.get("duration_ms")
        if not isinstance(duration_ms, (int, float)):
            duration_ms = ts_ms - started if started is not None else None
        if duration_ms is not None:
            self.tool_duration.labels(tool=tool).observe(max(duration_ms, 0) / 1000)


# -- one collector per database ----------------------------------------------------------------

_collectors: dict[Path, MetricsCollector] = {}
_collectors_lock = threading.Lock()


def collector_for(store: Store | Path | str) -> MetricsCollector:
    """The process's collector of this database (created on first use)."""
    path = Path(getattr(store, "path", store)).expanduser().resolve()
    with _collectors_lock:
        collector = _collectors.get(path)
        if collector is None:
            collector = _collectors[path] = MetricsCollector(path)
        return collector


def render_metrics(store: Store | Path | str) -> tuple[bytes, str]:
    """``(body, content type)`` of the Prometheus text exposition for ``GET /metrics``."""
    return collector_for(store).render()


__all__ = ["MetricsCollector", "collector_for", "observe_transaction", "render_metrics"]
