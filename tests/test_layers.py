"""Layer rules held by a test: SQL lives only under ``smithers/storage``."""

from __future__ import annotations

import re
from pathlib import Path

import smithers

SRC = Path(smithers.__file__).parent
SQL_OUTSIDE_STORAGE = re.compile(
    r"\bexecute\(|\bexecutemany\(|\bexecutescript\(|^\s*import sqlite3\b|^\s*from sqlite3 import|\bstore\._rows\(|\bstore\.conn\b",
    re.MULTILINE,
)


def sql_offenders() -> list[str]:
    """``module:line: text`` of every SQL call, sqlite3 import or reach into the store's
    connection outside ``smithers/storage``."""
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if relative.parts[0] == "storage":
            continue
        text = path.read_text(encoding="utf-8")
        for match in SQL_OUTSIDE_STORAGE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            entry = f"{relative}:{line}: {text.splitlines()[line - 1].strip()}"
            if entry not in found:
                found.append(entry)
    return found


def test_no_sql_outside_storage():
    offenders = sql_offenders()
    assert not offenders, f"{len(offenders)} SQL statements outside smithers/storage:\n" + "\n".join(offenders)


def test_the_sql_check_sees_what_it_must(tmp_path):
    """The pattern catches each form (so the check above cannot pass by accident)."""
    for text in ("conn.execute('x')", "tx.executemany(sql, rows)", "c.executescript(s)", "import sqlite3", "from sqlite3 import Row",
                 "store._rows('SELECT 1')", "store.conn.total_changes"):
        assert SQL_OUTSIDE_STORAGE.search(text), text
    for text in ("from .execute import run_compute", "def executor(x): ...", "self._rows()"):
        assert not SQL_OUTSIDE_STORAGE.search(text), text
