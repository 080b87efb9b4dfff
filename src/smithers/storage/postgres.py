"""PostgreSQL specifics, kept in one place: the connection adapter, the SQLite→PostgreSQL DDL
translation, migrations under an advisory lock, commit-ordered event ids, LISTEN/NOTIFY.

:class:`PgConnection` gives the store what it uses of a ``sqlite3`` connection (``execute``
returning a cursor-like result with ``fetchone/fetchall/rowcount/description``, iteration,
``executemany``, ``in_transaction``), so the store's SQL — written once, in SQLite's dialect with
``?`` placeholders — runs unchanged: ``?`` becomes ``%s`` (a literal ``%`` is escaped) and
parameters are bound client-side (``psycopg.ClientCursor``), so ``? IS NULL`` needs no type.
Database errors come back in the store's one vocabulary: a missing table is
``sqlite3.OperationalError("no such table: ...")``, any other error in the statement is an
``sqlite3.OperationalError``, a constraint violation an ``sqlite3.IntegrityError``.

Connections: one *main* connection serves the thread that holds the store's write transaction
and any read that finds it free; a read on another thread while it is busy borrows one from a
``psycopg_pool.ConnectionPool`` (opened on first need). Every connection is in autocommit mode;
a write transaction is an explicit ``BEGIN`` … ``COMMIT`` on the main connection.

Imported only when a ``postgresql://`` URL is opened (psycopg is the ``postgres`` extra).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import zlib
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

try:
    import psycopg
    from psycopg import ClientCursor, sql
    from psycopg.adapt import Loader
    from psycopg_pool import ConnectionPool
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "a postgresql:// database needs psycopg 3 and psycopg-pool: pip install 'smithers-orchestrator[postgres]'"
    ) from err

DatabaseError = psycopg.Error  # what a failed connection raises, for the store's messages
POOL_MAX = 4
CONNECT_TIMEOUT_S = 10
# advisory-lock namespaces (the first key of pg_advisory_xact_lock(int, int))
LOCK_SPACES = {"migrate": 0x534D0001, "run": 0x534D0002, "ddl": 0x534D0003, "events": 0x534D0004}


def redact(url: str) -> str:
    """The URL without its password (for messages and ``store.label``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[1]}"))


# -- placeholders ------------------------------------------------------------------------------

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|%")
_translated: dict[str, str] = {}


def translate_placeholders(query: str) -> str:
    """``?`` (outside quotes and comments) → ``%s``; ``%`` → ``%%`` (psycopg's escape).

    >>> translate_placeholders("SELECT * FROM t WHERE a = ? AND b LIKE '50%?'")
    "SELECT * FROM t WHERE a = %s AND b LIKE '50%%?'"
    """
    done = _translated.get(query)
    if done is None:

        def swap(m: re.Match[str]) -> str:
            token = m.group(0)
            if token == "?":
                return "%s"
            return token.replace("%", "%%")

        done = _translated[query] = _TOKENS.sub(swap, query)
    return done


_split: dict[str, list[str]] = {}


def _split_placeholders(query: str) -> list[str]:
    """The text around each ``?`` placeholder (outside quotes and comments)."""
    parts = _split.get(query)
    if parts is None:
        parts, last = [], 0
        for m in _TOKENS.finditer(query):
            if m.group(0) == "?":
                parts.append(query[last:m.start()])
                last = m.end()
        parts.append(query[last:])
        _split[query] = parts
    return parts


# a plain one-row INSERT (no ON CONFLICT, no RETURNING): deferred ones into the same table merge into one multi-row INSERT
_PLAIN_INSERT = re.compile(r"^\s*(INSERT\s+INTO\s+\"?(\w+)\"?\s*\([^()]*\)\s*VALUES\s*)(\([^()]*\))\s*$", re.I | re.S)
_plain_inserts: dict[str, tuple[str, str, str] | None] = {}


def _plain_insert(query: str) -> tuple[str, str, str] | None:
    """(table, ``INSERT INTO t (cols) VALUES `` prefix, the ``(?, ...)`` row) of a plain one-row
    INSERT, else None (cached per statement text)."""
    if query not in _plain_inserts:
        m = _PLAIN_INSERT.match(query)
        _plain_inserts[query] = (m.group(2).lower(), m.group(1), m.group(3)) if m else None
    return _plain_inserts[query]


