"""The store's statements for the task cache (``_smithers_cache``, migration 8 in
:mod:`~smithers.storage.schema`) and a run's ``no_cache`` choice. Every SQL statement about
the cache lives here, once.

:class:`CacheStoreMixin` gives :class:`~smithers.storage.store.Store` its reads;
:class:`CacheTxMixin` gives :class:`~smithers.storage.tx.Tx` its writes, which run inside the
caller's open transaction — a cache hit (attempt, node, output row, events) and a cache store
(with the finish that produced it) each commit as one. Portable SQL only.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .dialect import rows_of

_COLUMNS = (
    "key, workflow, node_id, output_table, output_schema_hash, from_run_id, created_at_ms, expires_at_ms, hits, last_hit_at_ms"
)


_dicts = rows_of  # rows as dicts, the same keys on both backends


def _filters(workflow: str | None, created_before_ms: int | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if workflow is not None:
        clauses.append("workflow = ?")
        params.append(workflow)
    if created_before_ms is not None:
        clauses.append("created_at_ms < ?")
        params.append(created_before_ms)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class CacheStoreMixin:
    """Reads of the task cache, on a :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: sqlite3.Connection

    def cache_entry(self, key: str, now_ms: int) -> dict[str, Any] | None:
        """The live (unexpired) entry for ``key`` with its ``output_json``, or None."""
        rows = _dicts(self._conn.execute(
            "SELECT key, output_json, output_schema_hash, from_run_id, created_at_ms, expires_at_ms FROM _smithers_cache "
            "WHERE key = ? AND (expires_at_ms IS NULL OR expires_at_ms > ?)",
            (key, now_ms),
        ))
        return rows[0] if rows else None

    def cache_entries(self, *, workflow: str | None = None) -> list[dict[str, Any]]:
        """Every entry (without its output), newest first; expired ones included."""
        where, params = _filters(workflow, None)
        return _dicts(self._conn.execute(
            f"SELECT {_COLUMNS}, LENGTH(output_json) AS output_bytes FROM _smithers_cache{where} "
            "ORDER BY created_at_ms DESC, key",
            params,
        ))

    def run_no_cache(self, run_id: str) -> bool:
        """Whether the run was started (or resumed) with ``--no-cache``: it looks nothing up."""
        row = self._conn.execute("SELECT no_cache FROM _smithers_runs WHERE run_id = ?", (run_id,)).fetchone()
        return bool(row and row[0])


class CacheTxMixin:
    """Writes of the task cache, inside an open :class:`~smithers.storage.tx.Tx`."""

    __slots__ = ()
    _conn: sqlite3.Connection
    run_id: str | None
    ts: int

    def put_cache_entry(
        self, key: str, *, workflow: str, node_id: str, output_table: str, output_json: str, output_schema_hash: str,
        expires_at_ms: int | None,
    ) -> None:
        """Store (or replace) the entry for ``key``, produced by this transaction's run."""
        self._conn.execute(
            "INSERT INTO _smithers_cache (key, workflow, node_id, output_table, output_json, output_schema_hash, from_run_id, "
            "created_at_ms, expires_at_ms, hits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0) "
            "ON CONFLICT (key) DO UPDATE SET workflow = excluded.workflow, node_id = excluded.node_id, "
            "output_table = excluded.output_table, output_json = excluded.output_json, "
            "output_schema_hash = excluded.output_schema_hash, from_run_id = excluded.from_run_id, "
            "created_at_ms = excluded.created_at_ms, expires_at_ms = excluded.expires_at_ms, hits = 0, last_hit_at_ms = NULL",
            (key, workflow, node_id, output_table, output_json, output_schema_hash, self.run_id, self.ts, expires_at_ms),
        )

    def note_cache_hit(self, key: str) -> None:
        self._conn.execute(
            "UPDATE _smithers_cache SET hits = hits + 1, last_hit_at_ms = ? WHERE key = ?", (self.ts, key)
        )

    def clear_cache(self, *, workflow: str | None = None, created_before_ms: int | None = None) -> int:
        """Delete entries (of ``workflow``, created before ``created_before_ms``); returns how many."""
        where, params = _filters(workflow, created_before_ms)
        return self._conn.execute(f"DELETE FROM _smithers_cache{where}", params).rowcount

    def set_no_cache(self) -> None:
        """Mark this transaction's run ``no_cache``: from now on it looks nothing up (resumes included)."""
        self._conn.execute("UPDATE _smithers_runs SET no_cache = 1 WHERE run_id = ?", (self.run_id,))


__all__ = ["CacheStoreMixin", "CacheTxMixin"]
