"""Prometheus metrics, built from the database so they cover every process on the store.

Runs are executed by many processes (``smithers up``, subprocesses of the server, the
supervisor's resumes) but scraped from one (``smithers serve``). So the metrics are not
counted where things happen: a :class:`MetricsCollector` per database reads, on each scrape,
the ``_smithers_events`` rows committed since its last scrape (a rowid cursor, so a scrape
costs what happened since the previous one, not the length of the history) and updates
counters and histograms from them; gauges come from the current table state.

All metrics live in the collector's own ``CollectorRegistry`` (never the global default
one) and are named ``smithers_*``; the values are kept here and handed to
``prometheus-client`` as metric families at scrape time (so no ``*_created`` series).
``prometheus-client`` (the ``server`` extra) is imported only to render;
:func:`observe_transaction` does not need it. The store does not know about metrics: this
module subscribes to its commits (:func:`smithers.storage.store.add_commit_observer`).

Durations are measured from an event that starts something (``NodeStarted``,
``ToolCallStarted``) to the one that ends it. Starts whose end never comes (a run nobody
resumes) are forgotten oldest first past ``MAX_OPEN_STARTS`` each, so the collector's memory
stays bounded however long the server lives.

The first owner of a continue-as-new link records ``RunStarted`` with ``continuation: true``:
a chain's links count as runs started, never as runs resumed.
"""

from __future__ import annotations

import bisect
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..states import AttemptStatus, EventType, RunStatus
from ..storage.store import add_commit_observer

if TYPE_CHECKING:
    from ..storage.store import Store

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
TRANSACTION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")
BATCH = 5000  # events read per query while catching up
MAX_OPEN_STARTS = 100_000  # per map: attempts, nodes and tool calls started whose end has not been seen

# what a ``smithers_attempt_duration_seconds`` / ``smithers_node_duration_seconds`` sample is labelled with
_ATTEMPT_END = {
    EventType.NODE_FINISHED: AttemptStatus.FINISHED, EventType.NODE_FAILED: AttemptStatus.FAILED,
    EventType.NODE_CANCELLED: AttemptStatus.CANCELLED, EventType.ATTEMPT_ABANDONED: AttemptStatus.ABANDONED,
    EventType.ATTEMPT_SUSPENDED: AttemptStatus.SUSPENDED,
}
_RUN_COUNTERS = {
    EventType.RUN_FINISHED: RunStatus.FINISHED, EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_CANCELLED: RunStatus.CANCELLED, EventType.RUN_CONTINUED_AS_NEW: RunStatus.CONTINUED,
}

# -- metric values (plain Python; turned into Prometheus families at scrape time) -----------------


class _Counter:
    kind = "counter"

    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.values: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        self.values[label_values] = self.values.get(label_values, 0.0) + amount

    def family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in sorted(self.values.items()):
            family.add_metric(key, value)
        return family


