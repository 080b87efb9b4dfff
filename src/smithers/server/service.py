"""What the routes share: :class:`Service` (the database, the workflow root, the token and the
background runs) and the constants the app and its routes both read.

Below :mod:`.app` (which builds the FastAPI app and includes the routes of :mod:`.api`) and
below :mod:`.api` and :mod:`.sse` (which get the service from a request with :func:`service_of`),
so none of them imports another in a circle. ``smithers.server.app`` re-exports these names.
"""

from __future__ import annotations

import contextlib
import hmac
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from ..storage.store import Store
from ..storage.target import is_db_url
from .errors import ApiError

MAX_BODY_BYTES = 1 << 20
COOKIE_NAME = "smithers_token"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_CACHE_CONTROL = "no-cache"  # revalidate (ETag) every time: after an upgrade no module is stale


@dataclass
class Service:
    """What the routes share: the database, the workflow root, the token, and background runs."""

    db: str  # the database's target: a SQLite path or a postgresql:// URL
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
        """This thread's store: SQLite connections are not shared between threads. A PostgreSQL
        store is shared by every thread (its connection adapter has a pool), so a busy server
        holds a pool's worth of connections, not one per worker thread."""
        if is_db_url(self.db):
            with self._lock:
                if not self._stores:
                    self._stores.append(Store.open(self.db))
                return self._stores[0]
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store.open(self.db)
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
        """Start ``smithers ARGS`` for ``run_id`` in the background (see :mod:`smithers.background`)."""
        from .. import background

        return background.spawn(args, store=self.store(), run_id=run_id, cwd=self.root)

    def wait_started(self, child: subprocess.Popen[bytes], log_path: Path, run_id: str, *, timeout: float = 15.0) -> str:
        """Wait until the child owns the run (or already left it); returns the run's status.
        A child that exits with a usage error (exit 4) is a 409 (400 if it created no run)
        naming its message; one that crashed before creating the run is a 500."""
        from .. import background

        try:
            return background.wait_started(child, log_path, self.store(), run_id, timeout=timeout)
        except background.BackgroundStartError as err:
            code, created = err.details["exit_code"], err.details["run_created"]
            status = 409 if created else 400 if code == 4 else 500
            raise ApiError(status, "RUN_NOT_STARTED", err.message, details={"log": str(log_path), "exit_code": code}) from None

    def continue_if_unowned(self, run_id: str) -> bool:
        """After a decision: a waiting run nobody runs is resumed in the background at once."""
        from .. import background

        return background.continue_if_unowned(self.store(), run_id, cwd=self.root)


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service
