"""The database as a target, not a file (DESIGN §10.2): `--db` takes a path or a URL, nothing
above storage treats the database as a file, and `smithers db upgrade` / `smithers db copy`
work through the real CLI (SQLite here; tests/test_pg_surface.py runs them on PostgreSQL)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from smithers.storage.target import db_exists, db_home, db_label, default_db_target, is_db_url, resolve_db_target

SRC = Path(__file__).resolve().parents[1] / "src" / "smithers"

WORKFLOW = """
from pydantic import BaseModel
from smithers import Approval, Parallel, Sequence, Task, workflow

class Out(BaseModel):
    path: str
    n: int = 0
    ok: bool = True
    tags: list[str] = []

@workflow
def shipit(ctx):
    return Sequence(
        Task("build", output=Out, value={"path": "built", "n": 3, "tags": ["a", "b"]}),
        Parallel(*[Task(f"t{i}", output=Out, value={"path": f"p{i}", "n": i}) for i in range(3)]),
        Approval("ship", Task("push", output=Out, value={"path": "pushed"})),
    )
"""


# -- the target helpers ----------------------------------------------------------------------


def test_a_url_keeps_its_form_and_loses_its_password_in_labels(tmp_path: Path) -> None:
    url = "postgresql://smithers:s3cret@db.internal:5433/runs?sslmode=require"
    assert is_db_url(url) and is_db_url("postgres://x@y/z") and not is_db_url(str(tmp_path / "smithers.db"))
    assert resolve_db_target(url) == url
    assert db_label(url) == "postgresql://smithers:***@db.internal:5433/runs?sslmode=require"
    assert "s3cret" not in db_label(url)
    assert db_label("postgresql://smithers@db/runs") == "postgresql://smithers@db/runs"
    assert db_exists(url)  # a URL is assumed to exist: opening it says clearly when it cannot connect
    assert resolve_db_target("smithers.db") == str(Path.cwd() / "smithers.db")


def test_home_is_the_files_folder_or_smithers_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert db_home(str(tmp_path / "x" / "smithers.db")) == tmp_path / "x"
    monkeypatch.setenv("SMITHERS_HOME", str(tmp_path / "logs"))
    assert db_home("postgresql://u@h/d") == tmp_path / "logs"
    monkeypatch.delenv("SMITHERS_HOME")
    monkeypatch.chdir(tmp_path)
    assert db_home("postgresql://u@h/d") == tmp_path


def test_default_target_takes_a_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMITHERS_DB", "postgresql://u@h/d")
    assert default_db_target() == "postgresql://u@h/d"
    monkeypatch.delenv("SMITHERS_DB")
    (tmp_path / "smithers.db").touch()
    (tmp_path / "sub").mkdir()
    assert default_db_target(tmp_path / "sub") == str(tmp_path / "smithers.db")


def test_a_child_gets_a_password_url_in_its_environment_not_its_command_line(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from smithers.background import spawn
    from smithers.storage.target import child_db

    assert child_db("/x/smithers.db") == (["--db", "/x/smithers.db"], {})
    assert child_db("postgresql://u@db/x") == (["--db", "postgresql://u@db/x"], {})
    url = "postgresql://u:pw-s3cret@127.0.0.1:1/x"  # port 1: nothing listens, the child says it cannot connect
    assert child_db(url) == ([], {"SMITHERS_DB": url})
    store = SimpleNamespace(target=url, home=tmp_path)
    child, log = spawn(["resume", "r1"], store=store, run_id="r1", cwd=tmp_path)  # type: ignore[arg-type]
    assert child.wait(timeout=60) == 1
    assert not any("pw-s3cret" in str(arg) for arg in child.args)  # type: ignore[union-attr]
    text = log.read_text()
    assert log == tmp_path / ".smithers" / "runs" / "r1" / "output.log"
    assert "cannot connect to postgresql://u:***@127.0.0.1:1/x" in text and "pw-s3cret" not in text  # it got the URL from its env


def test_no_code_above_storage_treats_the_database_as_a_file() -> None:
    """`store.path` is SQLite's file; above storage a store is its target, label and home
    (a PostgreSQL store has no file), so none of these may appear outside smithers/storage."""
    forbidden = re.compile(r"\bstore\.path\b|\bstore\(\)\.path\b|\bPath\(db\b|\bdefault_db_path\b|\bdb_path\b")
    offenders = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if "storage" not in path.relative_to(SRC).parts[:1]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == [], "use store.target / store.label / store.home (storage.target) instead:\n" + "\n".join(offenders)


# -- db upgrade ------------------------------------------------------------------------------


def _cli(cwd: Path, *args: str, env_db: str | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}
    if env_db is not None:
        env["SMITHERS_DB"] = env_db
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_db_upgrade_applies_what_is_missing_then_says_up_to_date(tmp_path: Path) -> None:
    from smithers.storage.schema import MIGRATIONS

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)  # a database written by an older smithers: migrations 1 and 2 only
    conn.execute("CREATE TABLE _smithers_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)")
    for version, name, statements in MIGRATIONS[:2]:
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO _smithers_migrations VALUES (?, ?, 0)", (version, name))
    conn.commit()
    conn.close()

    first = _cli(tmp_path, "db", "upgrade", "--db", str(db))
    assert first.returncode == 0, first.stderr
    latest = MIGRATIONS[-1][0]
    for version, name, _ in MIGRATIONS[2:]:
        assert f"applied migration {version}: {name}" in first.stdout
    assert f"upgraded (schema version {latest})" in first.stdout
    versions = [r[0] for r in sqlite3.connect(db).execute("SELECT version FROM _smithers_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in MIGRATIONS]

    again = _cli(tmp_path, "db", "upgrade", "--json", env_db=str(db))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"db": str(db), "applied": [], "version": latest, "up_to_date": True}


def test_db_upgrade_never_creates_a_database(tmp_path: Path) -> None:
    result = _cli(tmp_path, "db", "upgrade", "--db", str(tmp_path / "typo.db"))
    assert result.returncode == 4
    assert f"there is no database at {tmp_path / 'typo.db'}" in result.stderr
    assert not (tmp_path / "typo.db").exists()


# -- db copy ---------------------------------------------------------------------------------


def _sqlite_dump(db: Path) -> dict[str, list[tuple]]:
    """Every data table's rows, in rowid order (what a faithful copy must reproduce)."""
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_smithers_memory_fts%' "
            "AND name != '_smithers_migrations'"
        )]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY rowid').fetchall() for n in names}
    finally:
        conn.close()


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    """A project whose smithers.db holds a finished run, a waiting run, memory and a cron schedule."""
    project = tmp_path / "src"
    project.mkdir()
    (project / "wf.py").write_text(WORKFLOW, encoding="utf-8")
    db = str(project / "smithers.db")
    waiting = _cli(project, "up", "wf.py", "--json", env_db=db)
    assert waiting.returncode == 3, waiting.stderr
    finished = _cli(project, "up", "wf.py", "--json", env_db=db)
    run_id = json.loads(finished.stdout)["run_id"]
    assert _cli(project, "approve", run_id, "--node", "ship", "--json", env_db=db).returncode == 0
    assert _cli(project, "resume", run_id, env_db=db).returncode == 0
    assert _cli(project, "memory", "set", "global", "greeting", '"hello copy"', env_db=db).returncode == 0
    assert _cli(project, "cron", "add", "0 9 * * *", "wf.py", "--json", env_db=db).returncode == 0
    return project / "smithers.db"


