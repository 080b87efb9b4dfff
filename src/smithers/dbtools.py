"""Verbs on a whole database: :func:`upgrade` (apply pending migrations) and :func:`copy`
(every run, event and output table from one database into another, e.g. a laptop's SQLite file
into the team's PostgreSQL).

>>> upgrade("postgresql://smithers@db/smithers")            # doctest: +SKIP
{'db': 'postgresql://smithers@db/smithers', 'applied': [], 'version': 8, 'up_to_date': True}
>>> copy("smithers.db", "postgresql://smithers@db/smithers")  # doctest: +SKIP
{'from': '/work/smithers.db', 'to': 'postgresql://smithers@db/smithers', 'tables': {...}, 'rows': 1234}
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DbCopyError, UserError
from .storage.schema import MIGRATIONS
from .storage.store import Store
from .storage.target import db_exists, db_label, db_target, is_db_url, resolve_db_target

KNOWN_VERSIONS = {version: name for version, name, _ in MIGRATIONS}


def _require_existing(target: str, flag: str) -> None:
    if not db_exists(target):
        raise UserError(
            f"{flag}: there is no database at {target}",
            hint="check the path (smithers creates a database on the first `smithers up`), or pass a postgresql:// URL",
        )


def _newer_migrations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["version"] not in KNOWN_VERSIONS]


def upgrade(db: str | Path | None = None) -> dict[str, Any]:
    """Apply the migrations ``db`` lacks. Returns ``{db, applied: [{version, name}], version,
    up_to_date}`` (``up_to_date``: nothing was pending). A SQLite path with no file exits 4 (an
    upgrade never creates a database in the wrong folder); an empty PostgreSQL database gets the
    whole schema."""
    target = db_target(db)
    _require_existing(target, "--db")
    reader = Store.open(target, readonly=True)
    try:
        before = {r["version"] for r in reader.migration_rows()}
    finally:
        reader.close()
    store = Store.open(target)  # opening a database applies what it lacks, in one transaction
    try:
        rows = store.migration_rows()
        label = store.label
    finally:
        store.close()
    newer = _newer_migrations(rows)
    applied = [{"version": r["version"], "name": r["name"]} for r in rows if r["version"] not in before]
    result: dict[str, Any] = {
        "db": label, "applied": applied, "version": max((r["version"] for r in rows), default=0), "up_to_date": not applied,
    }
    if newer:
        result["newer"] = [{"version": r["version"], "name": r["name"]} for r in newer]
    return result


def copy(
    source: str | Path | None, destination: str | Path, *, progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Copy every run, node, attempt, event, frame, wait, signal, timer, cron schedule, memory
    fact, cache entry, score, audit row and output table of ``source`` (default: the default
    database) into ``destination``, which must hold no data yet (else :class:`DbCopyError`,
    exit 4). One transaction on the destination: on any failure it is left as it was (a SQLite
    file this call created is removed again). Returns ``{from, to, tables: {table: rows}, rows}``
    with the destination's counts, each checked against the source's before the commit."""
    src, dst = db_target(source), resolve_db_target(destination)
    _require_existing(src, "--from")
    if src == dst:
        raise DbCopyError(f"--from and --to are the same database ({db_label(src)})", hint="copy into another database")
    reader = Store.open(src, readonly=True)  # the source is only read, never migrated
    try:
        newer = _newer_migrations(reader.migration_rows())
        if newer:
            raise DbCopyError(
                f"--from {reader.label} has migration {newer[0]['version']} ({newer[0]['name']}) that this smithers does not know",
                hint="upgrade smithers where you run db copy, then copy again",
            )
        created = not is_db_url(dst) and not Path(dst).exists()
        try:
            writer = Store.open(dst)
        except BaseException:
            if created:
                _remove_sqlite(dst)
            raise
        try:
            tables = writer.copy_from(reader, progress=progress)
            result = {"from": reader.label, "to": writer.label, "tables": tables, "rows": sum(tables.values())}
        except BaseException:
            writer.close()
            if created:
                _remove_sqlite(dst)
            raise
        writer.close()
    finally:
        reader.close()
    return result


def _remove_sqlite(path: str) -> None:
    """A SQLite file this copy created, with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(path + suffix).unlink()


__all__ = ["copy", "upgrade"]
