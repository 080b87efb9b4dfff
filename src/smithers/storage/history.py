"""The store's statements for time travel over frames: timeline reads, forks, retry-task and
rewind. Every SQL statement about moving a run through its history lives here, once.

Two mixins, like :mod:`smithers.storage.waits`: :class:`HistoryStoreMixin` gives
:class:`~smithers.storage.store.Store` its reads; :class:`HistoryTxMixin` gives
:class:`~smithers.storage.tx.Tx` its writes, which run inside the caller's open transaction
(``self._conn``, ``self.run_id``, ``self.ts``) so that each destructive change commits as one
transaction with its events. Portable SQL only.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..states import AttemptStatus, EventType, NodeStatus, RunStatus
from .dialect import rows_of, table_columns, table_exists
from .output_tables import KEY_COLUMNS

# the events that end an attempt (they carry its number)
_ATTEMPT_ENDINGS = (
    EventType.NODE_FINISHED, EventType.NODE_FAILED, EventType.NODE_CANCELLED, EventType.ATTEMPT_ABANDONED, EventType.ATTEMPT_SUSPENDED,
)
_LOOP_EVENTS = (EventType.LOOP_ITERATION, EventType.LOOP_FINISHED)


_dicts = rows_of  # rows as dicts, the same keys on both backends


def _marks(values: tuple[Any, ...]) -> str:
    return ", ".join("?" for _ in values)


class HistoryStoreMixin:
    """Reads about a run's history, on a :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: sqlite3.Connection

    def frame_row(self, run_id: str, frame_no: int) -> dict[str, Any] | None:
        """One frame's row (``frame_no, is_keyframe, data_json, event_seq, created_at_ms``), or None."""
        rows = _dicts(self._conn.execute("SELECT * FROM _smithers_frames WHERE run_id = ? AND frame_no = ?", (run_id, frame_no)))
        return rows[0] if rows else None

    def frame_deltas(self, run_id: str, upto: int | None = None) -> list[dict[str, Any]]:
        """Every frame up to ``upto`` (or all), oldest first, without keyframes' data (a
        keyframe's ``data_json`` is the whole plan; the step deltas are what a fold needs):
        ``{frame_no, is_keyframe, data_json, event_seq, created_at_ms}``."""
        sql = (
            "SELECT frame_no, is_keyframe, CASE WHEN is_keyframe = 1 THEN NULL ELSE data_json END AS data_json, event_seq, "
            "created_at_ms FROM _smithers_frames WHERE run_id = ?"
        )
        params: list[Any] = [run_id]
        if upto is not None:
            sql += " AND frame_no <= ?"
            params.append(upto)
        return _dicts(self._conn.execute(sql + " ORDER BY frame_no", params))

    def forks_of(self, run_id: str) -> list[dict[str, Any]]:
        """Runs forked from ``run_id``, oldest first: ``{run_id, frame_no, label, created_at_ms, status}``."""
        return _dicts(self._conn.execute(
            "SELECT run_id, fork_frame AS frame_no, fork_label AS label, created_at_ms, status FROM _smithers_runs "
            "WHERE forked_from = ? ORDER BY created_at_ms, run_id",
            (run_id,),
        ))

    def loop_events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's loop events in order: ``{seq, type, loop_id, iteration}``."""
        out = []
        for seq, type_, payload in self._conn.execute(
            f"SELECT seq, type, payload_json FROM _smithers_events WHERE run_id = ? AND type IN ({_marks(_LOOP_EVENTS)}) ORDER BY seq",
            (run_id, *_LOOP_EVENTS),
        ):
            data = json.loads(payload) if payload else {}
            out.append({"seq": seq, "type": type_, "loop_id": data.get("loop_id"), "iteration": data.get("loop_iteration", 0)})
        return out

    def first_pending_seqs(self, run_id: str) -> dict[tuple[str, int], int]:
        """When each node was first mounted: ``{(node_id, iteration): seq of its first NodePending}``."""
        rows = self._conn.execute(
            "SELECT node_id, iteration, MIN(seq) FROM _smithers_events WHERE run_id = ? AND type = ? GROUP BY node_id, iteration",
            (run_id, EventType.NODE_PENDING),
        )
        return {(r[0], r[1]): r[2] for r in rows}


