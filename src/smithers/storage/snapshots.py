"""The store's statements for time travel's files side: each attempt's snapshots (the commit
before and after it, and the folder they record), a run's start snapshot and whether snapshots
are off, and the audit of destructive actions (``_smithers_audit``).

:class:`SnapshotStoreMixin` gives :class:`~smithers.storage.store.Store` its reads;
:class:`SnapshotTxMixin` gives :class:`~smithers.storage.tx.Tx` its writes, inside the caller's
open transaction (``self._conn``, ``self.run_id``, ``self.ts``). Portable SQL only.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .dialect import rows_of

_dicts = rows_of  # rows as dicts, the same keys on both backends


class SnapshotStoreMixin:
    """Reads about snapshots and the audit, on a :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: sqlite3.Connection

    def attempt_row(self, run_id: str, node_id: str, iteration: int, attempt: int) -> dict[str, Any] | None:
        """One attempt's row (with ``snapshot_before``/``snapshot_after``/``snapshot_dir``), or None."""
        rows = _dicts(self._conn.execute(
            "SELECT * FROM _smithers_attempts WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?",
            (run_id, node_id, iteration, attempt),
        ))
        return rows[0] if rows else None

    def snapshot_folders(self, run_id: str) -> list[str]:
        """Every folder the run's snapshots record: the run's own, then its worktrees'."""
        rows = self._conn.execute(
            "SELECT snapshot_dir FROM _smithers_runs WHERE run_id = ? AND snapshot_dir IS NOT NULL "
            "UNION SELECT DISTINCT snapshot_dir FROM _smithers_attempts WHERE run_id = ? AND snapshot_dir IS NOT NULL",
            (run_id, run_id),
        ).fetchall()
        return sorted({r[0] for r in rows})

    def runs_with_snapshots_ended_before(self, before_ms: int, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        """Runs in one of ``statuses`` (the ended ones) that ended before ``before_ms`` and whose
        snapshots were not pruned yet, oldest first (what ``smithers gc`` prunes)."""
        marks = ", ".join("?" for _ in statuses)
        return _dicts(self._conn.execute(
            f"SELECT run_id, status, finished_at_ms, updated_at_ms, snapshot_dir FROM _smithers_runs WHERE status IN ({marks}) "
            "AND COALESCE(finished_at_ms, updated_at_ms) < ? AND snapshots_pruned_at_ms IS NULL ORDER BY created_at_ms",
            (*statuses, before_ms),
        ))

    def audit_rows(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Audit rows (of one run, or all), oldest first, ``detail`` decoded."""
        where, params = ("WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
        rows = _dicts(self._conn.execute(f"SELECT * FROM _smithers_audit {where} ORDER BY id", params))
        for row in rows:
            row["detail"] = json.loads(row.pop("detail_json"))
        return rows


class SnapshotTxMixin:
    """Writes about snapshots and the audit, on a :class:`~smithers.storage.tx.Tx`."""

    __slots__ = ()
    _conn: sqlite3.Connection
    run_id: str | None
    ts: int

    def set_attempt_snapshot(
        self, node_id: str, iteration: int, attempt: int, *, before: str | None = None, after: str | None = None, folder: str | None = None,
    ) -> None:
        """Record an attempt's snapshot commits (and the folder they record); a None keeps what is there."""
        self._conn.execute(
            "UPDATE _smithers_attempts SET snapshot_before = COALESCE(?, snapshot_before), snapshot_after = COALESCE(?, snapshot_after), "
            "snapshot_dir = COALESCE(?, snapshot_dir) WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?",
            (before, after, folder, self.run_id, node_id, iteration, attempt),
        )

    def set_run_snapshot(self, *, start: str | None = None, folder: str | None = None) -> None:
        """Record the run's start snapshot (kept once set) and the folder its snapshots record."""
        self._conn.execute(
            "UPDATE _smithers_runs SET snapshot_start = COALESCE(snapshot_start, ?), snapshot_dir = COALESCE(?, snapshot_dir) "
            "WHERE run_id = ?",
            (start, folder, self.run_id),
        )

    def set_snapshots_off(self) -> None:
        """Take no snapshots for this run (``up --no-snapshots``), now and on every resume."""
        self._conn.execute("UPDATE _smithers_runs SET snapshots_off = 1 WHERE run_id = ?", (self.run_id,))

    def mark_snapshots_pruned(self) -> None:
        self._conn.execute("UPDATE _smithers_runs SET snapshots_pruned_at_ms = ? WHERE run_id = ?", (self.ts, self.run_id))

    def record_audit(self, action: str, *, actor: str, detail: dict[str, Any], run_id: str | None = None) -> int:
        """Append an audit row for a destructive action (``revert``, ``rewind``, ...) in this
        transaction; returns its id. ``actor``: who asked (a user name, ``http``, ...).

        >>> with store.tx(run_id) as tx:                                       # doctest: +SKIP
        ...     tx.record_audit("rewind", actor="alice", detail={"frame_no": 3})
        """
        # the database numbers the row (SQLite's rowid, PostgreSQL's identity): two writers never collide
        row = self._conn.execute(
            "INSERT INTO _smithers_audit (run_id, action, actor, at_ms, detail_json) VALUES (?, ?, ?, ?, ?) RETURNING id",
            (run_id or self.run_id, action, actor, self.ts, json.dumps(detail, separators=(",", ":"), default=str)),
        ).fetchone()
        return int(row[0])


__all__ = ["SnapshotStoreMixin", "SnapshotTxMixin"]
