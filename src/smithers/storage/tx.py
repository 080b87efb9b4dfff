"""``Tx``: one open write transaction, and every write the engine and the verbs make.

A ``Tx`` is only ever handed out by :meth:`smithers.storage.store.Store.tx`, which opens it
with ``BEGIN IMMEDIATE`` and commits it (or rolls it back) as a whole. Each method is one
state change named for what it means; the events appended with :meth:`Tx.event` commit with
it. Nothing outside ``smithers.storage`` writes SQL.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..states import AttemptStatus, NodeStatus, RunStatus
from .cache import CacheTxMixin
from .cron import CronTxMixin
from .dialect import execute_write, lock_run, rows_of, table_columns
from .history import HistoryTxMixin
from .memory import MemoryTxMixin
from .output_tables import KEY_COLUMNS, OutputTable
from .queue import QueueTxMixin
from .scores import ScoreTxMixin
from .snapshots import SnapshotTxMixin
from .waits import WaitTxMixin

if TYPE_CHECKING:  # only annotations: a read command does not import pydantic
    from pydantic import BaseModel


PENDING_NODES_PER_STATEMENT = 100  # 900 parameters: under SQLite's oldest limit (999)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def dumps(value: Any) -> str | None:
    """JSON text for a column (``None`` stays NULL)."""
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


class OwnerLike(Protocol):
    """What a run's owner is to the store (``smithers.storage.lease.Owner``); read-only, as that
    frozen dataclass is."""

    @property
    def id(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def pid(self) -> int: ...


class Tx(WaitTxMixin, CronTxMixin, MemoryTxMixin, CacheTxMixin, ScoreTxMixin, SnapshotTxMixin, HistoryTxMixin, QueueTxMixin):
    """One open write transaction. Events appended here are committed with the state change."""

    __slots__ = ("_conn", "_seq", "events", "run_id", "ts")

    def __init__(self, conn: sqlite3.Connection, run_id: str | None) -> None:
        self._conn = conn
        self.run_id = run_id
        self.events: list[dict[str, Any]] = []
        self._seq: int | None = None
        self.ts = now_ms()

    # -- events --------------------------------------------------------------------------

    def event(
        self,
        type: str,
        *,
        node_id: str | None = None,
        iteration: int | None = None,
        attempt: int | None = None,
        run_id: str | None = None,
        **payload: Any,
    ) -> dict[str, Any]:
        run_id = run_id or self.run_id
        if run_id != self.run_id:  # an event for another run (a continuation's first event): its own sequence
            lock_run(self._conn, str(run_id))
            seq = (self._conn.execute("SELECT MAX(seq) FROM _smithers_events WHERE run_id = ?", (run_id,)).fetchone()[0] or 0) + 1
        else:
            if self._seq is None:
                row = self._conn.execute("SELECT MAX(seq) FROM _smithers_events WHERE run_id = ?", (run_id,)).fetchone()
                self._seq = (row[0] or 0)
            self._seq += 1
            seq = self._seq
        execute_write(
            self._conn,
            "INSERT INTO _smithers_events (run_id, seq, type, ts_ms, node_id, iteration, attempt, payload_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, seq, type, self.ts, node_id, iteration, attempt, dumps(payload) if payload else None),
        )
        event = {"seq": seq, "type": type, "run_id": run_id, "ts_ms": self.ts}
        if node_id is not None:
            event.update(node_id=node_id, iteration=iteration)
        if attempt is not None:
            event["attempt"] = attempt
        if payload:
            event["payload"] = payload
        self.events.append(event)
        return event

    def count_events(self, type: str, run_id: str | None = None) -> int:
        """How many events of ``type`` the run has (this transaction's included)."""
        count: int = self._conn.execute(
            "SELECT COUNT(*) FROM _smithers_events WHERE run_id = ? AND type = ?", (run_id or self.run_id, str(type))
        ).fetchone()[0]
        return count

    # -- the run row ---------------------------------------------------------------------

    def create_run(
        self,
        *,
        workflow: str,
        workflow_spec: str,
        input_json: str,
        source_json: str,
        cwd: str,
        max_concurrency: int,
        owner: OwnerLike | None = None,
        parent_run_id: str | None = None,
        continued_from: str | None = None,
        carried: Any = None,
        run_id: str | None = None,
    ) -> None:
        """Insert a new run row, ``running`` (owned by ``owner`` when given). The one place a
        run row is written: ``up``, a subflow's child and a continue-as-new link all come here.
        ``input_json``/``source_json`` are JSON text (stored as they are)."""
        owner_id, owner_host, owner_pid = (owner.id, owner.host, owner.pid) if owner is not None else (None, None, None)
        execute_write(self._conn,
            "INSERT INTO _smithers_runs (run_id, workflow, workflow_spec, status, input_json, source_json, cwd, max_concurrency, "
            "created_at_ms, updated_at_ms, owner_id, owner_host, owner_pid, heartbeat_at_ms, parent_run_id, continued_from, "
            "carried_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id or self.run_id, workflow, workflow_spec, RunStatus.RUNNING, input_json, source_json, cwd, max_concurrency,
                self.ts, self.ts, owner_id, owner_host, owner_pid, self.ts if owner is not None else None, parent_run_id,
                continued_from, None if continued_from is None else json.dumps(carried),
            ),
        )

    def run_row(self, run_id: str | None = None) -> dict[str, Any] | None:
        """The run's row as this transaction sees it (read under the write lock)."""
        rows = rows_of(self._conn.execute("SELECT * FROM _smithers_runs WHERE run_id = ?", (run_id or self.run_id,)))
        return rows[0] if rows else None

    def set_run(
        self, status: str, *, error: dict[str, Any] | None = None, finished: bool = False, wake_at_ms: int | None = None
    ) -> None:
        """Set the run's status. ``wake_at_ms`` (when a waiting run must be looked at again: a
        timer or a wait's deadline) is written with it, so the status and the wake-up time can
        never disagree; any other status clears it."""
        execute_write(self._conn,
            "UPDATE _smithers_runs SET status = ?, error_json = ?, updated_at_ms = ?, wake_at_ms = ?, "
            "finished_at_ms = CASE WHEN ? = 1 THEN ? ELSE NULL END WHERE run_id = ?",
            (str(status), dumps(error), self.ts, wake_at_ms, int(finished), self.ts, self.run_id),
        )

    def set_run_source(self, source_json: str) -> None:
        """Record the source fingerprint a run now runs (a hot reload), so that a later resume
        compares the files against the code that ran last."""
        execute_write(self._conn,
            "UPDATE _smithers_runs SET source_json = ?, updated_at_ms = ? WHERE run_id = ?", (source_json, self.ts, self.run_id)
        )

    def fence(self, owner_id: str) -> bool:
        """Whether ``owner_id`` still holds the run's lease (touching ``updated_at_ms`` if so).
        The run's newest event ``seq`` comes back with it (one round trip, not two, on PostgreSQL)."""
        row = self._conn.execute(
            "UPDATE _smithers_runs SET updated_at_ms = ? WHERE run_id = ? AND owner_id = ? "
            "RETURNING (SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?)",
            (self.ts, self.run_id, owner_id, self.run_id),
        ).fetchone()
        if row is None:
            return False
        self._seq = row[0]
        return True

    def set_owner(self, owner: OwnerLike, *, keep_cancel: bool) -> None:
        """Give the run's lease to ``owner``; a pending cancel request is kept only if ``keep_cancel``."""
        execute_write(self._conn,
            "UPDATE _smithers_runs SET owner_id = ?, owner_host = ?, owner_pid = ?, heartbeat_at_ms = ?, "
            "cancel_requested_at_ms = CASE WHEN ? = 1 THEN cancel_requested_at_ms END WHERE run_id = ?",
            (owner.id, owner.host, owner.pid, self.ts, int(keep_cancel), self.run_id),
        )

    def renew_lease(self, owner_id: str) -> tuple[bool, bool]:
        """Heartbeat ``owner_id``'s lease. Returns (still ours, cancel requested)."""
        cur = self._conn.execute(
            "UPDATE _smithers_runs SET heartbeat_at_ms = ? WHERE run_id = ? AND owner_id = ?", (self.ts, self.run_id, owner_id)
        )
        row = self._conn.execute("SELECT cancel_requested_at_ms FROM _smithers_runs WHERE run_id = ?", (self.run_id,)).fetchone()
        return cur.rowcount == 1, bool(row and row[0])

    def release_owner(self, owner_id: str) -> None:
        """Drop the lease if ``owner_id`` still holds it."""
        execute_write(self._conn,
            "UPDATE _smithers_runs SET owner_id = NULL, owner_pid = NULL, owner_host = NULL WHERE run_id = ? AND owner_id = ?",
            (self.run_id, owner_id),
        )

    def request_cancel(self) -> None:
        """Ask the live owner to cancel (it polls ``cancel_requested_at_ms``)."""
        execute_write(self._conn, "UPDATE _smithers_runs SET cancel_requested_at_ms = ? WHERE run_id = ?", (self.ts, self.run_id))

    # -- resume and cancel ---------------------------------------------------------------

    def end_running_attempts(self, status: AttemptStatus) -> list[tuple[str, int, int]]:
        """Mark every ``running`` attempt of the run ``status`` (abandoned on resume, cancelled
        by a cancel without a live owner). Returns their (node id, iteration, attempt)."""
        running = self._conn.execute(
            "SELECT node_id, iteration, attempt FROM _smithers_attempts WHERE run_id = ? AND status = ?",
            (self.run_id, AttemptStatus.RUNNING),
        ).fetchall()
        execute_write(self._conn,
            "UPDATE _smithers_attempts SET status = ?, finished_at_ms = ? WHERE run_id = ? AND status = ?",
            (status, self.ts, self.run_id, AttemptStatus.RUNNING),
        )
        return [(r[0], r[1], r[2]) for r in running]

    def requeue_nodes(self, *, fresh_budget_for_failed: bool) -> None:
        """Resume: ``running`` and ``cancelled`` nodes go back to ``pending``; with
        ``fresh_budget_for_failed`` failed nodes too, with their failure count reset."""
        execute_write(self._conn,
            "UPDATE _smithers_nodes SET status = ?, retry_at_ms = NULL, updated_at_ms = ? WHERE run_id = ? AND status IN (?, ?)",
            (NodeStatus.PENDING, self.ts, self.run_id, NodeStatus.RUNNING, NodeStatus.CANCELLED),
        )
        if fresh_budget_for_failed:
            execute_write(self._conn,
                "UPDATE _smithers_nodes SET status = ?, failures = 0, retry_at_ms = NULL, updated_at_ms = ? "
                "WHERE run_id = ? AND status = ?",
                (NodeStatus.PENDING, self.ts, self.run_id, NodeStatus.FAILED),
            )

    # -- continue-as-new: what a new link carries over ----------------------------------

    def carry_loop(self, new_run_id: str, loop_id: str, iteration: int) -> None:
        execute_write(self._conn,
            "INSERT INTO _smithers_loops (run_id, loop_id, iteration, done) VALUES (?, ?, ?, 0)", (new_run_id, loop_id, iteration)
        )

    def copy_output(self, new_run_id: str, table: str, node_id: str, iteration: int) -> None:
        """Copy one finished node (its output row and its node row, as ``finished``) from this
        run to ``new_run_id``."""
        columns = [c for c in table_columns(self._conn, table) if c not in KEY_COLUMNS]
        quoted = ", ".join(f'"{c}"' for c in columns)
        select = f", {quoted}" if quoted else ""
        execute_write(self._conn,
            f'INSERT INTO "{table}" (run_id, node_id, iteration{select}) SELECT ?, node_id, iteration{select} '
            f'FROM "{table}" WHERE run_id = ? AND node_id = ? AND iteration = ?',
            (new_run_id, self.run_id, node_id, iteration),
        )
        execute_write(self._conn,
            "INSERT INTO _smithers_nodes (run_id, node_id, iteration, status, kind, output_table, label, attempts, updated_at_ms) "
            "SELECT ?, node_id, iteration, ?, kind, output_table, label, 0, ? FROM _smithers_nodes "
            "WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (new_run_id, NodeStatus.FINISHED, self.ts, self.run_id, node_id, iteration),
        )

    # -- nodes, attempts, outputs -------------------------------------------------------

    def insert_pending_node(
        self, node_id: str, iteration: int, kind: str, table: str, label: str | None, meta: dict[str, Any] | None = None
    ) -> bool:
        cur = self._conn.execute(
            "INSERT INTO _smithers_nodes (run_id, node_id, iteration, status, kind, output_table, label, updated_at_ms, meta_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, node_id, iteration) DO NOTHING",
            (self.run_id, node_id, iteration, NodeStatus.PENDING, kind, table, label, self.ts, dumps(meta)),
        )
        return cur.rowcount == 1

    def insert_pending_nodes(
        self, nodes: list[tuple[str, int, str, str, str | None, dict[str, Any] | None]]
    ) -> set[tuple[str, int]]:
        """:meth:`insert_pending_node` for many nodes (node id, iteration, kind, table, label,
        meta) in a few multi-row statements (a render that mounts 1,000 tasks costs a handful of
        round trips on PostgreSQL, not 1,000). Returns the (node id, iteration) rows that were new."""
        inserted: set[tuple[str, int]] = set()
        for start in range(0, len(nodes), PENDING_NODES_PER_STATEMENT):
            chunk = nodes[start:start + PENDING_NODES_PER_STATEMENT]
            params: list[Any] = []
            for node_id, iteration, kind, table, label, meta in chunk:
                params += (self.run_id, node_id, iteration, NodeStatus.PENDING, kind, table, label, self.ts, dumps(meta))
            cur = self._conn.execute(
                "INSERT INTO _smithers_nodes (run_id, node_id, iteration, status, kind, output_table, label, updated_at_ms, meta_json) "
                f"VALUES {', '.join(['(?, ?, ?, ?, ?, ?, ?, ?, ?)'] * len(chunk))} "
                "ON CONFLICT (run_id, node_id, iteration) DO NOTHING RETURNING node_id, iteration",
                params,
            )
            inserted.update((row[0], row[1]) for row in cur.fetchall())
        return inserted

    def set_node(
        self,
        node_id: str,
        iteration: int,
        status: str,
        *,
        attempts: int | None = None,
        failures: int | None = None,
        retry_at_ms: int | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        execute_write(self._conn,
            "UPDATE _smithers_nodes SET status = ?, attempts = COALESCE(?, attempts), failures = COALESCE(?, failures), "
            "retry_at_ms = ?, error_json = ?, updated_at_ms = ? WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (status, attempts, failures, retry_at_ms, dumps(error), self.ts, self.run_id, node_id, iteration),
        )

    def start_attempt(self, node_id: str, iteration: int, attempt: int, meta: dict[str, Any] | None = None) -> None:
        execute_write(self._conn,
            "INSERT INTO _smithers_attempts (run_id, node_id, iteration, attempt, status, started_at_ms, meta_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, node_id, iteration, attempt, AttemptStatus.RUNNING, self.ts, dumps(meta)),
        )

    def finish_attempt(
        self,
        node_id: str,
        iteration: int,
        attempt: int,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        heartbeat_json: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """End an attempt; ``meta`` (when given) replaces its metadata in the same statement."""
        execute_write(self._conn,
            "UPDATE _smithers_attempts SET status = ?, finished_at_ms = ?, error_json = ?, "
            "heartbeat_json = COALESCE(?, heartbeat_json), meta_json = COALESCE(?, meta_json) "
            "WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?",
            (status, self.ts, dumps(error), heartbeat_json, dumps(meta), self.run_id, node_id, iteration, attempt),
        )

    def set_attempt_meta(self, node_id: str, iteration: int, attempt: int, meta: dict[str, Any]) -> None:
        """Replace an attempt's metadata (an agent attempt records which agent answered, its usage)."""
        execute_write(self._conn,
            "UPDATE _smithers_attempts SET meta_json = ? WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?",
            (dumps(meta), self.run_id, node_id, iteration, attempt),
        )

    def save_heartbeat(self, node_id: str, iteration: int, attempt: int, at_ms: int, data_json: str | None) -> None:
        execute_write(self._conn,
            "UPDATE _smithers_attempts SET heartbeat_at_ms = ?, heartbeat_json = COALESCE(?, heartbeat_json) "
            "WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?",
            (at_ms, data_json, self.run_id, node_id, iteration, attempt),
        )

    def write_output(self, table: OutputTable, node_id: str, iteration: int, value: BaseModel) -> None:
        execute_write(self._conn, table.upsert_sql(), [self.run_id, node_id, iteration, *table.encode(value)])

    def set_loop(self, loop_id: str, iteration: int, done: bool) -> None:
        execute_write(self._conn,
            "INSERT INTO _smithers_loops (run_id, loop_id, iteration, done) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, loop_id) DO UPDATE SET iteration = excluded.iteration, done = excluded.done",
            (self.run_id, loop_id, iteration, int(done)),
        )

    def add_frame(self, frame_no: int, is_keyframe: bool, data: Any) -> None:
        seq = self._seq if self._seq is not None else self._conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?", (self.run_id,)
        ).fetchone()[0]
        execute_write(self._conn,
            "INSERT INTO _smithers_frames (run_id, frame_no, is_keyframe, data_json, event_seq, created_at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self.run_id, frame_no, int(is_keyframe), dumps(data), seq, self.ts),
        )


__all__ = ["OwnerLike", "Tx", "dumps", "now_ms", "rows_of"]