class HistoryTxMixin:
    """Writes that move a run through its history, on a :class:`~smithers.storage.tx.Tx`."""

    __slots__ = ()
    _conn: sqlite3.Connection
    run_id: str | None
    ts: int

    # -- forks -------------------------------------------------------------------------------

    def create_fork(
        self, parent: dict[str, Any], *, input_json: str, source_json: str, frame_no: int, label: str | None
    ) -> None:
        """Insert this transaction's run as a ``queued`` fork of ``parent`` (a run row) at
        ``frame_no``: same workflow, working directory and concurrency; no owner."""
        self._conn.execute(
            "INSERT INTO _smithers_runs (run_id, workflow, workflow_spec, status, input_json, source_json, cwd, max_concurrency, "
            "created_at_ms, updated_at_ms, forked_from, fork_frame, fork_label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.run_id, parent["workflow"], parent["workflow_spec"], RunStatus.QUEUED, input_json, source_json, parent["cwd"],
                parent["max_concurrency"], self.ts, self.ts, parent["run_id"], frame_no, label,
            ),
        )

    def copy_output_from(self, from_run_id: str, table: str, node_id: str, iteration: int) -> bool:
        """Copy one output row of ``from_run_id`` into this run. Returns whether there was one to copy."""
        if not table_exists(self._conn, table):  # asked first: on PostgreSQL a failed statement aborts the transaction
            return False
        columns = [c for c in table_columns(self._conn, table) if c not in KEY_COLUMNS]
        select = "".join(f', "{c}"' for c in columns)
        cur = self._conn.execute(
            f'INSERT INTO "{table}" (run_id, node_id, iteration{select}) SELECT ?, node_id, iteration{select} '
            f'FROM "{table}" WHERE run_id = ? AND node_id = ? AND iteration = ?',
            (self.run_id, from_run_id, node_id, iteration),
        )
        return cur.rowcount == 1

    def copy_node_from(self, from_run_id: str, node_id: str, iteration: int, status: str) -> None:
        """Copy one node row of ``from_run_id`` into this run with ``status`` (no attempts: they
        stay with the run that made them)."""
        self._conn.execute(
            "INSERT INTO _smithers_nodes (run_id, node_id, iteration, status, kind, output_table, label, attempts, updated_at_ms, "
            "meta_json) SELECT ?, node_id, iteration, ?, kind, output_table, label, 0, ?, meta_json FROM _smithers_nodes "
            "WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (self.run_id, status, self.ts, from_run_id, node_id, iteration),
        )

    # -- loops ---------------------------------------------------------------------------------

    def put_loop(self, loop_id: str, iteration: int, done: bool) -> None:
        self._conn.execute(
            "INSERT INTO _smithers_loops (run_id, loop_id, iteration, done) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, loop_id) DO UPDATE SET iteration = excluded.iteration, done = excluded.done",
            (self.run_id, loop_id, iteration, int(done)),
        )

    def drop_loop(self, loop_id: str) -> None:
        self._conn.execute("DELETE FROM _smithers_loops WHERE run_id = ? AND loop_id = ?", (self.run_id, loop_id))

    # -- resetting nodes -------------------------------------------------------------------------

    def reset_node(self, node_id: str, iteration: int, table: str, *, forget: bool = False) -> dict[str, Any] | None:
        """Put one node back to ``pending`` with a fresh retry budget (``forget``: delete its row
        instead, for a node that was not mounted yet at the point rewound to). Its output row
        leaves the live table and its waits (approval, human request, timer, consumed signal)
        are undone, so it asks, waits and runs again. Returns the output row it removed (raw
        columns, without the key), or None."""
        removed: dict[str, Any] | None = None
        if table_exists(self._conn, table):  # asked first: on PostgreSQL a failed statement aborts the transaction
            rows = _dicts(self._conn.execute(
                f'SELECT * FROM "{table}" WHERE run_id = ? AND node_id = ? AND iteration = ?', (self.run_id, node_id, iteration)
            ))
            if rows:
                removed = {k: v for k, v in rows[0].items() if k not in KEY_COLUMNS}
                self._conn.execute(
                    f'DELETE FROM "{table}" WHERE run_id = ? AND node_id = ? AND iteration = ?', (self.run_id, node_id, iteration)
                )
        key = (self.run_id, node_id, iteration)
        for statement in (
            "DELETE FROM _smithers_approvals WHERE run_id = ? AND node_id = ? AND iteration = ?",
            "DELETE FROM _smithers_human_requests WHERE run_id = ? AND node_id = ? AND iteration = ?",
            "DELETE FROM _smithers_timers WHERE run_id = ? AND node_id = ? AND iteration = ?",
            "UPDATE _smithers_signals SET consumed_node_id = NULL, consumed_iteration = NULL "
            "WHERE run_id = ? AND consumed_node_id = ? AND consumed_iteration = ?",
        ):
            self._conn.execute(statement, key)
        if forget:
            self._conn.execute("DELETE FROM _smithers_nodes WHERE run_id = ? AND node_id = ? AND iteration = ?", key)
        else:
            self._conn.execute(
                "UPDATE _smithers_nodes SET status = ?, failures = 0, retry_at_ms = NULL, error_json = NULL, waiting_since_ms = NULL, "
                "attempts = COALESCE((SELECT MAX(attempt) FROM _smithers_attempts a WHERE a.run_id = _smithers_nodes.run_id "
                "AND a.node_id = _smithers_nodes.node_id AND a.iteration = _smithers_nodes.iteration), 0), updated_at_ms = ? "
                "WHERE run_id = ? AND node_id = ? AND iteration = ?",
                (NodeStatus.PENDING, self.ts, *key),
            )
        return removed

    def next_frame_no(self) -> int:
        """The number the run's next frame gets (frames are numbered from 0 without gaps)."""
        value: int = self._conn.execute("SELECT COUNT(*) FROM _smithers_frames WHERE run_id = ?", (self.run_id,)).fetchone()[0]
        return value

    # -- rewind ----------------------------------------------------------------------------------

    def drop_frames_after(self, frame_no: int) -> int:
        """Delete the run's frames after ``frame_no``. Returns how many."""
        cur = self._conn.execute("DELETE FROM _smithers_frames WHERE run_id = ? AND frame_no > ?", (self.run_id, frame_no))
        return cur.rowcount

    def drop_attempts_after(self, event_seq: int, nodes: list[tuple[str, int]]) -> int:
        """For the given nodes: delete the attempts that started after event ``event_seq``, and
        mark ``abandoned`` those that started by then but ended later (in flight at that point).
        Returns how many attempts were deleted."""
        dropped = 0
        for node_id, iteration in nodes:
            params = (self.run_id, node_id, iteration)
            started_after = [r[0] for r in self._conn.execute(
                "SELECT attempt FROM _smithers_events WHERE run_id = ? AND node_id = ? AND iteration = ? AND type = ? AND seq > ? "
                "AND attempt IS NOT NULL",
                (*params, EventType.NODE_STARTED, event_seq),
            )]
            for attempt in started_after:
                dropped += self._conn.execute(
                    "DELETE FROM _smithers_attempts WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?", (*params, attempt)
                ).rowcount
            ended_after = [r[0] for r in self._conn.execute(
                "SELECT attempt FROM _smithers_events WHERE run_id = ? AND node_id = ? AND iteration = ? AND seq > ? "
                f"AND attempt IS NOT NULL AND type IN ({_marks(_ATTEMPT_ENDINGS)})",
                (*params, event_seq, *_ATTEMPT_ENDINGS),
            )]
            for attempt in ended_after:
                self._conn.execute(
                    "UPDATE _smithers_attempts SET status = ?, error_json = ? WHERE run_id = ? AND node_id = ? AND iteration = ? "
                    "AND attempt = ?",
                    (AttemptStatus.ABANDONED, json.dumps({"type": "Rewound", "message": "the run was rewound to before it ended"}),
                     *params, attempt),
                )
        return dropped


__all__ = ["HistoryStoreMixin", "HistoryTxMixin"]
