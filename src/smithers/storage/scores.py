"""The store's statements for scores (``_smithers_scores``) and eval runs (``_smithers_eval_runs``).

Two mixins, like :mod:`smithers.storage.waits`: :class:`ScoreStoreMixin` gives the
:class:`~smithers.storage.store.Store` its reads; :class:`ScoreTxMixin` gives
:class:`~smithers.storage.tx.Tx` its writes, inside the caller's open transaction so that a
score row and its ``ScoreRecorded`` event commit together. Portable SQL only.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..states import AttemptStatus, EventType, NodeStatus
from .dialect import rows_of

_SCORE_COLUMNS = "node_id, iteration, attempt, scorer, value, reason, meta_json, error_json, latency_ms, created_at_ms"


_dicts = rows_of  # rows as dicts, the same keys on both backends


def _score(row: dict[str, Any]) -> dict[str, Any]:
    meta = row.pop("meta_json")
    error = row.pop("error_json")
    row["meta"] = json.loads(meta) if meta else {}
    row["error"] = json.loads(error) if error else None
    return row


class ScoreStoreMixin:
    """Reads about scores and eval runs, on a :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: sqlite3.Connection

    def scores(self, run_id: str, node_id: str | None = None) -> list[dict[str, Any]]:
        """A run's score rows (``meta`` and ``error`` decoded), by node, iteration, attempt, scorer."""
        sql = f"SELECT {_SCORE_COLUMNS} FROM _smithers_scores WHERE run_id = ?"
        params: list[Any] = [run_id]
        if node_id is not None:
            sql += " AND node_id = ?"
            params.append(node_id)
        sql += " ORDER BY node_id, iteration, attempt, scorer"
        return [_score(row) for row in _dicts(self._conn.execute(sql, params))]

    def score_keys(self, run_id: str, node_id: str) -> set[tuple[int, int, str]]:
        """``(iteration, attempt, scorer)`` of every score a node already has."""
        rows = self._conn.execute(
            "SELECT iteration, attempt, scorer FROM _smithers_scores WHERE run_id = ? AND node_id = ?", (run_id, node_id)
        )
        return {(r[0], r[1], r[2]) for r in rows}

    def finished_attempts(self, run_id: str, node_id: str, iteration: int | None = None) -> list[dict[str, Any]]:
        """The attempt that produced each finished iteration of a node: ``iteration, attempt,
        started_at_ms, finished_at_ms, meta`` (oldest iteration first)."""
        sql = (
            "SELECT a.iteration, a.attempt, a.started_at_ms, a.finished_at_ms, a.meta_json FROM _smithers_attempts a "
            "JOIN _smithers_nodes n ON n.run_id = a.run_id AND n.node_id = a.node_id AND n.iteration = a.iteration "
            "WHERE a.run_id = ? AND a.node_id = ? AND a.status = ? AND n.status = ?"
        )
        params: list[Any] = [run_id, node_id, AttemptStatus.FINISHED, NodeStatus.FINISHED]
        if iteration is not None:
            sql += " AND a.iteration = ?"
            params.append(iteration)
        rows = _dicts(self._conn.execute(sql + " ORDER BY a.iteration, a.attempt", params))
        for row in rows:
            meta = row.pop("meta_json")
            row["meta"] = json.loads(meta) if meta else {}
        return rows

    def usage_of(self, run_id: str, node_id: str | None = None, iteration: int | None = None, attempt: int | None = None) -> dict[str, Any]:
        """Token usage (and cost) the agents reported, summed over a run or one of its attempts:
        ``{input_tokens, output_tokens, ..., cost_usd?}``; empty when nothing was reported."""
        sql = "SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = ?"
        params: list[Any] = [run_id, EventType.TOKEN_USAGE_REPORTED]
        for column, value in (("node_id", node_id), ("iteration", iteration), ("attempt", attempt)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        total: dict[str, Any] = {}
        for (payload_json,) in self._conn.execute(sql, params):
            payload = json.loads(payload_json) if payload_json else {}
            for key, value in payload.items():
                if (key.endswith("_tokens") or key == "cost_usd") and isinstance(value, (int, float)):
                    total[key] = total.get(key, 0) + value
        return total

    def eval_run(self, run_id: str) -> dict[str, Any] | None:
        """The eval tag of a run (``eval_id, case_id, expected``), or None for an ordinary run."""
        rows = _dicts(self._conn.execute(
            "SELECT run_id, eval_id, case_id, expected_json, created_at_ms FROM _smithers_eval_runs WHERE run_id = ?", (run_id,)
        ))
        if not rows:
            return None
        row = rows[0]
        expected = row.pop("expected_json")
        row["expected"] = json.loads(expected) if expected is not None else None
        return row

    def eval_runs(self, eval_id: str) -> list[dict[str, Any]]:
        """The runs of one eval: ``run_id, case_id`` in the order they were tagged."""
        return _dicts(self._conn.execute(
            "SELECT run_id, case_id FROM _smithers_eval_runs WHERE eval_id = ? ORDER BY created_at_ms, rowid", (eval_id,)
        ))


class ScoreTxMixin:
    """Writes about scores and eval runs, on a :class:`~smithers.storage.tx.Tx`."""

    __slots__ = ()
    _conn: sqlite3.Connection
    run_id: str | None
    ts: int

    def record_score(
        self, node_id: str, iteration: int, attempt: int, scorer: str, *, value: float | None, reason: str | None,
        meta: dict[str, Any] | None, error: dict[str, Any] | None, latency_ms: int,
    ) -> bool:
        """Insert one score row. Returns False (and writes nothing) when that scorer already
        scored that attempt: a score is recorded once, whoever computes it."""
        cur = self._conn.execute(
            f"INSERT INTO _smithers_scores (run_id, {_SCORE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, node_id, iteration, attempt, scorer) DO NOTHING",
            (
                self.run_id, node_id, iteration, attempt, scorer, value, reason,
                json.dumps(meta, default=str) if meta else None, json.dumps(error, default=str) if error else None, latency_ms, self.ts,
            ),
        )
        return cur.rowcount == 1

    def tag_eval_run(self, run_id: str, *, eval_id: str, case_id: str, expected: Any) -> None:
        """Mark ``run_id`` (created next, by the case's ``smithers up``) as case ``case_id`` of ``eval_id``."""
        self._conn.execute(
            "INSERT INTO _smithers_eval_runs (run_id, eval_id, case_id, expected_json, created_at_ms) VALUES (?, ?, ?, ?, ?)",
            (run_id, eval_id, case_id, None if expected is None else json.dumps(expected, default=str), self.ts),
        )


__all__ = ["ScoreStoreMixin", "ScoreTxMixin"]