def test_db_copy_reproduces_every_row_and_the_copy_works(populated: Path, tmp_path: Path) -> None:
    dest = tmp_path / "elsewhere" / "copy.db"
    result = _cli(populated.parent, "db", "copy", "--to", str(dest), "--json", env_db=str(populated))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    source = _sqlite_dump(populated)
    assert report["from"] == str(populated) and report["to"] == str(dest)
    assert report["tables"] == {t: len(rows) for t, rows in source.items()}
    assert report["rows"] == sum(len(rows) for rows in source.values())
    assert report["tables"]["out"] == 9 and report["tables"]["_smithers_runs"] == 2
    assert _sqlite_dump(dest) == source

    runs = json.loads(_cli(tmp_path, "ps", "--json", "--db", str(dest)).stdout)
    assert sorted(r["status"] for r in runs) == ["finished", "waiting-approval"]
    waiting = next(r["run_id"] for r in runs if r["status"] == "waiting-approval")
    recall = _cli(tmp_path, "memory", "recall", "global", "hello", "--json", "--db", str(dest))
    assert [f["key"] for f in json.loads(recall.stdout)] == ["greeting"]  # the full-text index was rebuilt
    assert _cli(tmp_path, "approve", waiting, "--node", "ship", "--db", str(dest)).returncode == 0
    resumed = _cli(populated.parent, "resume", waiting, "--db", str(dest))
    assert resumed.returncode == 0, resumed.stderr
    assert sqlite3.connect(dest).execute("SELECT COUNT(*) FROM out WHERE node_id = 'push'").fetchone()[0] == 2
    assert sqlite3.connect(populated).execute("SELECT COUNT(*) FROM out WHERE node_id = 'push'").fetchone()[0] == 1


