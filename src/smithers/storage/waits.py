"""The store's statements for waits: approvals, human requests, signals, timers, waiting nodes
and Subflow child runs. Every SQL statement about waiting lives here, once.

Two mixins: :class:`WaitStoreMixin` gives :class:`~smithers.storage.store.Store` its reads
(plain queries on ``self._conn``); :class:`WaitTxMixin` gives
:class:`~smithers.storage.store.Tx` its writes, which run inside the caller's open
transaction (``self._conn``, ``self.run_id``, ``self.ts``) so that a state change and its
events commit together. Both keep to portable SQL; nothing here imports above ``storage``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..states import ENDED_RUN_STATUSES, WAITING_RUN_STATUSES, NodeStatus
from .dialect import rows_of

_WAITING_RUNS = tuple(sorted(WAITING_RUN_STATUSES))
_ENDED_RUNS = tuple(sorted(ENDED_RUN_STATUSES))
_LIVE_RUNS = f"run_id IN (SELECT run_id FROM _smithers_runs WHERE status NOT IN ({', '.join('?' for _ in _ENDED_RUNS)}))"

# a signal matches a wait by name and correlation id (a wait without one takes only signals without one)
_SIGNAL_MATCH = "run_id = ? AND name = ? AND consumed_node_id IS NULL AND ((? IS NULL AND correlation_id IS NULL) OR correlation_id = ?)"


_dicts = rows_of  # rows as dicts, the same keys on both backends


def _approval(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"status": row[0], "decision": json.loads(row[1]) if row[1] else {}, "decided_by": row[2], "decided_at_ms": row[3]}


class WaitStoreMixin:
    """Reads about waits, on a :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: sqlite3.Connection

    # -- approvals ---------------------------------------------------------------------------

    def approval_row(self, run_id: str, node_id: str, iteration: int) -> dict[str, Any] | None:
        """``{status, decision, decided_by, decided_at_ms}`` of a node's approval, or None if none was requested."""
        return _approval(self._conn.execute(
            "SELECT status, decision_json, decided_by, decided_at_ms FROM _smithers_approvals "
            "WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (run_id, node_id, iteration),
        ).fetchone())

    def requested_approvals(self, run_id: str) -> list[dict[str, Any]]:
        """Undecided approvals of a run (approval rows with ``node_status``), oldest first."""
        return _dicts(self._conn.execute(
            "SELECT a.*, n.status AS node_status FROM _smithers_approvals a JOIN _smithers_nodes n "
            "ON n.run_id = a.run_id AND n.node_id = a.node_id AND n.iteration = a.iteration "
            "WHERE a.run_id = ? AND a.status = 'requested' ORDER BY a.requested_at_ms",
            (run_id,),
        ))

    def requested_approvals_of_live_runs(self) -> list[dict[str, Any]]:
        """Undecided approvals across every run that is not over, oldest first."""
        return _dicts(self._conn.execute(
            "SELECT run_id, node_id, iteration, request_json, requested_at_ms, gate FROM _smithers_approvals "
            f"WHERE status = 'requested' AND {_LIVE_RUNS} ORDER BY requested_at_ms",
            _ENDED_RUNS,
        ))

    def decided_approval(self, run_id: str) -> dict[str, Any] | None:
        """An approval decided while its node still waits (the run can go on), or None."""
        rows = _dicts(self._conn.execute(
            "SELECT a.node_id, a.iteration, a.status FROM _smithers_approvals a JOIN _smithers_nodes n ON n.run_id = a.run_id "
            "AND n.node_id = a.node_id AND n.iteration = a.iteration "
            "WHERE a.run_id = ? AND a.status != 'requested' AND n.status = ? LIMIT 1",
            (run_id, NodeStatus.WAITING_APPROVAL),
        ))
        return rows[0] if rows else None

    # -- human requests ------------------------------------------------------------------------

    def human_request(self, run_id: str, node_id: str, iteration: int) -> dict[str, Any] | None:
        """The human request of a node (its whole row), or None."""
        rows = _dicts(self._conn.execute(
            "SELECT * FROM _smithers_human_requests WHERE run_id = ? AND node_id = ? AND iteration = ?", (run_id, node_id, iteration)
        ))
        return rows[0] if rows else None

    def human_request_by_id(self, request_id: str) -> dict[str, Any] | None:
        rows = _dicts(self._conn.execute("SELECT * FROM _smithers_human_requests WHERE request_id = ?", (request_id,)))
        return rows[0] if rows else None

    def pending_human_requests_of_live_runs(self) -> list[dict[str, Any]]:
        return _dicts(self._conn.execute(
            f"SELECT * FROM _smithers_human_requests WHERE status = 'pending' AND {_LIVE_RUNS} ORDER BY created_at_ms", _ENDED_RUNS
        ))

    def answered_human_request(self, run_id: str) -> dict[str, Any] | None:
        """A human request answered while its node still waits (the run can go on), or None."""
        rows = _dicts(self._conn.execute(
            "SELECT h.node_id, h.iteration, h.request_id FROM _smithers_human_requests h JOIN _smithers_nodes n ON n.run_id = h.run_id "
            "AND n.node_id = h.node_id AND n.iteration = h.iteration "
            "WHERE h.run_id = ? AND h.status = 'answered' AND n.status = ? LIMIT 1",
            (run_id, NodeStatus.WAITING_APPROVAL),
        ))
        return rows[0] if rows else None

    # -- signals -------------------------------------------------------------------------------

    def next_signal(self, run_id: str, name: str, correlation_id: str | None) -> tuple[int, Any] | None:
        """The oldest delivered, unconsumed signal a wait for (``name``, ``correlation_id``) takes:
        ``(seq, payload)``, or None."""
        row = self._conn.execute(
            f"SELECT seq, payload_json FROM _smithers_signals WHERE {_SIGNAL_MATCH} ORDER BY seq LIMIT 1",
            (run_id, name, correlation_id, correlation_id),
        ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def signal_waits(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Nodes waiting for a signal (of one run, or of every run that is not over): ``{run_id,
        node_id, iteration, waiting_since_ms, signal, correlation_id, schema}``."""
        where, params = ("run_id = ?", (run_id,)) if run_id is not None else (_LIVE_RUNS, _ENDED_RUNS)
        out = []
        for row in _dicts(self._conn.execute(
            "SELECT run_id, node_id, iteration, meta_json, waiting_since_ms FROM _smithers_nodes "
            f"WHERE status = ? AND {where} ORDER BY waiting_since_ms",
            (NodeStatus.WAITING_EVENT, *params),
        )):
            meta = json.loads(row.pop("meta_json") or "{}")
            if meta.get("signal") is not None:
                out.append({**row, "signal": meta["signal"], "correlation_id": meta.get("correlation_id"), "schema": meta.get("schema")})
        return out

    def signal_schema(self, run_id: str, name: str) -> dict[str, Any] | None:
        """The schema of signal ``name`` if a node of the run that is not finished declares it."""
        for (meta_json,) in self._conn.execute(
            "SELECT meta_json FROM _smithers_nodes WHERE run_id = ? AND meta_json IS NOT NULL AND status != ?",
            (run_id, NodeStatus.FINISHED),
        ):
            meta = json.loads(meta_json)
            if meta.get("signal") == name and meta.get("schema"):
                schema: dict[str, Any] = meta["schema"]
                return schema
        return None

    # -- timers and waiting nodes --------------------------------------------------------------

    def timer_for(self, run_id: str, node_id: str, iteration: int) -> int | None:
        """When a node's timer fires (epoch ms; fixed when it was created), or None."""
        row = self._conn.execute(
            "SELECT fires_at_ms FROM _smithers_timers WHERE run_id = ? AND node_id = ? AND iteration = ?", (run_id, node_id, iteration)
        ).fetchone()
        return row[0] if row else None

    def waiting_timers(self, run_id: str) -> list[tuple[str, int, int]]:
        """``(node_id, iteration, fires_at_ms)`` of every timer whose node still waits for it."""
        return [tuple(r) for r in self._conn.execute(
            "SELECT t.node_id, t.iteration, t.fires_at_ms FROM _smithers_timers t JOIN _smithers_nodes n ON n.run_id = t.run_id "
            "AND n.node_id = t.node_id AND n.iteration = t.iteration WHERE t.run_id = ? AND n.status = ? ORDER BY t.fires_at_ms",
            (run_id, NodeStatus.WAITING_TIMER),
        )]

    def waiting_since(self, run_id: str, node_id: str, iteration: int) -> int | None:
        row = self._conn.execute(
            "SELECT waiting_since_ms FROM _smithers_nodes WHERE run_id = ? AND node_id = ? AND iteration = ?", (run_id, node_id, iteration)
        ).fetchone()
        return row[0] if row else None

    # -- subflows ------------------------------------------------------------------------------

    def waiting_children(self, run_id: str) -> list[dict[str, Any]]:
        """Child runs (of Subflow nodes) of ``run_id`` that wait: their run rows."""
        return _dicts(self._conn.execute(
            f"SELECT * FROM _smithers_runs WHERE parent_run_id = ? AND status IN ({', '.join('?' for _ in _WAITING_RUNS)}) ORDER BY run_id",
            (run_id, *_WAITING_RUNS),
        ))

    def waiting_subflows(self, run_id: str) -> list[dict[str, Any]]:
        """Subflow nodes of ``run_id`` that wait with their child run: ``{node_id, iteration,
        child_run_id, child_status}``."""
        return _dicts(self._conn.execute(
            "SELECT n.node_id, n.iteration, c.run_id AS child_run_id, c.status AS child_status FROM _smithers_nodes n "
            "JOIN _smithers_runs c ON c.parent_run_id = n.run_id AND c.run_id = n.run_id || '.' || n.node_id || '.' || n.iteration "
            f"WHERE n.run_id = ? AND n.kind = 'subflow' AND n.status IN ({', '.join('?' for _ in _WAITING_RUNS)}) ORDER BY n.rowid",
            (run_id, *_WAITING_RUNS),
        ))


class WaitTxMixin:
    """Writes about waits, inside an open transaction (:class:`~smithers.storage.store.Tx`)."""

    __slots__ = ()
    _conn: sqlite3.Connection
    run_id: str | None
    ts: int

    def mark_waiting(self, node_id: str, iteration: int, status: str, meta: dict[str, Any] | None = None) -> None:
        """The node waits with ``status``; ``waiting_since_ms`` is kept from the first time it waited."""
        self._conn.execute(
            "UPDATE _smithers_nodes SET status = ?, waiting_since_ms = COALESCE(waiting_since_ms, ?), "
            "meta_json = COALESCE(?, meta_json), updated_at_ms = ? WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (status, self.ts, json.dumps(meta) if meta is not None else None, self.ts, self.run_id, node_id, iteration),
        )

    def request_approval(self, node_id: str, iteration: int, request: dict[str, Any], *, gate: bool) -> None:
        """Record an approval request (once: a second request for the node changes nothing)."""
        self._conn.execute(
            "INSERT INTO _smithers_approvals (run_id, node_id, iteration, status, gate, request_json, requested_at_ms) "
            "VALUES (?, ?, ?, 'requested', ?, ?, ?) ON CONFLICT (run_id, node_id, iteration) DO NOTHING",
            (self.run_id, node_id, iteration, int(gate), json.dumps(request), self.ts),
        )

    def record_decision(self, node_id: str, iteration: int, *, approved: bool, decision: dict[str, Any], by: str | None) -> bool:
        """Decide a requested approval. Returns False if it was no longer undecided."""
        cur = self._conn.execute(
            "UPDATE _smithers_approvals SET status = ?, decision_json = ?, decided_at_ms = ?, decided_by = ? "
            "WHERE run_id = ? AND node_id = ? AND iteration = ? AND status = 'requested'",
            ("approved" if approved else "denied", json.dumps(decision), self.ts, by, self.run_id, node_id, iteration),
        )
        return cur.rowcount == 1

    def request_human(self, request_id: str, node_id: str, iteration: int, prompt: str, schema: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT INTO _smithers_human_requests (request_id, run_id, node_id, iteration, status, prompt, schema_json, created_at_ms) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
            (request_id, self.run_id, node_id, iteration, prompt, json.dumps(schema), self.ts),
        )

    def answer_human(self, request_id: str, value: Any, *, by: str | None) -> bool:
        """Answer a pending human request. Returns False if it was no longer pending."""
        cur = self._conn.execute(
            "UPDATE _smithers_human_requests SET status = 'answered', answer_json = ?, answered_by = ?, answered_at_ms = ? "
            "WHERE request_id = ? AND status = 'pending'",
            (json.dumps(value), by, self.ts, request_id),
        )
        return cur.rowcount == 1

    def reject_human_answer(self, request_id: str) -> None:
        """An answer that does not validate: the request is pending again."""
        self._conn.execute("UPDATE _smithers_human_requests SET status = 'pending', answer_json = NULL WHERE request_id = ?", (request_id,))

    def pending_signal_with_key(self, dedupe_key: str) -> int | None:
        """The seq of an unconsumed signal with this dedupe key (an identical re-send), or None."""
        row = self._conn.execute(
            "SELECT seq FROM _smithers_signals WHERE run_id = ? AND dedupe_key = ? AND consumed_node_id IS NULL", (self.run_id, dedupe_key)
        ).fetchone()
        return row[0] if row else None

    def add_signal(self, name: str, correlation_id: str | None, payload_json: str, dedupe_key: str, by: str | None) -> int:
        """Deliver a signal to the run; returns its seq (per run, from 1)."""
        seq: int = self._conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM _smithers_signals WHERE run_id = ?", (self.run_id,)
        ).fetchone()[0] + 1
        self._conn.execute(
            "INSERT INTO _smithers_signals (run_id, seq, name, correlation_id, payload_json, dedupe_key, received_at_ms, sent_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, seq, name, correlation_id, payload_json, dedupe_key, self.ts, by),
        )
        return seq

    def consume_signal(self, seq: int, node_id: str, iteration: int) -> None:
        self._conn.execute(
            "UPDATE _smithers_signals SET consumed_node_id = ?, consumed_iteration = ? WHERE run_id = ? AND seq = ?",
            (node_id, iteration, self.run_id, seq),
        )

    def create_timer(self, node_id: str, iteration: int, fires_at_ms: int) -> None:
        self._conn.execute(
            "INSERT INTO _smithers_timers (run_id, node_id, iteration, fires_at_ms) VALUES (?, ?, ?, ?)",
            (self.run_id, node_id, iteration, fires_at_ms),
        )

    def fire_timer(self, node_id: str, iteration: int, fired_at_ms: int) -> None:
        self._conn.execute(
            "UPDATE _smithers_timers SET fired_at_ms = ? WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (fired_at_ms, self.run_id, node_id, iteration),
        )


__all__ = ["WaitStoreMixin", "WaitTxMixin"]
