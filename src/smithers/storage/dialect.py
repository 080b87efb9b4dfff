"""What differs between the two SQL dialects the store speaks (SQLite and PostgreSQL), named and
kept small: the few helpers the store's modules call where one statement cannot serve both.

The store's SQL is written once, in SQLite's dialect with ``?`` placeholders; the PostgreSQL
connection adapter (:mod:`smithers.storage.postgres`) runs it unchanged. Where that is not
enough, a module asks :func:`dialect_of` (``"sqlite"`` or ``"postgresql"``) or calls one of the
helpers here. psycopg is never imported by this module.
"""

from __future__ import annotations

import sqlite3
from typing import Any

SQLITE, POSTGRESQL = "sqlite", "postgresql"
URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: object) -> bool:
    """Whether a ``--db`` target is a PostgreSQL URL (else it is a SQLite file path)."""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def dialect_of(conn: Any) -> str:
    """``"postgresql"`` for the PostgreSQL adapter, ``"sqlite"`` for a ``sqlite3`` connection."""
    return str(getattr(conn, "dialect", SQLITE))


def rows_of(cur: Any) -> list[dict[str, Any]]:
    """A cursor's rows as dicts. A ``rowid`` column (PostgreSQL's stand-in for SQLite's hidden
    rowid, see :func:`smithers.storage.postgres.translate_ddl`) is left out, so ``SELECT *``
    gives the same keys on both backends."""
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    if "rowid" in names:
        for row in rows:
            del row["rowid"]
    return rows


def table_columns(conn: Any, table: str) -> list[str]:
    """The column names of ``table`` in order ([] when it does not exist); hidden ``rowid`` excluded."""
    if dialect_of(conn) == POSTGRESQL:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? "
            "ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return [r[0] for r in rows if r[0] != "rowid"]
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def table_exists(conn: Any, table: str) -> bool:
    """Whether ``table`` exists. On PostgreSQL an error inside a transaction aborts the whole
    transaction, so code that must go on when a table is missing asks first."""
    if dialect_of(conn) == POSTGRESQL:
        return conn.execute("SELECT to_regclass(?) IS NOT NULL", (f'"{table}"',)).fetchone()[0] is True
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return row is not None


def lock_run(conn: Any, run_id: str) -> None:
    """Serialise the writers of one run for the rest of the transaction, so that its per-run
    ``seq`` stays gapless. SQLite: nothing to do (``BEGIN IMMEDIATE`` holds the one write lock).
    PostgreSQL: a transaction-scoped advisory lock keyed on the run id."""
    if dialect_of(conn) == POSTGRESQL:
        conn.lock_key("run", run_id)


def execute_write(conn: Any, query: str, params: Any = ()) -> None:
    """A write whose result nobody reads. PostgreSQL sends it with the transaction's next
    statement (one round trip fewer); SQLite runs it now (a call, not a round trip)."""
    if dialect_of(conn) == POSTGRESQL:
        conn.defer(query, params)
    else:
        conn.execute(query, params)


def is_missing_table(err: sqlite3.OperationalError) -> bool:
    """Whether ``err`` says a table does not exist (and nothing else is wrong). The PostgreSQL
    adapter raises its missing-table errors in the same words."""
    return str(err).startswith("no such table")


__all__ = [
    "POSTGRESQL", "SQLITE", "dialect_of", "execute_write", "is_missing_table", "is_url", "lock_run", "rows_of", "table_columns",
    "table_exists",
]
