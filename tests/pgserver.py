"""A real, throw-away PostgreSQL server for the tests (and the bench), from the Debian package.

``PgServer.start()`` runs ``initdb`` into a fresh temporary folder and ``pg_ctl start`` on a free
port, listening on 127.0.0.1 and on a Unix socket in that folder. As root it runs both as the
``postgres`` user (PostgreSQL refuses to run as root); as anyone else, as that user. No system
cluster is used or needed. ``new_database()`` gives the URL of a fresh empty database;
``stop()`` stops the server and deletes the folder.

>>> server = PgServer.start()          # doctest: +SKIP
>>> url = server.new_database()        # postgresql://postgres@/db1?host=/tmp/...&port=...
>>> server.stop()                      # doctest: +SKIP
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = (
    "the PostgreSQL tests need the server binaries of the Debian package `postgresql` "
    "(initdb and pg_ctl in /usr/lib/postgresql/*/bin): install it with `apt-get install postgresql` "
    "(scripts/setup does), then rerun"
)


class PgServerMissing(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def find_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``pg_ctl``."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb") if Path(p).with_name("pg_ctl").exists()]
    if not found:
        raise PgServerMissing(INSTALL_HINT)
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# fast and disposable: a test server need not survive a power loss (bench passes durable=True)
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


@dataclass
class PgServer:
    bin_dir: Path
    folder: Path
    port: int
    run_as: str | None  # the user the server runs as (None: this user)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def socket_dir(self) -> Path:
        return self.folder / "sock"

    @classmethod
    def start(cls, *, durable: bool = False, settings: tuple[str, ...] = ()) -> PgServer:
        bin_dir = find_bin_dir()
        folder = Path(tempfile.mkdtemp(prefix="smithers-pg-"))
        run_as = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise PgServerMissing("running as root needs the `postgres` user (the Debian package makes it); " + INSTALL_HINT) from None
            run_as = "postgres"
            os.chmod(folder, 0o755)
            os.chown(folder, user.pw_uid, user.pw_gid)
        server = cls(bin_dir=bin_dir, folder=folder, port=_free_port(), run_as=run_as)
        (folder / "sock").mkdir()
        if run_as:
            user = pwd.getpwnam(run_as)
            os.chown(folder / "sock", user.pw_uid, user.pw_gid)
        try:
            server._run("initdb", "-D", str(folder / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
            options = [f"-p {server.port}", f"-k {server.socket_dir}", "-c listen_addresses=127.0.0.1", "-c max_connections=200"]
            options += [f"-c {s}" for s in (() if durable else FAST_SETTINGS) + tuple(settings)]
            log = str(folder / "server.log")
            server._run("pg_ctl", "-D", str(folder / "data"), "-l", log, "-o", " ".join(options), "-w", "-t", "60", "start")
        except BaseException:
            server._cleanup()
            raise
        return server

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.folder, timeout=120)
        if result.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stdout}{result.stderr}\n{tail}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "db") -> str:
        """Create a fresh, empty database; return its URL."""
        import psycopg

        name = f"{prefix}{next(self._counter)}_{os.getpid()}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