class _Gauge(_Counter):
    kind = "gauge"

    def set(self, value: float) -> None:
        self.values[()] = float(value)

    def family(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in sorted(self.values.items()):
            family.add_metric(key, value)
        return family


class _Histogram:
    def __init__(self, name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.name, self.doc, self.labels, self.buckets = name, doc, labels, buckets
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}  # labels -> (counts per bucket + Inf, [sum])
        self._lock = threading.Lock()
        if not labels:
            self.series[()] = ([0] * (len(buckets) + 1), [0.0])

    def observe(self, value: float, *label_values: str) -> None:
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self.series.get(label_values)
            if series is None:
                series = self.series[label_values] = ([0] * (len(self.buckets) + 1), [0.0])
            series[0][index] += 1
            series[1][0] += value

    def family(self) -> Any:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        with self._lock:
            snapshot = sorted((key, list(counts), total[0]) for key, (counts, total) in self.series.items())
        for key, counts, total in snapshot:
            cumulative, buckets = 0, []
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
            family.add_metric(key, buckets, total)
        return family


# -- the store transaction histogram (in-process) ----------------------------------------------

_transactions = _Histogram(
    "smithers_store_transaction_seconds",
    "Time of one store write transaction (BEGIN IMMEDIATE to COMMIT) in the process serving these metrics",
    buckets=TRANSACTION_BUCKETS,
)


def observe_transaction(seconds: float) -> None:
    """Record one store write transaction's duration (registered as a commit observer of the
    store when this module is imported). Cheap, and needs no ``prometheus-client``. Only the
    transactions of the scraped process show up."""
    _transactions.observe(seconds)


add_commit_observer(observe_transaction)


def _remember(starts: dict[Any, int], key: Any, ts_ms: int, limit: int) -> None:
    """Note a start; past ``limit`` open starts the oldest is forgotten (its end, if it ever
    comes, then records no duration)."""
    starts[key] = ts_ms
    while len(starts) > limit:
        del starts[next(iter(starts))]


# -- the collector -----------------------------------------------------------------------------


class MetricsCollector:
    """The metrics of one database. Call :meth:`render` on each scrape."""

    def __init__(self, target: Path | str) -> None:
        from prometheus_client import CollectorRegistry

        from ..storage.target import resolve_db_target

        self.target = resolve_db_target(target)  # a SQLite path or a postgresql:// URL
        self._store: Store | None = None
        self._lock = threading.Lock()
        self.max_open_starts = MAX_OPEN_STARTS
        self.cursor = 0  # rowid of the last event counted
        self._attempt_started: dict[tuple[str, str, int, int], int] = {}  # (run, node, iteration, attempt) -> ts_ms
        self._node_started: dict[tuple[str, str, int], int] = {}  # (run, node, iteration) -> first attempt's ts_ms
        self._tool_started: dict[tuple[str, str], int] = {}  # (run, call_id) -> ts_ms

        self.runs_started = _Counter("smithers_runs_started", "Runs started (resumes not counted)")
        self.runs_resumed = _Counter(
            "smithers_runs_resumed", "Runs resumed (by smithers resume, a supervisor or a takeover; a continue-as-new link is not)"
        )
        self.runs_ended = {
            status: _Counter(f"smithers_runs_{status}", doc)
            for status, doc in (
                (RunStatus.FINISHED, "Runs that finished"), (RunStatus.FAILED, "Runs that failed"),
                (RunStatus.CANCELLED, "Runs that were cancelled"), (RunStatus.CONTINUED, "Runs that continued as a new run"),
            )
        }
        self.runs_active = _Gauge("smithers_runs_active", "Runs in status running")
        self.runs_waiting = _Gauge("smithers_runs_waiting", "Runs waiting for an approval, a signal or a timer")
        self.attempts_started = _Counter("smithers_node_attempts_started", "Task attempts started")
        self.attempts_ended = _Counter("smithers_node_attempts", "Task attempts ended, by status", ("status",))
        self.node_duration = _Histogram(
            "smithers_node_duration_seconds", "Time from a task's first attempt start to its final finish, failure or cancel",
            ("status",),
        )
        self.attempt_duration = _Histogram("smithers_attempt_duration_seconds", "Time of one task attempt, by how it ended", ("status",))
        self.retries = _Counter("smithers_node_retries", "Task retries scheduled after a failed attempt")
        self.nodes_skipped = _Counter("smithers_nodes_skipped", "Tasks skipped")
        self.cache_hits = _Counter("smithers_cache_hits", "Tasks finished from the task cache (a cached attempt; nothing ran)")
        self.agent_turns = _Counter("smithers_agent_turns", "Agent turns (prompts sent to an agent)", ("agent",))
        self.tokens = _Counter("smithers_tokens", "Tokens reported by agents", ("agent", "model", "kind"))
        self.cost = _Counter("smithers_agent_cost_usd", "Cost reported by agents, in US dollars", ("agent", "model"))
        self.tool_calls = _Counter("smithers_tool_calls", "Tool calls made by agents", ("tool", "status"))
        self.tool_duration = _Histogram("smithers_tool_duration_seconds", "Time of one tool call", ("tool",))
        self.approvals_requested = _Counter("smithers_approvals_requested", "Approvals requested")
        self.approvals_decided = _Counter("smithers_approvals_decided", "Approvals decided, by decision", ("decision",))
        self.approvals_pending = _Gauge("smithers_approvals_pending", "Approvals waiting for a decision")
        self.queue_depth = _Gauge("smithers_scheduler_queue_depth", "Tasks pending in running runs")
        self.events = _Counter("smithers_events", "Events recorded, by type", ("type",))
        self.scores = _Histogram("smithers_score", "Scores recorded by task scorers (0 to 1), by scorer", ("scorer",), SCORE_BUCKETS)
        self.score_errors = _Counter("smithers_score_errors", "Scorers that raised instead of scoring, by scorer", ("scorer",))
        self.metrics: list[Any] = [
            self.runs_started, self.runs_resumed, *self.runs_ended.values(), self.runs_active, self.runs_waiting,
            self.attempts_started, self.attempts_ended, self.node_duration, self.attempt_duration, self.retries,
            self.nodes_skipped, self.cache_hits, self.agent_turns, self.tokens, self.cost, self.tool_calls, self.tool_duration,
            self.approvals_requested, self.approvals_decided, self.approvals_pending, self.queue_depth, self.events,
            self.scores, self.score_errors, _transactions,
        ]
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Any:  # the prometheus_client Collector protocol
        for metric in self.metrics:
            yield metric.family()

    # -- reading -------------------------------------------------------------------------------

    def _reader(self) -> Store:
        """Its own read-only store: scrapes never share a transaction with the server's writes."""
        if self._store is None:
            from ..storage.store import Store

            self._store = Store.open(self.target, readonly=True)
        return self._store

    def scrape(self) -> None:
        """Count the events committed since the last scrape, then refresh the gauges."""
        with self._lock:
            self._scrape()

    def _scrape(self) -> None:
        store = self._reader()
        while True:
            rows = store.events_after_rowid(self.cursor, BATCH)
            for row in rows:
                self._count(row)
            if rows:
                self.cursor = rows[-1][0]
            if len(rows) < BATCH:
                break
        self._gauges(store)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        with self._lock:
            self._scrape()
            body = generate_latest(self.registry)
        return body, CONTENT_TYPE_LATEST

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _gauges(self, store: Store) -> None:
        gauges = store.gauges()
        self.runs_active.set(gauges["runs_active"])
        self.runs_waiting.set(gauges["runs_waiting"])
        self.approvals_pending.set(gauges["approvals_pending"])
        self.queue_depth.set(gauges["queue_depth"])

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
        self.events.inc(kind)
        if kind == EventType.RUN_STARTED:
            if payload.get("continuation"):
                pass  # the first owner of a continue-as-new link: counted as started when the link was created
            else:
                (self.runs_resumed if payload.get("resumed") else self.runs_started).inc()
        elif kind in _RUN_COUNTERS:
            self.runs_ended[_RUN_COUNTERS[kind]].inc()
        elif kind == EventType.NODE_STARTED and attempt is not None:
            self.attempts_started.inc()
            _remember(self._attempt_started, (run_id, node_id, iteration, attempt), ts_ms, self.max_open_starts)
            if (run_id, node_id, iteration) not in self._node_started:
                _remember(self._node_started, (run_id, node_id, iteration), ts_ms, self.max_open_starts)
        elif kind == EventType.NODE_CACHED:  # its NodeFinished (cached: true) is not a second attempt end
            self.cache_hits.inc()
            self.attempts_ended.inc(AttemptStatus.CACHED)
        elif kind in _ATTEMPT_END and attempt is not None and not payload.get("cached"):
            self._attempt_ended(run_id, node_id, iteration, attempt, ts_ms, _ATTEMPT_END[kind], payload)
        elif kind == EventType.NODE_RETRYING:
            self.retries.inc()
        elif kind == EventType.NODE_SKIPPED:
            self.nodes_skipped.inc()
        elif kind == EventType.AGENT_TURN:
            self.agent_turns.inc(str(payload.get("agent") or "unknown"))
        elif kind == EventType.TOKEN_USAGE_REPORTED:
            self._usage(payload)
        elif kind == EventType.TOOL_CALL_STARTED:
            _remember(self._tool_started, (run_id, str(payload.get("call_id"))), ts_ms, self.max_open_starts)
        elif kind == EventType.TOOL_CALL_FINISHED:
            self._tool_finished(run_id, ts_ms, payload)
        elif kind == EventType.APPROVAL_REQUESTED:
            self.approvals_requested.inc()
        elif kind == EventType.APPROVAL_DECIDED:  # the decision itself (ApprovalGranted/Denied: the run consuming it)
            self.approvals_decided.inc("approved" if payload.get("approved") else "denied")
        elif kind == EventType.SCORE_RECORDED:
            self._score(payload)

    def _attempt_ended(
        self, run_id: str, node_id: str, iteration: int, attempt: int, ts_ms: int, status: str, payload: dict[str, Any]
    ) -> None:
        self.attempts_ended.inc(status)
        started = self._attempt_started.pop((run_id, node_id, iteration, attempt), None)
        if started is not None:
            self.attempt_duration.observe(max(ts_ms - started, 0) / 1000, status)
        retried = status == AttemptStatus.FAILED and payload.get("will_retry")
        final = status in (AttemptStatus.FINISHED, AttemptStatus.FAILED, AttemptStatus.CANCELLED) and not retried
        if final:
            first = self._node_started.pop((run_id, node_id, iteration), None)
            if first is not None:
                self.node_duration.observe(max(ts_ms - first, 0) / 1000, status)

    def _score(self, payload: dict[str, Any]) -> None:
        name = str(payload.get("scorer") or "unknown")
        value = payload.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            self.scores.observe(float(value), name)
        elif payload.get("error"):
            self.score_errors.inc(name)

    def _usage(self, payload: dict[str, Any]) -> None:
        agent = str(payload.get("agent") or "unknown")
        model = str(payload.get("model") or "unknown")
        for kind in TOKEN_KINDS:
            value = payload.get(f"{kind}_tokens")
            if isinstance(value, (int, float)) and value > 0:
                self.tokens.inc(agent, model, kind, amount=value)
        cost = payload.get("cost_usd")
        if isinstance(cost, (int, float)) and cost > 0:
            self.cost.inc(agent, model, amount=cost)

    def _tool_finished(self, run_id: str, ts_ms: int, payload: dict[str, Any]) -> None:
        tool = str(payload.get("tool") or "unknown")
        self.tool_calls.inc(tool, "error" if payload.get("is_error") else "ok")
        started = self._tool_started.pop((run_id, str(payload.get("call_id"))), None)
        duration_ms = payload.get("duration_ms")
        if not isinstance(duration_ms, (int, float)):
            duration_ms = ts_ms - started if started is not None else None
        if duration_ms is not None:
            self.tool_duration.observe(max(duration_ms, 0) / 1000, tool)


# -- one collector per database ----------------------------------------------------------------

_collectors: dict[str, MetricsCollector] = {}
_collectors_lock = threading.Lock()


def collector_for(store: Store | Path | str) -> MetricsCollector:
    """The process's collector of this database (created on first use)."""
    from ..storage.target import resolve_db_target

    target = resolve_db_target(store if isinstance(store, (Path, str)) else store.target)
    with _collectors_lock:
        collector = _collectors.get(target)
        if collector is None:
            collector = _collectors[target] = MetricsCollector(target)
        return collector


def render_metrics(store: Store | Path | str) -> tuple[bytes, str]:
    """``(body, content type)`` of the Prometheus text exposition for ``GET /metrics``."""
    return collector_for(store).render()


__all__ = ["MetricsCollector", "collector_for", "observe_transaction", "render_metrics"]
