"""The store: every verb the engine and the front ends use, over one SQLite file.

Writes happen only inside :meth:`Store.tx`, one transaction per state change, events
included. Reads are plain queries that return dicts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..errors import LeaseLostError, StorageError
from ..observability.metrics import observe_transaction
from .output_tables import OutputTable
from .schema import MIGRATIONS
from .sqlite import begin_write, connect
from .waits import WaitStoreMixin, WaitTxMixin

DB_FILENAME = "smithers.db"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def default_db_path(start: Path | None = None) -> Path:
    """``$SMITHERS_DB``, else the nearest ``smithers.db`` walking up from ``start``, else ``start/smithers.db``."""
    env = os.environ.get("SMITHERS_DB")
    if env:
        return Path(env).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DB_FILENAME
        if candidate.is_file():
            return candidate
    return here / DB_FILENAME


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


class Tx(WaitTxMixin):
    """One open write transaction. Events appended here are committed with the state change."""

    __slots__ = ("conn", "run_id", "events", "_seq", "ts")

    @property
    def _conn(self) -> sqlite3.Connection:  # the name the storage mixins use (see storage/waits.py)
        return self.conn

    def __init__(self, conn: sqlite3.Connection, run_id: str | None) -> None:
        self.conn = conn
        self.run_id = run_id
        self.events: list[dict[str, Any]] = []
        self._seq: int | None = None
        self.ts = now_ms()

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

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
            seq = (self.conn.execute("SELECT MAX(seq) FROM _smithers_events WHERE run_id = ?", (run_id,)).fetchone()[0] or 0) + 1
        else:
            if self._seq is None:
                row = self.conn.execute("SELECT MAX(seq) FROM _smithers_events WHERE run_id = ?", (run_id,)).fetchone()
                self._seq = (row[0] or 0)
            self._seq += 1
            seq = self._seq
        self.conn.execute(
            "INSERT INTO _smithers_events (run_id, seq, type, ts_ms, node_id, iteration, attempt, payload_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, seq, type, self.ts, node_id, iteration, attempt, _dumps(payload) if payload else None),
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

    # -- nodes, attempts, outputs -------------------------------------------------------

    def insert_pending_node(
        self, node_id: str, iteration: int, kind: str, table: str, label: str | None, meta: dict[str, Any] | None = None
    ) -> bool:
        cur = self.conn.execute(
            "INSERT INTO _smithers_nodes (run_id, node_id, iteration, status, kind, output_table, label, updated_at_ms, meta_json) "
            "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?) ON CONFLICT (run_id, node_id, iteration) DO NOTHING",
            (self.run_id, node_id, iteration, kind, table, label, self.ts, _dumps(meta)),
        )
        return cur.rowcount == 1

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
        self.conn.execute(
            "UPDATE _smithers_nodes SET status = ?, attempts = COALESCE(?, attempts), failures = COALESCE(?, failures), "
            "retry_at_ms = ?, error_json = ?, updated_at_ms = ? WHERE run_id = ? AND node_id = ? AND iteration = ?",
            (status, attempts, failures, retry_at_ms, _dumps(error), self.ts, self.run_id, node_id, iteration),
        )

    def start_attempt(self, node_id: str, iteration: int, attempt: int, meta: dict[str, Any] | None = None) -> None:
        self.conn.execute(
            "INSERT INTO _smithers_attempts (run_id, node_id, iteration, attempt, status, started_at_ms, meta_json) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?)",
            (self.run_id, node_id, iteration, attempt, self.ts, _dumps(meta)),
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
    ) -> None:
        self.conn.execute(
            "UPDATE _smithers_attempts SET status = ?, finished_at_ms = ?, error_json = ?, "
            "heartbeat_json = COALESCE(?, heartbeat_json) "
            "WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?",
            (status, self.ts, _dumps(error), heartbeat_json, self.run_id, node_id, iteration, attempt),
        )

    def save_heartbeat(self, node_id: str, iteration: int, attempt: int, at_ms: int, data_json: str | None) -> None:
        self.conn.execute(
            "UPDATE _smithers_attempts SET heartbeat_at_ms = ?, heartbeat_json = COALESCE(?, heartbeat_json) "
            "WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?",
            (at_ms, data_json, self.run_id, node_id, iteration, attempt),
        )

    def write_output(self, table: OutputTable, node_id: str, iteration: int, value: BaseModel) -> None:
        self.conn.execute(table.upsert_sql(), [self.run_id, node_id, iteration, *table.encode(value)])

    def set_loop(self, loop_id: str, iteration: int, done: bool) -> None:
        self.conn.execute(
            "INSERT INTO _smithers_loops (run_id, loop_id, iteration, done) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, loop_id) DO UPDATE SET iteration = excluded.iteration, done = excluded.done",
            (self.run_id, loop_id, iteration, int(done)),
        )

    def add_frame(self, frame_no: int, is_keyframe: bool, data: Any) -> None:
        seq = self._seq if self._seq is not None else self.conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?", (self.run_id,)
        ).fetchone()[0]
        self.conn.execute(
            "INSERT INTO _smithers_frames (run_id, frame_no, is_keyframe, data_json, event_seq, created_at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self.run_id, frame_no, int(is_keyframe), _dumps(data), seq, self.ts),
        )

    def set_run(self, status: str, *, error: dict[str, Any] | None = None, finished: bool = False) -> None:
        self.conn.execute(
            "UPDATE _smithers_runs SET status = ?, error_json = ?, updated_at_ms = ?, "
            "finished_at_ms = CASE WHEN ? THEN ? ELSE NULL END WHERE run_id = ?",
            (status, _dumps(error), self.ts, int(finished), self.ts, self.run_id),
        )


class Store(WaitStoreMixin):
    """A smithers database. Open with :meth:`open`; close with :meth:`close`.

    >>> store = Store.open(Path("/tmp/x/smithers.db"))  # doctest: +SKIP
    >>> with store.tx(run_id) as tx:                     # doctest: +SKIP
    ...     tx.event("RunStarted")
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = threading.RLock()
        self._tables: dict[str, OutputTable] = {}
        self._current: Tx | None = None
        self.commit_listeners: list[Any] = []

    @property
    def _conn(self) -> sqlite3.Connection:  # the name the storage mixins use (see storage/waits.py)
        return self.conn

    @classmethod
    def open(cls, path: Path | str, *, synchronous: str | None = None) -> Store:
        path = Path(path).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        sync = synchronous or os.environ.get("SMITHERS_SYNCHRONOUS", "NORMAL")
        try:
            conn = connect(path, synchronous=sync)
        except sqlite3.Error as err:
            raise StorageError(f"cannot open database {path}: {err}", hint="check the path and its permissions") from None
        store = cls(conn, path)
        store._migrate()
        return store

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        with self._lock:
            begin_write(self.conn)
            try:
                self.conn.execute(
                    "CREATE TABLE IF NOT EXISTS _smithers_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)"
                )
                applied = {r[0] for r in self.conn.execute("SELECT version FROM _smithers_migrations")}
                for version, name, statements in MIGRATIONS:
                    if version in applied:
                        continue
                    for statement in statements:
                        self.conn.execute(statement)
                    self.conn.execute(
                        "INSERT INTO _smithers_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)", (version, name, now_ms())
                    )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    @contextmanager
    def tx(self, run_id: str | None = None, *, owner_id: str | None = None) -> Iterator[Tx]:
        """One write transaction. With ``owner_id`` it first checks that this process still owns
        the run (fencing): if another process took the lease, nothing is written and
        :class:`LeaseLostError` is raised.

        A ``tx`` opened while another is open on this thread for the same run joins it: the
        state changes then share one commit, each still all-or-nothing with its events."""
        with self._lock:
            current = self._current
            if current is not None:
                if current.run_id != run_id:
                    raise StorageError(f"a transaction for run {current.run_id} is open; cannot nest one for {run_id}")
                yield current
                return
            started = time.perf_counter()
            begin_write(self.conn)
            tx = Tx(self.conn, run_id)
            self._current = tx
            try:
                if owner_id is not None:
                    cur = self.conn.execute(
                        "UPDATE _smithers_runs SET updated_at_ms = ? WHERE run_id = ? AND owner_id = ?", (tx.ts, run_id, owner_id)
                    )
                    if cur.rowcount != 1:
                        raise LeaseLostError(f"run {run_id}: another process took over this run; stopping here")
                yield tx
                self.conn.execute("COMMIT")
                observe_transaction(time.perf_counter() - started)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            finally:
                self._current = None
        for listener in self.commit_listeners:
            listener(tx.events)

    @contextmanager
    def batch(self, run_id: str, *, owner_id: str | None = None) -> Iterator[None]:
        """Group the transactions opened inside into one commit (used for a burst of task
        starts or completions, so a fan-out does not pay one commit per task)."""
        with self.tx(run_id, owner_id=owner_id):
            yield

    # -- output tables -------------------------------------------------------------------

    def output_table(self, model: type[BaseModel]) -> OutputTable:
        """Create or extend the model's table (new fields → ADD COLUMN; nothing is ever dropped)."""
        key = f"{model.__module__}.{model.__qualname__}:{id(model)}"
        table = self._tables.get(key)
        if table is not None:
            return table
        table = OutputTable.for_model(model)
        with self._lock:
            nested = self.conn.in_transaction  # inside a batch: DDL joins it (SQLite DDL is transactional)
            if not nested:
                begin_write(self.conn)
            try:
                self.conn.execute(table.ddl())
                existing = {r[1] for r in self.conn.execute(f'PRAGMA table_info("{table.name}")')}
                for column, kind in table.columns:
                    if column not in existing:
                        sql_type = {"int": "INTEGER", "real": "REAL", "bool": "INTEGER"}.get(kind, "TEXT")
                        self.conn.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{column}" {sql_type}')
                # columns_json maps every column ever added to its kind (int/real/bool/text/json), so
                # readers without the model (inspect, the HTTP API) can decode rows faithfully
                row = self.conn.execute(
                    "SELECT columns_json FROM _smithers_output_tables WHERE table_name = ?", (table.name,)
                ).fetchone()
                kinds = json.loads(row[0]) if row else {}
                if isinstance(kinds, list):
                    kinds = {c: None for c in kinds}
                kinds.update(dict(table.columns))
                self.conn.execute(
                    "INSERT INTO _smithers_output_tables (table_name, model_name, columns_json) VALUES (?, ?, ?) "
                    "ON CONFLICT (table_name) DO UPDATE SET model_name = excluded.model_name, columns_json = excluded.columns_json",
                    (table.name, model.__name__, json.dumps(kinds)),
                )
                if not nested:
                    self.conn.execute("COMMIT")
            except BaseException:
                if not nested:
                    self.conn.execute("ROLLBACK")
                raise
        self._tables[key] = table
        return table

    def read_output_rows(self, table_name: str, run_id: str, node_id: str) -> list[dict[str, Any]]:
        """All rows of one node, oldest iteration first (raw column values)."""
        try:
            cur = self.conn.execute(
                f'SELECT * FROM "{table_name}" WHERE run_id = ? AND node_id = ? ORDER BY iteration', (run_id, node_id)
            )
        except sqlite3.OperationalError:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # -- reads ---------------------------------------------------------------------------

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

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

    def frame_count(self, run_id: str) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM _smithers_frames WHERE run_id = ?", (run_id,)).fetchone()[0]

    def loops(self, run_id: str) -> dict[str, tuple[int, bool]]:
        rows = self.conn.execute("SELECT loop_id, iteration, done FROM _smithers_loops WHERE run_id = ?", (run_id,))
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    def last_heartbeat(self, run_id: str, node_id: str, iteration: int) -> Any:
        row = self.conn.execute(
            "SELECT heartbeat_json FROM _smithers_attempts WHERE run_id = ? AND node_id = ? AND iteration = ? "
            "AND heartbeat_json IS NOT NULL ORDER BY attempt DESC LIMIT 1",
            (run_id, node_id, iteration),
        ).fetchone()
        return json.loads(row[0]) if row else None


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