def _literal(value: Any) -> str | None:
    """``value`` as a SQL literal for the common types (None: let psycopg do it). Strings are
    standard-conforming (a quote doubled, backslashes as they are: the server's default, checked
    at connect time); a negative number is parenthesised, so ``a - ?`` never reads as ``a --``."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        text = str(value)
        if "\x00" in text:
            return None  # psycopg raises the error that names the problem
        return "'" + text.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value)) if value >= 0 else f"({int(value)})"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return repr(value) if value >= 0 else f"({value!r})"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(value).hex() + "'::bytea"
    return None


# -- DDL ------------------------------------------------------------------------------------------

# column types, written in upper case as the migrations do (a quoted or lower-case name is never a type)
_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"}
_TYPE_TOKENS = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|\b(?:INTEGER|REAL|BLOB)\b')
_INTEGER_KEY = re.compile(r"\b(\w+)\s+INTEGER\s+(?:NOT\s+NULL\s+)?PRIMARY\s+KEY(?:\s+AUTOINCREMENT)?", re.I)
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)\"?", re.I)
_VIRTUAL = re.compile(r"^\s*CREATE\s+VIRTUAL\s+TABLE\s+(\w+)\s+USING\s+fts5\s*\((.*)\)\s*$", re.I | re.S)
_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+", re.I)
FTS_WEIGHTS = "ABCD"
TS_CONFIG = "simple"  # like FTS5's unicode61: split on non-word characters, lowercase, no stemming


def translate_ddl(statement: str) -> list[str]:
    """One SQLite DDL statement of a migration (or an output table) as PostgreSQL statements.

    - ``INTEGER``/``REAL``/``BLOB`` → ``BIGINT``/``DOUBLE PRECISION``/``BYTEA`` (epoch-ms need 64
      bits); types in upper case, as the migrations write them (names are lower case or quoted);
    - ``x INTEGER PRIMARY KEY [AUTOINCREMENT]`` (SQLite's rowid alias) → an identity column;
    - an internal ``_smithers_*`` table without one gets a ``rowid`` identity column, SQLite's
      hidden rowid made explicit (``ORDER BY rowid`` keeps its meaning);
    - ``CREATE VIRTUAL TABLE t USING fts5(a, b, ...)`` → a table ``(rowid, a, b, ..., tsv)`` whose
      ``tsv`` is a generated ``tsvector`` (column weights A, B, ... in order) with a GIN index;
    - ``INSERT OR IGNORE`` → ``INSERT ... ON CONFLICT DO NOTHING``.
    """
    virtual = _VIRTUAL.match(statement)
    if virtual:
        return _fts_table(virtual.group(1), virtual.group(2))
    out = statement
    has_key = bool(_INTEGER_KEY.search(out))
    out = _INTEGER_KEY.sub(r"\1 BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", out)
    out = _TYPE_TOKENS.sub(lambda m: _TYPES.get(m.group(0), m.group(0)), out)
    create = _CREATE_TABLE.match(out)
    if create and create.group(1).startswith("_smithers_") and not has_key:
        close = out.rstrip().rfind(")")
        out = out[:close].rstrip() + ",\n    rowid BIGINT GENERATED BY DEFAULT AS IDENTITY\n)"
    insert_or = _INSERT_OR.match(out)
    if insert_or:
        if insert_or.group(1).upper() == "REPLACE":
            raise ValueError(f"INSERT OR REPLACE has no generic PostgreSQL form; write INSERT ... ON CONFLICT: {statement[:80]}")
        out = "INSERT INTO " + out[insert_or.end():].removeprefix("INTO ").strip() + " ON CONFLICT DO NOTHING"
    return [out]


def _fts_table(name: str, spec: str) -> list[str]:
    columns = [c.strip() for c in spec.split(",") if c.strip() and "=" not in c]
    if not columns or len(columns) > len(FTS_WEIGHTS):
        raise ValueError(f"fts5 table {name}: 1 to {len(FTS_WEIGHTS)} columns supported, got {columns}")
    vector = " || ".join(
        f"setweight(to_tsvector('{TS_CONFIG}', coalesce({c}, '')), '{w}')" for c, w in zip(columns, FTS_WEIGHTS, strict=False)
    )
    cols = ", ".join(f"{c} TEXT" for c in columns)
    return [
        f"CREATE TABLE {name} (rowid BIGINT PRIMARY KEY, {cols}, tsv tsvector GENERATED ALWAYS AS ({vector}) STORED)",
        f"CREATE INDEX {name}_tsv ON {name} USING GIN (tsv)",
    ]


# statements run after a migration on PostgreSQL only, by version: the event table's rowid is
# not an identity but the commit-ordered id stamped by stamp_events (see there)
AFTER_MIGRATION: dict[int, list[str]] = {
    1: [
        "ALTER TABLE _smithers_events ALTER COLUMN rowid DROP IDENTITY",
        "ALTER TABLE _smithers_events ALTER COLUMN rowid DROP NOT NULL",
        "CREATE INDEX _smithers_events_rowid ON _smithers_events (rowid)",
    ],
}


# -- results and errors ---------------------------------------------------------------------------


class _NumericLoader(Loader):
    """``numeric`` (what SUM() of integers gives) as int when whole, else float, as SQLite does."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class PgResult:
    """A finished statement's rows (fetched at once), like a ``sqlite3.Cursor`` after ``execute``."""

    __slots__ = ("_pos", "_rows", "description", "lastrowid", "rowcount")

    def __init__(self, description: Any, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.description = description
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount
        self.lastrowid = None

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


def _as_store_error(err: psycopg.Error) -> Exception:
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, psycopg.errors.UndefinedTable):
        return sqlite3.OperationalError(f"no such table: {message}")
    if isinstance(err, psycopg.errors.IntegrityError):
        return sqlite3.IntegrityError(message)
    if isinstance(err, (psycopg.errors.ProgrammingError, psycopg.errors.DataError)):
        return sqlite3.OperationalError(message)
    return err


def _no_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL, so no stored value has one: a read that looks one up (the
    engine renders against the impossible run id ``"\\x00no-run"``) asks for U+FFFD instead, which
    finds nothing just the same. Writes are left alone: a NUL there is an error, never altered."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _connect(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True, cursor_factory=ClientCursor, connect_timeout=CONNECT_TIMEOUT_S)
    _configure(conn)
    return conn


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_loader("numeric", _NumericLoader)
    # the literals of _literal() are standard-conforming strings (PostgreSQL's default since 9.1)
    conn.execute("SET standard_conforming_strings = on")


class PgConnection:
    """What the store uses of a connection, over PostgreSQL (see the module docstring).

    Round trips are what a checkpoint costs on PostgreSQL, so a write transaction sends as few
    as it can: ``BEGIN`` and the run's lock travel with the transaction's first statement,
    writes whose result nobody reads (:meth:`defer`: an event's INSERT) with the next statement,
    and the event stamping with the ``COMMIT`` (one simple-protocol message each time; an error
    in any of them fails the statement it travels with, and the transaction rolls back whole).
    Deferred one-row INSERTs into one table (a batch's events, frames, attempts, queue rows) are
    merged into one multi-row INSERT, sent before the next statement that names that table (and
    before any statement whose result is read, and the COMMIT): the server parses and plans one
    statement instead of one per row. Rows only move later, never past a statement that could
    see them (the tables have no foreign keys or triggers)."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._main = _connect(url)
        self._main_lock = threading.Lock()
        self._tx_thread: int | None = None
        self._pending: list[str] = []  # SQL to send ahead of the next statement (BEGIN, locks, deferred writes)
        self._begun = False  # whether BEGIN has reached the server
        self._rows: dict[str, tuple[str, list[str]]] = {}  # table -> (INSERT prefix, rendered rows) of merged deferred inserts
        self._pool: ConnectionPool[Any] | None = None
        self._pool_lock = threading.Lock()

    # -- statements -------------------------------------------------------------------------

    def _render(self, query: str, params: Sequence[Any] | None) -> str:
        """The statement with its parameters bound client-side, as the server will get it: the
        common types quoted here (fast), anything else by psycopg's ``ClientCursor.mogrify``."""
        if not params:
            return query
        if query.lstrip()[:6].upper() == "SELECT" and any(isinstance(p, str) and "\x00" in p for p in params):
            params = [_no_nul(p) for p in params]
        parts = _split_placeholders(query)
        if len(parts) == len(params) + 1:
            literals = [_literal(p) for p in params]
            if None not in literals:
                out = [parts[0]]
                for literal, part in zip(literals, parts[1:], strict=True):
                    out += (literal, part)  # type: ignore[arg-type]
                return "".join(out)
        try:
            return ClientCursor(self._main).mogrify(translate_placeholders(query), params)
        except psycopg.Error as err:
            raise _mapped(err) from err

    def _run(self, conn: psycopg.Connection[Any], query: str, params: Sequence[Any] | None, ahead: list[str] | None = None) -> PgResult:
        try:
            cur = conn.cursor()
            if ahead:
                cur.execute("; ".join([*ahead, self._render(query, params)]))
                for _ in ahead:
                    cur.nextset()
            else:  # no parameters left: psycopg sends the text as it is (a literal % stays)
                cur.execute(self._render(query, params))
            rows = cur.fetchall() if cur.description is not None else []
            return PgResult(cur.description, rows, cur.rowcount)
        except psycopg.Error as err:
            raise _mapped(err) from err

    def execute(self, query: str, params: Sequence[Any] | None = ()) -> PgResult:
        if self._tx_thread == threading.get_ident():
            self._flush_rows()
            ahead, self._pending = self._pending, []
            self._begun = True
            return self._run(self._main, query, params, ahead)
        if self._main_lock.acquire(blocking=False):
            try:
                self._reconnect_if_lost()
                return self._run(self._main, query, params)
            finally:
                self._main_lock.release()
        with self.pool().connection() as conn:
            return self._run(conn, query, params)

    def defer(self, query: str, params: Sequence[Any] | None = ()) -> None:
        """Inside a write transaction: send this write with the next statement (or the COMMIT)
        instead of waiting for its answer now. Only for writes whose result is not read."""
        if self._tx_thread != threading.get_ident():
            self.execute(query, params)
            return
        insert = _plain_insert(query)
        if insert is not None:
            table, prefix, row = insert
            held = self._rows.get(table)
            if held is not None and held[0] != prefix:  # another column list: the rows so far go first
                self._flush_rows([table])
                held = None
            if held is None:
                held = self._rows[table] = (prefix, [])
            held[1].append(self._render(row, params))
            return
        if self._rows:
            lowered = query.lower()
            named = [t for t in self._rows if t in lowered]
            if named:
                self._flush_rows(named)
        self._pending.append(self._render(query, params))

    def _flush_rows(self, tables: list[str] | None = None) -> None:
        """Turn the merged rows of ``tables`` (default: all) into pending multi-row INSERTs."""
        for table in list(self._rows) if tables is None else tables:
            prefix, rows = self._rows.pop(table)
            self._pending.append(prefix + ", ".join(rows))

    def executemany(self, query: str, seq_of_params: Sequence[Sequence[Any]]) -> None:
        for params in seq_of_params:
            self.execute(query, params)

    def pool(self) -> ConnectionPool[Any]:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url, min_size=0, max_size=POOL_MAX, open=True, configure=_configure,
                    kwargs={"autocommit": True, "cursor_factory": ClientCursor, "connect_timeout": CONNECT_TIMEOUT_S},
                    name="smithers",
                )
            return self._pool

    # -- transactions -----------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self._tx_thread == threading.get_ident()

    def begin(self) -> None:
        """Open a write transaction on this thread (``BEGIN`` goes with its first statement)."""
        self._main_lock.acquire()
        try:
            self._reconnect_if_lost()
        except BaseException:
            self._main_lock.release()
            raise
        self._tx_thread = threading.get_ident()
        self._pending = ["BEGIN"]
        self._rows = {}
        self._begun = False

    def _reconnect_if_lost(self) -> None:
        """A long-lived store (a worker, ``serve``) outlives a server restart or an idle timeout:
        between transactions, a lost main connection is replaced (never inside one: a transaction
        whose connection died has failed, and says so)."""
        if self._main.closed or self._main.broken:
            self._main = _connect(self.url)

    def lock_key(self, space: str, key: str) -> None:
        """A transaction-scoped advisory lock on ``key`` in namespace ``space`` (held until commit;
        sent with the transaction's next statement)."""
        self.defer(f"SELECT pg_advisory_xact_lock({LOCK_SPACES[space]}, {_key32(key)})")

    def commit(self, *final: str) -> None:
        """COMMIT, after the pending statements and ``final`` (statements sent in the same message)."""
        self._flush_rows()
        statements = [*self._pending, *final]
        self._pending = []
        if self._begun or len(statements) > 1:  # BEGIN alone: nothing was written, nothing to send
            self._begun = True  # a failure leaves the transaction open: the caller's rollback() ends it
            self._run(self._main, "COMMIT", None, statements)
        self._end()

    def rollback(self) -> None:
        self._pending = []
        self._rows = {}
        try:
            if self._begun:
                self._main.execute("ROLLBACK")
        finally:
            self._end()

    def _end(self) -> None:
        self._begun = False
        self._tx_thread = None
        self._main_lock.release()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._main.close()


