"""SQLite specifics, kept in one place: connection settings and the busy-retrying write lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SYNCHRONOUS_MODES = ("NORMAL", "FULL")


def connect(path: Path, *, synchronous: str = "NORMAL", readonly: bool = False) -> sqlite3.Connection:
    """Open ``path`` in WAL mode. Autocommit mode: every write transaction is an explicit
    ``BEGIN IMMEDIATE`` so a writer takes the lock up front instead of failing on upgrade.
    ``readonly``: ``query_only`` (a reader of a database another connection writes)."""
    if synchronous.upper() not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout=30000")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
        return conn
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def begin_write(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def is_missing_table(err: sqlite3.OperationalError) -> bool:
    """Whether ``err`` says a table does not exist (and nothing else is wrong)."""
    return str(err).startswith("no such table")
