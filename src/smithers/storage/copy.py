"""Whole-database statements for ``smithers db upgrade`` and ``smithers db copy``: which
migrations a database has, which tables hold smithers' data, and copying every row of them from
one store into another (SQLite → PostgreSQL to grow up; any direction works).

:class:`CopyStoreMixin` is mixed into :class:`~smithers.storage.store.Store`. Its SQL is written
once for both dialects (``?`` placeholders, quoted identifiers); the few catalogue questions that
differ (which tables exist, their columns) branch on the connection's dialect here, nowhere else.

A copy is one transaction on the destination: the output tables are created, every row is
inserted, the full-text index of agent memory is rebuilt and each table's row count is checked
against the source before the commit. A failure (or a crash) anywhere leaves the destination as
it was. The source is only read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import DbCopyError as CopyError
from ..errors import SmithersError, StorageError
from .output_tables import _SQL_TYPE, KEY_COLUMNS

MIGRATIONS_TABLE = "_smithers_migrations"
OUTPUT_REGISTRY = "_smithers_output_tables"
FTS_TABLE = "_smithers_memory_fts"  # SQLite FTS5 index: rebuilt from the facts, never copied
FACTS_TABLE = "_smithers_memory_facts"
INTERNAL_PREFIX = "_smithers_"
COPY_BATCH = 500

CopyProgress = Callable[[str, int], None]


def _dialect(conn: Any) -> str:
    return str(getattr(conn, "dialect", "sqlite"))


def _quote(name: str) -> str:
    if '"' in name or "\x00" in name:
        raise StorageError(f"not a table or column name smithers writes: {name!r}")
    return f'"{name}"'


def _table_names(conn: Any, *, include_virtual: bool = False) -> list[str]:
    """Every ordinary table of the database (views, FTS shadow tables and catalogues left out;
    SQLite's virtual tables too unless ``include_virtual``)."""
    if _dialect(conn) == "postgresql":
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            f"{'' if include_virtual else 'AND sql NOT LIKE ?'} ORDER BY name",
            () if include_virtual else ("CREATE VIRTUAL TABLE%",),
        ).fetchall()
    return [str(r[0]) for r in rows if not str(r[0]).startswith(f"{FTS_TABLE}_")]  # FTS5's own tables


def _columns(conn: Any, table: str) -> list[str]:
    """``table``'s columns in order, without PostgreSQL's stand-in ``rowid`` column."""
    if _dialect(conn) == "postgresql":
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? "
            "ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return [str(r[0]) for r in rows if r[0] != "rowid"]
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()]