def _mapped(err: psycopg.Error) -> Exception:
    mapped = _as_store_error(err)
    return err if mapped is err else mapped


def _key32(key: str) -> int:
    """A stable signed 32-bit number for ``key`` (advisory lock keys are two int4)."""
    value = zlib.crc32(key.encode())
    return value - (1 << 32) if value >= (1 << 31) else value


# -- migrations -----------------------------------------------------------------------------------


def migrate(conn: PgConnection, migrations: list[tuple[int, str, list[str]]], now_ms: int) -> None:
    """Apply the migrations not applied yet, in one transaction, under an advisory lock: two
    processes opening a fresh database at once apply each migration once (the second waits,
    then finds them applied)."""
    conn.begin()
    try:
        conn.lock_key("migrate", "schema")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _smithers_migrations "
            "(version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)"
        )
        applied = {r[0] for r in conn.execute("SELECT version FROM _smithers_migrations")}
        for version, name, statements in migrations:
            if version in applied:
                continue
            for statement in statements:
                for translated in translate_ddl(statement):
                    conn.execute(translated)
            for extra in AFTER_MIGRATION.get(version, []):
                conn.execute(extra)
            conn.execute("INSERT INTO _smithers_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)", (version, name, now_ms))
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


# -- events: a commit-ordered global id ------------------------------------------------------------


