"""What the routes share: :class:`Service` (the database, the workflow root, the token and the
background runs) and the constants the app and its routes both read.

Below :mod:`.app` (which builds the FastAPI app and includes the routes of :mod:`.api`) and
below :mod:`.api` and :mod:`.sse` (which get the service from a request with :func:`service_of`),
so none of them imports another in a circle. ``smithers.server.app`` re-exports these names.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from ..storage.store import Store
from .errors import ApiError

MAX_BODY_BYTES = 1 << 20
COOKIE_NAME = "smithers_token"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_CACHE_CONTROL = "no-cache"  # revalidate (ETag) every time: after an upgrade no module is stale


@dataclass
class Service:
    """What the routes share: the database, the workflow root, the token, and background runs."""

    db_path: Path
    root: Path
    token: str | None = None
    poll_interval: float = 0.2
    ping_interval: float = 15.0
    max_body_bytes: int = MAX_BODY_BYTES
    _local: threading.local = field(default_factory=threading.local)
    _stores: list[Store] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    load_lock: threading.Lock = field(default_factory=threading.Lock)  # workflow imports touch sys.modules/sys.path

    def store(self) -> Store:
        """This thread's connection (SQLite connections are not shared between threads)."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store.open(self.db_path)
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for store in self._stores:
                with contextlib.suppress(Exception):  # closing at shutdown; nothing to do about it
                    store.close()
            self._stores.clear()

    # -- auth ----------------------------------------------------------------------------

    def token_ok(self, supplied: str | None) -> bool:
        if not self.token:
            return True
        return supplied is not None and hmac.compare_digest(supplied.encode(), self.token.encode())

    # -- background runs -----------------------------------------------------------------

    def spawn(self, args: list[str], run_id: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``smithers ARGS --db DB --quiet`` in its own session, output to the run's log
        (``-P``: files in the root never shadow modules the CLI imports)."""
        from ..events.ndjson import run_dir

        log_path = run_dir(self.db_path, run_id) / "output.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-P", "-m", "smithers", *args, "--db", str(self.db_path), "--quiet"]
        env = {k: v for k, v in os.environ.items() if k != "SMITHERS_API_KEY"}
        with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            child = subprocess.Popen(
                argv, cwd=self.root, env=env, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()  # no zombies
        return child, log_path

    def wait_started(self, child: subprocess.Popen[bytes], log_path: Path, run_id: str, *, timeout: float = 15.0) -> str:
        """Wait until the child owns the run (or already left it); returns the run's status.
        A child that exits with a usage error (exit 4) is a 409 (400 if it created no run)
        naming its message; one that crashed before creating the run is a 500."""
        store = self.store()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = store.get_run(run_id)
            if run is not None and run["owner_pid"] == child.pid:
                run_status: str = run["status"]
                return run_status
            code = child.poll()
            if code is not None:
                run = store.get_run(run_id)
                if code == 4 or run is None:
                    message = _error_lines(log_path) or f"the background process exited with code {code}"
                    status = 409 if run is not None else 400 if code == 4 else 500
                    raise ApiError(status, "RUN_NOT_STARTED", message, details={"log": str(log_path), "exit_code": code})
                run_status = run["status"]
                return run_status
            time.sleep(0.05)
        run = store.get_run(run_id)
        return run["status"] if run else "starting"

    def continue_if_unowned(self, run_id: str) -> bool:
        """After a decision: a waiting run nobody runs is resumed in the background at once."""
        from ..storage.lease import owner_alive

        run = self.store().get_run(run_id)
        if run is None or not run["status"].startswith("waiting") or owner_alive(run):
            return False
        self.spawn(["resume", run_id], run_id)
        return True


def _error_lines(log_path: Path) -> str:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
    except OSError:
        return ""
    picked = [line.strip() for line in lines if line.startswith(("error:", "  hint:"))]
    return "\n".join(picked[-2:])


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service