def test_db_copy_refuses_a_destination_that_holds_data(populated: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy.db"
    assert _cli(tmp_path, "db", "copy", "--from", str(populated), "--to", str(dest)).returncode == 0
    before = _sqlite_dump(dest)
    again = _cli(tmp_path, "db", "copy", "--from", str(populated), "--to", str(dest))
    assert again.returncode == 4
    assert f"the destination {dest} is not empty: it holds 2 run(s)" in again.stderr
    assert "nothing was written" in again.stderr
    assert _sqlite_dump(dest) == before
    same = _cli(tmp_path, "db", "copy", "--from", str(populated), "--to", str(populated))
    assert same.returncode == 4 and "the same database" in same.stderr
    missing = _cli(tmp_path, "db", "copy", "--from", str(tmp_path / "nope.db"), "--to", str(tmp_path / "x.db"))
    assert missing.returncode == 4 and f"--from: there is no database at {tmp_path / 'nope.db'}" in missing.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_copy_killed_before_its_commit_leaves_the_destination_unchanged(populated: Path, tmp_path: Path) -> None:
    """SIGKILL right before the copy's one COMMIT (after every row was inserted): the
    destination (already migrated: its first commit) holds no run; a second copy then works."""
    import os

    from smithers.storage.store import Store

    dest = tmp_path / "copy.db"
    Store.open(dest).close()  # an empty, migrated destination
    before = _sqlite_dump(dest)
    env = {**os.environ, "SMITHERS_FAULT_BEFORE_COMMIT": "2"}  # commit 1: opening dest (migrations, none due); 2: the copy
    env.pop("SMITHERS_DB", None)
    killed = subprocess.run(
        [sys.executable, "-m", "smithers", "db", "copy", "--from", str(populated), "--to", str(dest)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    assert _sqlite_dump(dest) == before and all(rows == [] for rows in before.values())
    assert _cli(tmp_path, "db", "copy", "--from", str(populated), "--to", str(dest)).returncode == 0
    assert _sqlite_dump(dest) == _sqlite_dump(populated)


def test_a_copy_that_fails_midway_writes_nothing(populated: Path, tmp_path: Path) -> None:
    """The destination has an `out` table that no copied row fits (an extra NOT NULL column): the
    copy fails at that table, after every smithers table was inserted, and all of it rolls back."""
    from smithers.storage.store import Store

    dest = tmp_path / "copy.db"
    Store.open(dest).close()
    conn = sqlite3.connect(dest)
    conn.execute('CREATE TABLE "out" (run_id TEXT NOT NULL, node_id TEXT NOT NULL, iteration INTEGER NOT NULL, '
                 "trap TEXT NOT NULL, PRIMARY KEY (run_id, node_id, iteration))")
    conn.commit()
    conn.close()
    before = _sqlite_dump(dest)
    failed = _cli(tmp_path, "db", "copy", "--from", str(populated), "--to", str(dest))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "copying table out failed: " in failed.stderr and "; nothing was written" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert _sqlite_dump(dest) == before and before["_smithers_runs"] == []
