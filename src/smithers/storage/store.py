"""The store: one SQLite file or one PostgreSQL database, its write transactions, its output
tables and its reads.

Writes happen only inside :meth:`Store.tx` (a :class:`~smithers.storage.tx.Tx`), one
transaction per state change, events included. Reads (:mod:`smithers.storage.reads`) are
plain queries that return dicts. The connection is private (``_conn``: a ``sqlite3``
connection, or the PostgreSQL adapter of :mod:`smithers.storage.postgres`, which runs the same
SQL): nothing outside ``smithers.storage`` runs SQL. ``Store.open`` takes a file path (SQLite)
or a ``postgresql://`` URL; ``store.dialect`` says which.

Two process-wide hooks sit at the commit point:

- :func:`add_commit_observer` registers a callable told each transaction's duration after
  it commits (``smithers.observability.metrics`` registers its histogram; the store imports
  nothing above it).
- ``SMITHERS_FAULT_BEFORE_COMMIT=N`` (tests only) SIGKILLs the process right before its
  N-th ``COMMIT``, to prove that a crash inside a commit leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LeaseLostError, StorageError, UserError
from .cache import CacheStoreMixin
from .copy import CopyStoreMixin
from .cron import CronStoreMixin
from .dialect import POSTGRESQL, SQLITE, is_url, table_columns
from .history import HistoryStoreMixin
from .memory import MemoryStoreMixin
from .output_tables import OutputTable
from .queries import QueryStoreMixin
from .queue import QueueStoreMixin
from .reads import StoreReads, event_from_row
from .schema import MIGRATIONS
from .scores import ScoreStoreMixin
from .snapshots import SnapshotStoreMixin
from .sqlite import SYNCHRONOUS_MODES, begin_write, connect
from .tx import Tx, dumps, now_ms
from .waits import WaitStoreMixin

if TYPE_CHECKING:  # only annotations: a read command does not import pydantic
    from pydantic import BaseModel

DB_FILENAME = "smithers.db"
FAULT_ENV = "SMITHERS_FAULT_BEFORE_COMMIT"
SYNCHRONOUS_ENV = "SMITHERS_SYNCHRONOUS"
HOME_ENV = "SMITHERS_HOME"

CommitObserver = Callable[[float], None]
_commit_observers: list[CommitObserver] = []
_commits = 0  # COMMITs issued by this process (what SMITHERS_FAULT_BEFORE_COMMIT counts)


def add_commit_observer(observer: CommitObserver) -> None:
    """Call ``observer(seconds)`` after every write transaction of this process commits
    (``seconds``: BEGIN IMMEDIATE to COMMIT). Idempotent."""
    if observer not in _commit_observers:
        _commit_observers.append(observer)


def remove_commit_observer(observer: CommitObserver) -> None:
    if observer in _commit_observers:
        _commit_observers.remove(observer)


def _fault_point() -> int | None:
    raw = os.environ.get(FAULT_ENV)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{FAULT_ENV} must be a whole number (the COMMIT to die before), got {raw!r}") from None
    return value if value > 0 else None


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


def default_db_target(start: Path | None = None) -> str:
    """What ``--db`` means when it is not given: ``$SMITHERS_DB`` (a path or a ``postgresql://``
    URL), else the nearest ``smithers.db`` walking up from ``start`` (else ``start/smithers.db``)."""
    env = os.environ.get("SMITHERS_DB")
    if env and is_url(env):
        return env
    return str(default_db_path(start))


class SleepListener:
    """SQLite has no notifications: :meth:`wait` sleeps the timeout and returns nothing, so a
    waiter falls back to polling at that pace."""

    def wait(self, timeout_s: float) -> list[tuple[str, str]]:
        time.sleep(max(timeout_s, 0.0))
        return []

    def close(self) -> None:
        pass


class Store(
    StoreReads, QueryStoreMixin, WaitStoreMixin, CronStoreMixin, MemoryStoreMixin, CacheStoreMixin, ScoreStoreMixin,
    SnapshotStoreMixin, HistoryStoreMixin, QueueStoreMixin, CopyStoreMixin,
):
    """A smithers database. Open with :meth:`open`; close with :meth:`close`.

    >>> store = Store.open(Path("/tmp/x/smithers.db"))  # doctest: +SKIP
    >>> with store.tx(run_id) as tx:                     # doctest: +SKIP
    ...     tx.event("RunStarted")
    """

    dialect: str = SQLITE

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.target = str(path)  # what a child process gets as --db
        self.label = str(path)  # how messages name the database
        self.home = path.parent  # the folder under which .smithers/runs/<id>/ logs live
        self._lock = threading.RLock()
        self._tables: dict[str, OutputTable] = {}
        self._decoders: dict[str, OutputTable] = {}
        self._current: Tx | None = None
        self._fault_at = _fault_point()
        self.commit_listeners: list[Any] = []

    @classmethod
    def open(cls, path: Path | str, *, synchronous: str | None = None, readonly: bool = False) -> Store:
        """Open (and migrate) the database at ``path``: a SQLite file, or a ``postgresql://``
        URL (a :mod:`PostgreSQL <smithers.storage.postgres>` store with the same methods).
        ``synchronous`` (SQLite): ``NORMAL`` (default) or ``FULL`` (an fsync per commit), else
        ``$SMITHERS_SYNCHRONOUS``. ``readonly``: a reader's connection (no migration), e.g. the
        metrics collector's.

        >>> Store.open("postgresql://smithers@db.internal/smithers")  # doctest: +SKIP
        """
        if is_url(path):
            return cls._open_postgres(str(path), readonly=readonly)
        path = Path(path).expanduser().resolve()
        raw = synchronous or os.environ.get(SYNCHRONOUS_ENV) or "NORMAL"
        sync = raw.strip().upper()
        if sync not in SYNCHRONOUS_MODES:
            source = "synchronous=" if synchronous else f"{SYNCHRONOUS_ENV}="
            raise UserError(
                f"{source}{raw!r} is not a SQLite synchronous mode smithers supports",
                hint=f"use one of {', '.join(SYNCHRONOUS_MODES)} (FULL: an fsync per commit, for power-loss durability)",
            )
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = connect(path, synchronous=sync, readonly=readonly)
        except sqlite3.Error as err:
            raise StorageError(f"cannot open database {path}: {err}", hint="check the path and its permissions") from None
        store = cls(conn, path)
        if not readonly:
            store._migrate()
        return store

    @classmethod
    def _open_postgres(cls, url: str, *, readonly: bool) -> Store:
        from . import postgres  # psycopg is imported only when a URL is opened

        try:
            conn = postgres.PgConnection(url)
        except postgres.DatabaseError as err:
            raise StorageError(
                f"cannot connect to {postgres.redact(url)}: {str(err).strip()}",
                hint="check the URL (postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE), that the server runs and lets you in",
            ) from None
        home = Path(os.environ.get(HOME_ENV) or Path.cwd()).expanduser().resolve()
        store = cls(conn, home / DB_FILENAME)  # type: ignore[arg-type]
        store.dialect = POSTGRESQL
        store.target = url
        store.label = postgres.redact(url)
        store.home = home
        if not readonly:
            try:
                postgres.migrate(conn, MIGRATIONS, now_ms())
            except BaseException:
                conn.close()
                raise
        return store

    def close(self) -> None:
        self._conn.close()

    # -- wake-ups --------------------------------------------------------------------------

    def notify(self, channel: str, payload: str = "") -> None:
        """Wake the listeners of ``channel`` when the open write transaction commits (PostgreSQL
        ``pg_notify``; SQLite: nothing, its waiters poll). Call it inside ``store.tx``.

        >>> with store.tx(run_id) as tx:                   # doctest: +SKIP
        ...     store.notify("smithers_attempts", run_id)
        """
        if self.dialect == POSTGRESQL:  # nothing reads its result: it travels with the next statement (or the COMMIT)
            self._conn.defer("SELECT pg_notify(?, ?)", (channel, payload))  # type: ignore[attr-defined]

    def listener(self, channels: list[str]) -> Any:
        """An object whose ``wait(timeout_s)`` blocks until a notification on one of ``channels``
        arrives (or the timeout passes) and returns the ``(channel, payload)`` pairs; ``close()``
        ends it. PostgreSQL: a dedicated LISTEN connection; SQLite: ``wait`` sleeps and returns []."""
        if self.dialect == POSTGRESQL:
            from .postgres import PgListener

            return PgListener(self.target, channels)
        return SleepListener()

    def pragma(self, name: str) -> Any:
        """One connection setting (``journal_mode``, ``synchronous``, ...) as SQLite reports it."""
        if not name.isidentifier():
            raise StorageError(f"not a pragma name: {name!r}")
        if self.dialect == POSTGRESQL:
            raise StorageError(f"PRAGMA {name} is a SQLite setting; {self.label} is a PostgreSQL database")
        row = self._conn.execute(f"PRAGMA {name}").fetchone()
        return row[0] if row else None

    def _begin(self, run_id: str | None = None) -> None:
        """Open a write transaction (SQLite: ``BEGIN IMMEDIATE``, the one write lock; PostgreSQL:
        ``BEGIN``, then the run's advisory lock, which keeps its ``seq`` gapless)."""
        if self.dialect == POSTGRESQL:
            self._conn.begin()  # type: ignore[attr-defined]
            if run_id is not None:
                self._conn.lock_key("run", run_id)  # type: ignore[attr-defined]
        else:
            begin_write(self._conn)

    def _rollback(self) -> None:
        if self.dialect == POSTGRESQL:
            self._conn.rollback()
        else:
            self._conn.execute("ROLLBACK")

    def _commit(self, tx: Tx | None = None) -> None:
        """The one COMMIT of every write (the fault-injection point)."""
        global _commits
        _commits += 1
        if self._fault_at is not None and _commits == self._fault_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.dialect == POSTGRESQL:
            from .postgres import event_stamping

            # the events' commit-ordered ids are stamped in the same message as the COMMIT
            self._conn.commit(*(event_stamping(tx.events) if tx is not None and tx.events else ()))
        else:
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._lock:
            begin_write(self._conn)
            try:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS _smithers_migrations "
                    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)"
                )
                applied = {r[0] for r in self._conn.execute("SELECT version FROM _smithers_migrations")}
                for version, name, statements in MIGRATIONS:
                    if version in applied:
                        continue
                    for statement in statements:
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO _smithers_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)", (version, name, now_ms())
                    )
                self._commit()
            except BaseException:
                self._conn.execute("ROLLBACK")
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
                yield current  # the outer transaction was fenced when it opened
                return
            started = time.perf_counter()
            self._begin(run_id)
            tx = Tx(self._conn, run_id)
            self._current = tx
            try:
                if owner_id is not None and not tx.fence(owner_id):
                    raise LeaseLostError(f"run {run_id}: another process took over this run; stopping here")
                yield tx
                self._commit(tx)
            except BaseException:
                self._rollback()
                raise
            finally:
                self._current = None
            elapsed = time.perf_counter() - started
        for observer in _commit_observers:
            observer(elapsed)
        if tx.events:
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
        """Create or extend the model's table (new fields → ADD COLUMN; nothing is ever dropped).
        Writers call it before writing a row; readers use :meth:`output_decoder` (no DDL)."""
        key = f"{model.__module__}.{model.__qualname__}:{id(model)}"
        table = self._tables.get(key)
        if table is not None:
            return table
        table = OutputTable.for_model(model)
        with self._lock:
            nested = self._conn.in_transaction  # inside a batch: DDL joins it (SQLite and PostgreSQL DDL are transactional)
            if not nested:
                self._begin()
            try:
                if self.dialect == POSTGRESQL:
                    self._conn.lock_key("ddl", table.name)  # type: ignore[attr-defined]  # two writers may create it at once
                self._ddl(table.ddl())
                existing = set(table_columns(self._conn, table.name))
                for column, kind in table.columns:
                    if column not in existing:
                        sql_type = {"int": "INTEGER", "real": "REAL", "bool": "INTEGER"}.get(kind, "TEXT")
                        self._ddl(f'ALTER TABLE "{table.name}" ADD COLUMN "{column}" {sql_type}')
                # columns_json maps every column ever added to its kind (int/real/bool/text/json), so
                # readers without the model (inspect, the HTTP API) can decode rows faithfully
                row = self._conn.execute(
                    "SELECT columns_json FROM _smithers_output_tables WHERE table_name = ?", (table.name,)
                ).fetchone()
                kinds = json.loads(row[0]) if row else {}
                if isinstance(kinds, list):
                    kinds = dict.fromkeys(kinds)
                kinds.update(dict(table.columns))
                self._conn.execute(
                    "INSERT INTO _smithers_output_tables (table_name, model_name, columns_json) VALUES (?, ?, ?) "
                    "ON CONFLICT (table_name) DO UPDATE SET model_name = excluded.model_name, columns_json = excluded.columns_json",
                    (table.name, model.__name__, dumps(kinds)),
                )
                if not nested:
                    self._commit()
            except BaseException:
                if not nested:
                    self._rollback()
                raise
        self._tables[key] = table
        self._decoders[key] = table
        return table

    def _ddl(self, statement: str) -> None:
        """Run one SQLite DDL statement, translated when the store is PostgreSQL."""
        if self.dialect == POSTGRESQL:
            from .postgres import translate_ddl

            for translated in translate_ddl(statement):
                self._conn.execute(translated)
        else:
            self._conn.execute(statement)

    def output_decoder(self, model: type[BaseModel]) -> OutputTable:
        """How rows of ``model`` decode, without touching the database: a render reads outputs
        with it, so a render never runs DDL (a missing table simply has no rows)."""
        key = f"{model.__module__}.{model.__qualname__}:{id(model)}"
        table = self._decoders.get(key)
        if table is None:
            table = self._decoders[key] = OutputTable.for_model(model)
        return table


__all__ = [
    "DB_FILENAME", "SleepListener", "Store", "Tx", "add_commit_observer", "default_db_path", "default_db_target", "event_from_row",
    "now_ms",
]
