"""The store's statements for cron schedules (``_smithers_cron``) and a run's ``triggered_by``.

Two mixins, like :mod:`smithers.storage.waits`: :class:`CronStoreMixin` gives the
:class:`~smithers.storage.store.Store` its reads, :class:`CronTxMixin` gives
:class:`~smithers.storage.tx.Tx` its writes, which run inside the caller's open transaction so
that claiming a due time, creating its run and the run's events commit together.

Exactly one run per due time, whatever the number of supervisors: :meth:`CronTxMixin.claim_tick`
moves ``next_run_at_ms`` on only if it still holds the value the claimer read (a conditional
``UPDATE``), under the write lock of ``BEGIN IMMEDIATE``; the loser updates no row and rolls
back. Portable SQL only (PostgreSQL does the same with its row lock).
"""

from __future__ import annotations

import sqlite3
from typing import Any

_COLUMNS = (
    "id", "name", "pattern", "timezone", "workflow_spec", "workflow_name", "input_json", "cwd", "max_concurrency", "enabled",
    "next_run_at_ms", "last_run_id", "last_fired_for_ms", "created_at_ms", "updated_at_ms",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM _smithers_cron"


def _schedule(row: tuple[Any, ...]) -> dict[str, Any]:
    schedule = dict(zip(_COLUMNS, row, strict=True))
    schedule["enabled"] = bool(schedule["enabled"])
    return schedule


class CronStoreMixin:
    """Reads about cron schedules, on a :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: sqlite3.Connection

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule, oldest first."""
        return [_schedule(r) for r in self._conn.execute(f"{_SELECT} ORDER BY created_at_ms, id")]

    def schedule(self, schedule_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(f"{_SELECT} WHERE id = ?", (schedule_id,)).fetchone()
        return None if row is None else _schedule(row)

    def due_schedules(self, now_ms: int) -> list[dict[str, Any]]:
        """Enabled schedules whose next due time has come, most overdue first."""
        rows = self._conn.execute(
            f"{_SELECT} WHERE enabled = 1 AND next_run_at_ms IS NOT NULL AND next_run_at_ms <= ? ORDER BY next_run_at_ms, id",
            (now_ms,),
        )
        return [_schedule(r) for r in rows]


class CronTxMixin:
    """Writes about cron schedules, inside an open transaction (:class:`~smithers.storage.tx.Tx`)."""

    __slots__ = ()
    _conn: sqlite3.Connection
    run_id: str | None
    ts: int

    def insert_schedule(
        self, *, schedule_id: str, name: str, pattern: str, timezone: str, workflow_spec: str, workflow_name: str, input_json: str,
        cwd: str, max_concurrency: int, next_run_at_ms: int | None,
    ) -> None:
        self._conn.execute(
            "INSERT INTO _smithers_cron (id, name, pattern, timezone, workflow_spec, workflow_name, input_json, cwd, max_concurrency, "
            "enabled, next_run_at_ms, created_at_ms, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (schedule_id, name, pattern, timezone, workflow_spec, workflow_name, input_json, cwd, max_concurrency, next_run_at_ms,
             self.ts, self.ts),
        )

    def delete_schedule(self, schedule_id: str) -> bool:
        """Remove a schedule (the runs it started stay). Whether it existed."""
        return self._conn.execute("DELETE FROM _smithers_cron WHERE id = ?", (schedule_id,)).rowcount == 1

    def set_schedule_enabled(self, schedule_id: str, enabled: bool, next_run_at_ms: int | None) -> bool:
        """Pause (``enabled=False``, no next due time) or resume (with the next due time from now)."""
        cur = self._conn.execute(
            "UPDATE _smithers_cron SET enabled = ?, next_run_at_ms = ?, updated_at_ms = ? WHERE id = ?",
            (int(enabled), next_run_at_ms, self.ts, schedule_id),
        )
        return cur.rowcount == 1

    def claim_tick(
        self, schedule_id: str, *, expected_next_ms: int, fired_for_ms: int, next_run_at_ms: int | None, run_id: str
    ) -> bool:
        """Take the due time ``expected_next_ms`` of an enabled schedule for ``run_id``: move it on to
        ``next_run_at_ms`` (None: the pattern never comes due again) if nobody did since it was read. False: another process took it (or the
        schedule was paused, changed or removed) and this transaction must create nothing."""
        cur = self._conn.execute(
            "UPDATE _smithers_cron SET next_run_at_ms = ?, last_fired_for_ms = ?, last_run_id = ?, updated_at_ms = ? "
            "WHERE id = ? AND enabled = 1 AND next_run_at_ms = ?",
            (next_run_at_ms, fired_for_ms, run_id, self.ts, schedule_id, expected_next_ms),
        )
        return cur.rowcount == 1

    def set_last_run(self, schedule_id: str, run_id: str) -> bool:
        """``cron run-now``: record the run it started (the due times stay as they were)."""
        cur = self._conn.execute(
            "UPDATE _smithers_cron SET last_run_id = ?, updated_at_ms = ? WHERE id = ?", (run_id, self.ts, schedule_id)
        )
        return cur.rowcount == 1

    def set_triggered_by(self, triggered_by: str) -> None:
        """Record what started this transaction's run (``cron:ID``); written with the run row."""
        self._conn.execute("UPDATE _smithers_runs SET triggered_by = ? WHERE run_id = ?", (triggered_by, self.run_id))


__all__ = ["CronStoreMixin", "CronTxMixin"]