def event_stamping(events: list[dict[str, Any]]) -> list[str]:
    """The statements that give this transaction's events their global ``rowid``, sent with the
    COMMIT: first a global lock held until the commit, then per run one UPDATE numbering its
    events after the newest committed id. Ids are thus handed out in commit order, so a reader
    tailing ``rowid > cursor`` (the metrics collector, the SSE tail) never sees id N+1 committed
    while id N is still in flight and skips it. The lock is held only for those UPDATEs and the
    COMMIT; rows of an uncommitted transaction have no id (and are invisible anyway). Each
    statement reads with its own snapshot, taken after the lock is held (READ COMMITTED)."""
    by_run: dict[str, list[int]] = {}
    for event in events:
        by_run.setdefault(event["run_id"], []).append(event["seq"])
    statements = [f"SELECT pg_advisory_xact_lock({LOCK_SPACES['events']}, 0)"]
    for run_id, seqs in by_run.items():
        low, high = min(seqs), max(seqs)
        quoted = "'" + run_id.replace("'", "''") + "'"
        statements.append(
            f"UPDATE _smithers_events SET rowid = (SELECT COALESCE(MAX(rowid), 0) FROM _smithers_events) + 1 + seq - {low} "
            f"WHERE run_id = {quoted} AND seq BETWEEN {low} AND {high}"
        )
    return statements


