"""Shared fixtures: a project folder with its own database, and the real CLI as a subprocess; the markers
for tests that need an external program (they imply ``slow``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pgserver import PgServer, PgServerMissing

from smithers.storage.store import Store

# The agent CLIs (`#!/usr/bin/env node`) run on the first `node` on PATH: put the Node that
# scripts/install-agents pins (22, as Claude Code's `engines` asks) first, for every test and every
# process a test starts (before scripts/setup has installed it, they run on the system's node).
PINNED_NODE_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node" / "node_modules" / ".bin"
if PINNED_NODE_BIN.is_dir():
    os.environ["PATH"] = f"{PINNED_NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


# -- markers: what a test needs from the machine ---------------------------------------------------

# Tests that need an external program carry its marker (registered in pyproject.toml), and every such
# marker implies `slow`, so the quick loop `-m "not slow"` needs neither the agent CLIs, Prometheus nor
# Chromium. A test that takes one of the agent CLI fixtures is marked `agents` even if nobody wrote it.
NEEDS_A_PROGRAM = ("agents", "prometheus", "browser")
AGENT_CLI_FIXTURES = frozenset({"claude_bin", "codex_bin", "gemini_bin", "pi_bin"})


POSTGRES_FIXTURES = frozenset({"pg_server", "pg_url"})


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection sees the items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if AGENT_CLI_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.agents)
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgres" in callspec.params.values()
        if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())) or on_postgres:
            item.add_marker(pytest.mark.postgres)
        if any(item.get_closest_marker(name) for name in NEEDS_A_PROGRAM) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


# -- PostgreSQL: one real server per test session, a fresh database per test --------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server (Debian package) in a temporary folder, stopped at session end.
    Missing binaries FAIL the test with what to install (never a silent skip)."""
    try:
        server = PgServer.start()
    except PgServerMissing as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database target on each backend: a SQLite file path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "smithers.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(db_target: str) -> Iterator[Store]:
    """An open, migrated store on each backend (closed after the test)."""
    opened = Store.open(db_target)
    try:
        yield opened
    finally:
        opened.close()


@dataclass
class Project:
    """A folder with a smithers.db (or, with ``url``, a PostgreSQL database), a way to write
    workflow files and to run `smithers`."""

    root: Path
    url: str | None = None

    @property
    def db(self) -> Path:
        return self.root / "smithers.db"

    @property
    def target(self) -> str:
        """The database as ``--db``/``SMITHERS_DB`` name it: the file, or the URL."""
        return self.url or str(self.db)

    def write(self, name: str, source: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["SMITHERS_DB"] = self.target
        if self.url:
            env["SMITHERS_HOME"] = str(self.root)
        env.pop("COLUMNS", None)
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the real `smithers` CLI in this project and wait for it."""
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args], cwd=self.root, env=env or self.env(), capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the real `smithers` CLI in the background (its own process group)."""
        return subprocess.Popen(
            [sys.executable, "-m", "smithers", *args], cwd=self.root, env=env or self.env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def json(self, *args: str) -> object:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def store(self) -> Store:
        return Store.open(self.target)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Plain SQL on the project's database (opened as a store first, so it is created and
        migrated, waiting for a process that is creating it). Portable SQL on PostgreSQL."""
        if self.url:
            store = Store.open(self.url)
            try:
                return [tuple(row) for row in store._conn.execute(sql, params).fetchall()]
            finally:
                store.close()
        Store.open(self.db).close()
        conn = sqlite3.connect(self.db, timeout=30)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project on SQLite; with ``SMITHERS_TEST_BACKEND=postgres`` every test that uses it runs
    on a fresh PostgreSQL database instead (the CLI then gets the URL as ``SMITHERS_DB``)."""
    if os.environ.get("SMITHERS_TEST_BACKEND") == "postgres":
        monkeypatch.setenv("SMITHERS_HOME", str(tmp_path))
        return Project(tmp_path, url=request.getfixturevalue("pg_url"))
    return Project(tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def any_project(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project on each backend: its smithers.db, then a fresh PostgreSQL database (run logs
    under the folder: ``SMITHERS_HOME``)."""
    if request.param == "sqlite":
        return Project(tmp_path)
    monkeypatch.setenv("SMITHERS_HOME", str(tmp_path))
    return Project(tmp_path, url=request.getfixturevalue("pg_url"))


def write_sql(project: Project, sql: str, params: tuple = ()) -> None:
    """One committed write in plain SQL on the project's database, as another process would make it."""
    store = project.store()
    try:
        conn = store._conn
        conn.execute("BEGIN")
        conn.execute(sql, params)
        conn.execute("COMMIT")
    finally:
        store.close()


@pytest.fixture
def run_id_of() -> Callable[[str], str]:
    """The run id from `smithers up` output ('run <id> <status>' on the last line)."""

    def parse(stdout: str) -> str:
        for line in reversed(stdout.strip().splitlines()):
            if line.startswith("run "):
                return line.split()[1]
        raise AssertionError(f"no run id in output:\n{stdout}")

    return parse


# -- helpers for the engine, durability and output-table tests ------------------------------


def _counts_of(log: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                name = line.split()[0]
                counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.fixture
def start_counts() -> Callable[[Path], dict[str, int]]:
    """How often each task wrote its start line (first word of each line) to a log file."""
    return _counts_of


@dataclass
class InProcess:
    """Run a workflow file in this process with ``smithers.ops.start_run`` on the project's db."""

    project: Project

    def up(self, name: str = "wf.py", raw_input: dict | None = None, **kwargs: object):
        from smithers.ops import start_run

        store = Store.open(self.project.target)
        try:
            return start_run(str(self.project.root / name), store=store, raw_input=raw_input, **kwargs)  # type: ignore[arg-type]
        finally:
            store.close()

    def resume(self, run_id: str, **kwargs: object):
        from smithers.ops import resume_run

        store = Store.open(self.project.target)
        try:
            return resume_run(run_id, store=store, **kwargs)  # type: ignore[arg-type]
        finally:
            store.close()


@pytest.fixture
def inproc(project: Project) -> InProcess:
    return InProcess(project)


@pytest.fixture
def any_inproc(any_project: Project) -> InProcess:
    """In-process runs on each backend (with ``any_project``)."""
    return InProcess(any_project)
