"""The read side's SQL: the statements behind :mod:`smithers.queries` (inspect, node, why,
graph, chains), as methods of :class:`~smithers.storage.store.Store` (it inherits
:class:`QueryStoreMixin`), plus :meth:`QueryStoreMixin.memory`, the private in-memory
database a plan preview renders against.

Every method is a plain read named for what it means; none writes. The connection stays
private to the store (``self._conn``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..errors import StorageError
from ..states import EventType
from .dialect import POSTGRESQL, dialect_of, table_exists
from .sqlite import is_missing_table

# the node events whose replay gives a node's status as of some point (see `node_events`)
NODE_STATUS_EVENTS: tuple[str, ...] = (
    EventType.NODE_PENDING,
    EventType.NODE_STARTED,
    EventType.NODE_FINISHED,
    EventType.NODE_FAILED,
    EventType.NODE_RETRYING,
    EventType.NODE_SKIPPED,
    EventType.NODE_CANCELLED,
    EventType.NODE_WAITING,
    EventType.ATTEMPT_ABANDONED,
)


class QueryStoreMixin:
    """Read queries of the read-side verbs. Mixed into ``Store``, which provides ``_conn``,
    ``path`` and ``_rows``."""

    _conn: sqlite3.Connection
    path: Path

    if TYPE_CHECKING:  # provided by Store

        def __init__(self, conn: sqlite3.Connection, path: Path) -> None: ...
        def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]: ...
        def _migrate(self) -> None: ...

    @classmethod
    def memory(cls) -> Self:
        """A fresh, migrated, private in-memory database (closed with ``close()``): what a plan
        preview renders against, so previewing never creates or touches the user's database."""
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        store = cls(conn, Path(":memory:"))
        try:
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    # -- runs and chains -------------------------------------------------------------------

    def node_ids(self, run_id: str) -> list[str]:
        """The distinct node ids of a run, sorted."""
        rows = self._conn.execute("SELECT DISTINCT node_id FROM _smithers_nodes WHERE run_id = ? ORDER BY node_id", (run_id,))
        return [r[0] for r in rows]

    def attempts_by_node(self, run_id: str) -> dict[tuple[str, int], list[dict[str, Any]]]:
        """Every attempt of a run grouped by ``(node_id, iteration)``, in attempt order."""
        out: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for a in self._rows(
            "SELECT * FROM _smithers_attempts WHERE run_id = ? ORDER BY node_id, iteration, attempt", (run_id,)
        ):
            out.setdefault((a["node_id"], a["iteration"]), []).append(a)
        return out

    def last_attempt_starts(self, run_id: str) -> dict[tuple[str, int], int]:
        """When the latest attempt of each ``(node_id, iteration)`` of a run started."""
        rows = self._conn.execute(
            "SELECT node_id, iteration, MAX(started_at_ms) FROM _smithers_attempts WHERE run_id = ? GROUP BY node_id, iteration",
            (run_id,),
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def node_events(self, run_id: str, *, upto_seq: int | None = None) -> list[dict[str, Any]]:
        """The run's node-status events (:data:`NODE_STATUS_EVENTS`) up to ``upto_seq`` (or all),
        in order: ``{type, node_id, iteration, payload}`` (``payload`` decoded, or None)."""
        marks = ", ".join("?" for _ in NODE_STATUS_EVENTS)
        sql = (
            "SELECT type, node_id, iteration, payload_json FROM _smithers_events "
            f"WHERE run_id = ? AND node_id IS NOT NULL AND type IN ({marks})"
        )
        params: list[Any] = [run_id, *NODE_STATUS_EVENTS]
        if upto_seq is not None:
            sql += " AND seq <= ?"
            params.append(upto_seq)
        return [
            {
                "type": t,
                "node_id": node_id,
                "iteration": iteration,
                "payload": json.loads(payload) if payload else None,
            }
            for t, node_id, iteration, payload in self._conn.execute(sql + " ORDER BY seq", params)
        ]

    # -- frames ----------------------------------------------------------------------------

    def frames_from_keyframe(self, run_id: str, frame: int) -> list[dict[str, Any]]:
        """The frame rows needed to rebuild frame ``frame``: from the last keyframe at or
        before it up to it (so the cost does not grow with the run's length)."""
        return self._rows(
            "SELECT * FROM _smithers_frames WHERE run_id = ? AND frame_no <= ? AND frame_no >= COALESCE("
            "(SELECT MAX(frame_no) FROM _smithers_frames WHERE run_id = ? AND is_keyframe = 1 AND frame_no <= ?), 0) "
            "ORDER BY frame_no",
            (run_id, frame, run_id, frame),
        )

    # -- output tables ---------------------------------------------------------------------

    def output_table_kinds(self) -> dict[str, Any]:
        """Each output table's recorded columns: ``{table: {column: kind}}`` (or a plain list of
        columns, for tables written before kinds were recorded)."""
        rows = self._conn.execute("SELECT table_name, columns_json FROM _smithers_output_tables")
        return {name: json.loads(columns) for name, columns in rows}

    def run_output_rows(self, table: str, run_id: str) -> list[dict[str, Any]] | None:
        """All rows of output table ``table`` written by run ``run_id``; None if the table does
        not exist (dropped by hand). Any other database error is a :class:`StorageError`."""
        if dialect_of(self._conn) == POSTGRESQL and self._conn.in_transaction and not table_exists(self._conn, table):
            return None  # asked first inside a transaction: on PostgreSQL a failed statement would abort it
        try:
            return self._rows(f'SELECT * FROM "{table}" WHERE run_id = ?', (run_id,))
        except sqlite3.OperationalError as err:
            if is_missing_table(err):
                return None
            raise StorageError(
                f"cannot read output table {table!r} of run {run_id} in {self.path}: {err}",
                hint="the table does not have the columns smithers wrote; check it was not altered by hand",
            ) from None