# -- full-text search ------------------------------------------------------------------------------


def tsquery_of(words: list[str]) -> str:
    """Words OR-ed as a ``to_tsquery`` text, each quoted (never syntax)."""
    return " | ".join("'" + w.replace("'", "''") + "'" for w in words)


# -- LISTEN/NOTIFY ------------------------------------------------------------------------------


class PgListener:
    """A dedicated connection LISTENing on ``channels``; :meth:`wait` blocks up to a timeout
    (call it from a thread) and returns the ``(channel, payload)`` pairs that arrived."""

    def __init__(self, url: str, channels: list[str]) -> None:
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        for channel in channels:
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def wait(self, timeout_s: float) -> list[tuple[str, str]]:
        got = [(n.channel, n.payload) for n in self._conn.notifies(timeout=max(timeout_s, 0.0), stop_after=1)]
        if got:  # whatever else already arrived, without waiting again
            got += [(n.channel, n.payload) for n in self._conn.notifies(timeout=0.0)]
        return got

    def close(self) -> None:
        self._conn.close()


__all__ = [
    "AFTER_MIGRATION", "DatabaseError", "PgConnection", "PgListener", "PgResult", "event_stamping", "migrate", "redact", "translate_ddl",
    "translate_placeholders", "tsquery_of",
]