def _count(conn: Any, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {_quote(table)}").fetchone()[0])


def _pg_identity_columns(conn: Any, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? "
        "AND is_identity = 'YES' ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _pg_key_columns(conn: Any, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = CAST(? AS regclass) AND i.indisprimary ORDER BY a.attnum",
        (_quote(table),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _order_key(conn: Any, table: str) -> list[str]:
    """The columns that give ``table``'s rows in insertion order: SQLite's rowid; on PostgreSQL
    its ``rowid`` stand-in, else its identity column, else its primary key."""
    if _dialect(conn) != "postgresql":
        return ["rowid"]
    columns = [str(r[0]) for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?", (table,)
    ).fetchall()]
    if "rowid" in columns:
        return ["rowid"]
    return _pg_identity_columns(conn, table)[:1] or _pg_key_columns(conn, table) or columns


def output_table_ddl(name: str, kinds: dict[str, str | None]) -> str:
    """The DDL of an output table from its registry entry (column → kind), as
    :meth:`~smithers.storage.output_tables.OutputTable.ddl` writes it for a model."""
    cols = "".join(f", {_quote(c)} {_SQL_TYPE.get(k or 'text', 'TEXT')}" for c, k in kinds.items() if c not in KEY_COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {_quote(name)} (run_id TEXT NOT NULL, node_id TEXT NOT NULL, "
        f"iteration INTEGER NOT NULL{cols}, PRIMARY KEY (run_id, node_id, iteration))"
    )


class CopyStoreMixin:
    """Whole-database reads and the copy, on a :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: Any

    # -- migrations ------------------------------------------------------------------------

    def migration_rows(self) -> list[dict[str, Any]]:
        """``[{version, name, applied_at_ms}]`` of the migrations applied to this database,
        oldest first ([] for a database smithers never migrated)."""
        if MIGRATIONS_TABLE not in _table_names(self._conn):
            return []
        rows = self._conn.execute(f"SELECT version, name, applied_at_ms FROM {MIGRATIONS_TABLE} ORDER BY version").fetchall()
        return [{"version": int(r[0]), "name": str(r[1]), "applied_at_ms": int(r[2])} for r in rows]

    # -- what a copy moves -----------------------------------------------------------------

    def data_tables(self) -> list[str]:
        """The tables a copy moves, in a fixed order: smithers' own tables (runs first), then
        every output table of the registry. The migrations table and the full-text index are
        not data (the destination has its own; the index is rebuilt)."""
        existing = _table_names(self._conn)
        internal = [t for t in existing if t.startswith(INTERNAL_PREFIX) and t not in (MIGRATIONS_TABLE, FTS_TABLE)]
        internal.sort(key=lambda t: (t != "_smithers_runs", t))
        outputs: list[str] = []
        if OUTPUT_REGISTRY in existing:
            registered = [str(r[0]) for r in self._conn.execute(f"SELECT table_name FROM {OUTPUT_REGISTRY} ORDER BY table_name")]
            outputs = [t for t in registered if t in existing]
        return internal + outputs

    def output_registry(self) -> dict[str, tuple[str, dict[str, str | None]]]:
        """``{table: (model name, {column: kind})}`` of every registered output table."""
        if OUTPUT_REGISTRY not in _table_names(self._conn):
            return {}
        out: dict[str, tuple[str, dict[str, str | None]]] = {}
        for name, model, columns_json in self._conn.execute(
            f"SELECT table_name, model_name, columns_json FROM {OUTPUT_REGISTRY} ORDER BY table_name"
        ).fetchall():
            kinds = json.loads(columns_json)
            out[str(name)] = (str(model), dict.fromkeys(kinds) if isinstance(kinds, list) else dict(kinds))
        return out

    def table_counts(self, tables: list[str] | None = None) -> dict[str, int]:
        """``{table: rows}`` for ``tables`` (default: :meth:`data_tables`); a missing table counts 0."""
        existing = set(_table_names(self._conn))
        return {t: _count(self._conn, t) if t in existing else 0 for t in (self.data_tables() if tables is None else tables)}

    def table_columns(self, table: str) -> list[str]:
        """``table``'s column names in order ([] when it does not exist)."""
        return _columns(self._conn, table) if table in _table_names(self._conn) else []

    def table_rows(self, table: str, columns: list[str], *, batch: int = COPY_BATCH) -> Iterator[list[tuple[Any, ...]]]:
        """Every row of ``table`` (only ``columns``), in insertion order, ``batch`` rows at a
        time. Each row starts with its ``rowid`` (SQLite's, or PostgreSQL's stand-in column; None
        when the table has none), then the ``columns``."""
        key = _order_key(self._conn, table)
        names = ", ".join(_quote(c) for c in columns)
        order = ", ".join(_quote(c) if c != "rowid" else "rowid" for c in key)
        has_rowid = key == ["rowid"]
        head = "rowid" if has_rowid else "NULL"
        if len(key) == 1:  # keyset paging: bounded memory, stable order, no OFFSET rescans
            last: Any = None
            while True:
                where, params = ("", ()) if last is None else (f"WHERE {order} > ?", (last,))
                rows = self._conn.execute(
                    f"SELECT {head}, {names}, {order} FROM {_quote(table)} {where} ORDER BY {order} LIMIT {int(batch)}", params
                ).fetchall()
                if not rows:
                    return
                last = rows[-1][-1]
                yield [tuple(r[:-1]) for r in rows]
        offset = 0
        while True:
            rows = self._conn.execute(
                f"SELECT {head}, {names} FROM {_quote(table)} ORDER BY {order} LIMIT {int(batch)} OFFSET {offset}"
            ).fetchall()
            if not rows:
                return
            offset += len(rows)
            yield [tuple(r) for r in rows]

    # -- the copy --------------------------------------------------------------------------

    def copy_from(self, source: CopyStoreMixin, *, progress: CopyProgress | None = None) -> dict[str, int]:
        """Copy every row of ``source``'s :meth:`data_tables` into this (empty) database, in one
        transaction, and return ``{table: rows}``. Raises :class:`CopyError` (nothing written)
        when this database already holds data or the schemas do not fit, :class:`StorageError`
        when the copied counts do not match the source's."""
        tables = source.data_tables()
        registry = source.output_registry()
        mine = self.table_counts()
        occupied = {t: n for t, n in mine.items() if n}
        if occupied:
            runs = occupied.pop("_smithers_runs", 0)
            shown = ", ".join(f"{t} ({n})" for t, n in sorted(occupied.items()))
            what = f"{runs} run(s)" + (f" and rows in {shown}" if shown else "") if runs else f"rows in {shown}"
            raise CopyError(
                f"the destination {getattr(self, 'label', '')} is not empty: it holds {what}",
                hint="copy into a new, empty database (createdb NAME, or a new SQLite path); nothing was written",
            )
        plan: list[tuple[str, list[str]]] = []
        for table in tables:
            src_columns = source.table_columns(table)
            if table in registry:
                dst_columns = list(dict.fromkeys([*KEY_COLUMNS, *registry[table][1], *self.table_columns(table)]))
            else:
                dst_columns = self.table_columns(table)
            if not dst_columns:
                raise CopyError(
                    f"the destination has no table {table}: the source was written by a newer smithers",
                    hint="upgrade smithers where you run db copy, then run it again",
                )
            unknown = [c for c in src_columns if c not in dst_columns]
            if unknown:
                raise CopyError(
                    f"table {table}: the destination has no column {', '.join(unknown)}",
                    hint="upgrade smithers (and run smithers db upgrade on the destination), then copy again",
                )
            plan.append((table, src_columns))
        expected = source.table_counts(tables)
        copied: dict[str, int] = {}
        tx_of: Any = getattr(self, "tx")  # noqa: B009  (Store.tx: one write transaction; the mixin does not declare it)
        with tx_of() as tx:
            conn = tx._conn
            for table, (_model, kinds) in registry.items():
                if table in tables:
                    self._copy_ddl(conn, output_table_ddl(table, kinds))
            for table, columns in plan:
                # PostgreSQL's rowid stand-in carries the source's rowid (events are read by it)
                keep_rowid = _dialect(conn) == "postgresql" and "rowid" in _all_columns(conn, table)
                names = (["rowid"] if keep_rowid else []) + columns
                try:
                    for rows in source.table_rows(table, columns):
                        values = rows if keep_rowid else [r[1:] for r in rows]
                        _insert_rows(conn, table, names, values)
                        copied[table] = copied.get(table, 0) + len(rows)
                except Exception as err:  # the driver's error (sqlite3 or psycopg), named for the user; rolled back below
                    if isinstance(err, SmithersError) and not isinstance(err, StorageError):
                        raise
                    raise StorageError(
                        f"copying table {table} failed: {getattr(err, 'message', None) or err}; nothing was written",
                        hint="the destination's table does not fit the source's rows: copy into a new, empty database",
                    ) from err
                if progress is not None:
                    progress(table, copied.get(table, 0))
            _after_copy(conn, tables)
            counted = {t: _count(conn, t) for t in tables}
            wrong = {t: (expected[t], counted[t]) for t in tables if expected[t] != counted[t]}
            if wrong:
                shown = ", ".join(f"{t}: source {a}, copy {b}" for t, (a, b) in sorted(wrong.items()))
                raise StorageError(f"the copy's row counts differ from the source's ({shown}); nothing was written")
        return counted

    def _copy_ddl(self, conn: Any, statement: str) -> None:
        ddl = getattr(self, "_ddl", None)  # the store's DDL runner (translated on PostgreSQL)
        if ddl is not None:
            ddl(statement)
        else:
            conn.execute(statement)


MAX_PARAMS = 16000  # bound parameters per INSERT (SQLite allows 32766, PostgreSQL 65535)


def _insert_rows(conn: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` with multi-row ``VALUES`` (few round trips to a server)."""
    per_statement = max(1, MAX_PARAMS // max(1, len(columns)))
    names = ", ".join(_quote(c) for c in columns)
    one = "(" + ", ".join("?" for _ in columns) + ")"
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        params = [value for row in chunk for value in row]
        conn.execute(f"INSERT INTO {_quote(table)} ({names}) VALUES {', '.join(one for _ in chunk)}", params)


def _all_columns(conn: Any, table: str) -> list[str]:
    if _dialect(conn) == "postgresql":
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?", (table,)
        ).fetchall()
        return [str(r[0]) for r in rows]
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()]


def _after_copy(conn: Any, tables: list[str]) -> None:
    """What the destination derives from the copied rows: the full-text index of memory (SQLite
    FTS5, or PostgreSQL's tsvector table, both keyed by fact_id), and on PostgreSQL the identity
    sequences, moved past the copied ids so the next insert does not collide."""
    if FACTS_TABLE in tables and FTS_TABLE in _table_names(conn, include_virtual=True):
        conn.execute(f"INSERT INTO {FTS_TABLE} (rowid, key, value) SELECT fact_id, key, value_text FROM {FACTS_TABLE}")
    if _dialect(conn) != "postgresql":
        return
    for table in tables:
        for column in _pg_identity_columns(conn, table):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX({_quote(column)}), 0) + 1, false) FROM {_quote(table)}",
                (_quote(table), column),
            )


__all__ = ["COPY_BATCH", "CopyError", "CopyStoreMixin", "output_table_ddl"]
