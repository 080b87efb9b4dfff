"""Reads: plain queries over the store's tables, returning dicts (``Store`` inherits them).

None of them writes; each names what it answers. Statuses and event types come from
:mod:`smithers.states`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..errors import StorageError
from ..states import WAITING_RUN_STATUSES, NodeStatus, RunStatus
from .dialect import POSTGRESQL, dialect_of, table_exists
from .sqlite import is_missing_table
from .tx import rows_of


class StoreReads:
    """The read half of :class:`~smithers.storage.store.Store` (uses its private ``_conn``)."""

    _conn: sqlite3.Connection

    # -- reads ---------------------------------------------------------------------------

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return rows_of(self._conn.execute(sql, params))

    def _one_int(self, sql: str, params: Any = ()) -> int:
        """The first column of the first row of a query that always gives one integer (a COUNT,
        a COALESCE(MAX(...), 0))."""
        value: int = self._conn.execute(sql, params).fetchone()[0]
        return value

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM _smithers_runs WHERE run_id = ?", (run_id,))
        return rows[0] if rows else None

    def list_runs(self, *, status: str | None = None, limit: int | None = 20) -> list[dict[str, Any]]:
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        lim = "" if limit is None else f"LIMIT {int(limit)}"
        return self._rows(f"SELECT * FROM _smithers_runs {where} ORDER BY created_at_ms DESC, run_id DESC {lim}", params)

    def nodes(self, run_id: str, node_id: str | None = None) -> list[dict[str, Any]]:
        if node_id is None:
            return self._rows("SELECT * FROM _smithers_nodes WHERE run_id = ? ORDER BY rowid", (run_id,))
        return self._rows(
            "SELECT * FROM _smithers_nodes WHERE run_id = ? AND node_id = ? ORDER BY iteration", (run_id, node_id)
        )

    def attempts(self, run_id: str, node_id: str | None = None) -> list[dict[str, Any]]:
        if node_id is None:
            return self._rows(
                "SELECT * FROM _smithers_attempts WHERE run_id = ? ORDER BY started_at_ms, node_id, iteration, attempt", (run_id,)
            )
        return self._rows(
            "SELECT * FROM _smithers_attempts WHERE run_id = ? AND node_id = ? ORDER BY iteration, attempt", (run_id, node_id)
        )

    def events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        type_prefix: str | None = None,
        node_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM _smithers_events WHERE run_id = ? AND seq > ?"
        params: list[Any] = [run_id, after_seq]
        if type_prefix:
            sql += " AND type LIKE ? ESCAPE '\\'"
            params.append(type_prefix.replace("%", "\\%").replace("_", "\\_") + "%")
        if node_id:
            sql += " AND node_id = ?"
            params.append(node_id)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [event_from_row(r) for r in self._rows(sql, params)]

    def frames(self, run_id: str, upto: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM _smithers_frames WHERE run_id = ?"
        params: list[Any] = [run_id]
        if upto is not None:
            sql += " AND frame_no <= ?"
            params.append(upto)
        return self._rows(sql + " ORDER BY frame_no", params)

    def frame_summaries(self, run_id: str) -> list[dict[str, Any]]:
        """Each frame's number, keyframe flag, event seq and time (without its data), oldest first."""
        return self._rows(
            "SELECT frame_no, is_keyframe, event_seq, created_at_ms FROM _smithers_frames WHERE run_id = ? ORDER BY frame_no", (run_id,)
        )

    def frame_count(self, run_id: str) -> int:
        return self._one_int("SELECT COUNT(*) FROM _smithers_frames WHERE run_id = ?", (run_id,))

    def loops(self, run_id: str) -> dict[str, tuple[int, bool]]:
        rows = self._conn.execute("SELECT loop_id, iteration, done FROM _smithers_loops WHERE run_id = ?", (run_id,))
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    def last_heartbeat(self, run_id: str, node_id: str, iteration: int) -> Any:
        row = self._conn.execute(
            "SELECT heartbeat_json FROM _smithers_attempts WHERE run_id = ? AND node_id = ? AND iteration = ? "
            "AND heartbeat_json IS NOT NULL ORDER BY attempt DESC LIMIT 1",
            (run_id, node_id, iteration),
        ).fetchone()
        return json.loads(row[0]) if row else None

    # -- runs --------------------------------------------------------------------------------

    def count_runs(self, status: str | None = None) -> int:
        """How many runs (with ``status``, if given) the store holds."""
        if status is None:
            return self._one_int("SELECT COUNT(*) FROM _smithers_runs")
        return self._one_int("SELECT COUNT(*) FROM _smithers_runs WHERE status = ?", (str(status),))

    def runs_with_status(self, statuses: frozenset[str] | set[str] | tuple[str, ...]) -> list[dict[str, Any]]:
        """Every run whose status is one of ``statuses``, oldest first (the supervisor's scan)."""
        wanted = sorted(str(s) for s in statuses)
        marks = ", ".join("?" for _ in wanted)
        return self._rows(f"SELECT * FROM _smithers_runs WHERE status IN ({marks}) ORDER BY created_at_ms", wanted)

    def run_chain(self, run_id: str) -> list[str]:
        """Every run id of ``run_id``'s continue-as-new chain, first link first."""
        first, seen = run_id, {run_id}
        while True:
            row = self._conn.execute("SELECT continued_from FROM _smithers_runs WHERE run_id = ?", (first,)).fetchone()
            if not row or not row[0] or row[0] in seen:
                break
            first = row[0]
            seen.add(first)
        chain = [first]
        while True:
            row = self._conn.execute("SELECT run_id FROM _smithers_runs WHERE continued_from = ?", (chain[-1],)).fetchone()
            if not row or row[0] in chain:
                break
            chain.append(row[0])
        return chain

    # -- events ------------------------------------------------------------------------------

    def last_event_seq(self, run_id: str) -> int:
        """The run's newest event ``seq`` (0 before its first event)."""
        return self._one_int("SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?", (run_id,))

    def last_event_of(self, run_id: str, types: tuple[str, ...] | frozenset[str]) -> dict[str, Any] | None:
        """The run's newest event whose type is one of ``types``, or None."""
        wanted = [str(t) for t in types]
        rows = self._rows(
            f"SELECT * FROM _smithers_events WHERE run_id = ? AND type IN ({', '.join('?' for _ in wanted)}) ORDER BY seq DESC LIMIT 1",
            (run_id, *wanted),
        )
        return event_from_row(rows[0]) if rows else None

    def events_after_rowid(self, rowid: int, limit: int) -> list[tuple[Any, ...]]:
        """Events of every run committed after ``rowid``, in commit order: (rowid, run_id, type,
        ts_ms, node_id, iteration, attempt, payload_json). The metrics collector's cursor."""
        return self._conn.execute(
            "SELECT rowid, run_id, type, ts_ms, node_id, iteration, attempt, payload_json FROM _smithers_events "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (rowid, limit),
        ).fetchall()

    def newest_event_rowid(self) -> int:
        return self._one_int("SELECT COALESCE(MAX(rowid), 0) FROM _smithers_events")

    # -- what waits ------------------------------------------------------------------------

    def count_requested_approvals(self, run_id: str, node_id: str, iteration: int | None = None) -> int:
        """Approvals of the node (at ``iteration``, if given) still waiting for a decision."""
        sql = "SELECT COUNT(*) FROM _smithers_approvals WHERE run_id = ? AND node_id = ? AND status = 'requested'"
        params: tuple[Any, ...] = (run_id, node_id)
        if iteration is not None:
            sql += " AND iteration = ?"
            params += (iteration,)
        return self._one_int(sql, params)

    def human_request_status(self, request_id: str) -> str | None:
        """A human request's status (``pending``/``answered``/...), or None if there is none."""
        row = self._conn.execute("SELECT status FROM _smithers_human_requests WHERE request_id = ?", (request_id,)).fetchone()
        return row[0] if row else None

    # -- gauges (metrics) --------------------------------------------------------------------

    def gauges(self) -> dict[str, int]:
        """Current counts for the metrics gauges: runs running and waiting, approvals pending,
        tasks pending in running runs."""
        one = self._one_int
        waiting = sorted(str(s) for s in WAITING_RUN_STATUSES)
        return {
            "runs_active": one("SELECT COUNT(*) FROM _smithers_runs WHERE status = ?", (RunStatus.RUNNING,)),
            "runs_waiting": one(f"SELECT COUNT(*) FROM _smithers_runs WHERE status IN ({', '.join('?' for _ in waiting)})", waiting),
            "approvals_pending": one("SELECT COUNT(*) FROM _smithers_approvals WHERE status = 'requested'"),
            "queue_depth": one(
                "SELECT COUNT(*) FROM _smithers_runs r JOIN _smithers_nodes n ON n.run_id = r.run_id "
                "WHERE r.status = ? AND n.status = ?",
                (RunStatus.RUNNING, NodeStatus.PENDING),
            ),
        }

    # -- outputs -------------------------------------------------------------------------------

    def read_output_rows(self, table_name: str, run_id: str, node_id: str) -> list[dict[str, Any]]:
        """All rows of one node, oldest iteration first (raw column values). A table that does
        not exist (not created yet, or dropped by hand) has no rows; any other database error
        is a :class:`StorageError` (never silently "no output": a render would take the wrong branch)."""
        if dialect_of(self._conn) == POSTGRESQL and self._conn.in_transaction and not table_exists(self._conn, table_name):
            return []  # asked first inside a transaction: on PostgreSQL a failed statement would abort it
        try:
            cur = self._conn.execute(
                f'SELECT * FROM "{table_name}" WHERE run_id = ? AND node_id = ? ORDER BY iteration', (run_id, node_id)
            )
        except sqlite3.OperationalError as err:
            if is_missing_table(err):
                return []
            raise StorageError(
                f"cannot read output table {table_name!r} (run {run_id}, node {node_id!r}): {err}",
                hint="the table must have run_id, node_id and iteration columns; do not alter smithers' output tables by hand",
            ) from None
        return rows_of(cur)


def event_from_row(row: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {"seq": row["seq"], "type": row["type"], "run_id": row["run_id"], "ts_ms": row["ts_ms"]}
    if row["node_id"] is not None:
        event["node_id"] = row["node_id"]
        event["iteration"] = row["iteration"]
    if row["attempt"] is not None:
        event["attempt"] = row["attempt"]
    if row["payload_json"]:
        event["payload"] = json.loads(row["payload_json"])
    return event
