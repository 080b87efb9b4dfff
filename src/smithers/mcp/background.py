"""Runs the MCP server starts or continues go on in background ``smithers`` processes (their own
session, output to the run's log), exactly as ``smithers up --detach`` and the HTTP API do: the
server answers at once with the run id and never runs workflow code beyond validating input."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..errors import SmithersError, UserError


class BackgroundStartError(SmithersError):
    """The background process exited before it took the run."""


def spawn(args: list[str], *, db_path: Path, run_id: str, cwd: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``smithers ARGS --db DB --quiet`` in a new session (``-P``: files in the project never
    shadow modules the CLI imports)."""
    from ..events.ndjson import run_dir

    log_path = run_dir(db_path, run_id) / "output.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-P", "-m", "smithers", *args, "--db", str(db_path), "--quiet"]
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        child = subprocess.Popen(argv, cwd=cwd, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()  # no zombies
    return child, log_path


def wait_started(child: subprocess.Popen[bytes], log_path: Path, db_path: Path, run_id: str, *, timeout: float = 15.0) -> str:
    """Wait until the child owns the run (or already left it) and return the run's status; a
    child that exits first with a usage error raises, quoting its log."""
    from ..storage.store import Store

    store = Store.open(db_path)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = store.get_run(run_id)
            if run is not None and run["owner_pid"] == child.pid:
                return str(run["status"])
            code = child.poll()
            if code is not None:
                run = store.get_run(run_id)
                if code == 4 or run is None:
                    message = _tail(log_path) or f"the background process exited with code {code}"
                    error_type = UserError if code == 4 else BackgroundStartError
                    raise error_type(message, hint=f"see {log_path}", details={"exit_code": code})
                return str(run["status"])
            time.sleep(0.05)
        run = store.get_run(run_id)
        return str(run["status"]) if run else "starting"
    finally:
        store.close()


def continue_if_unowned(db_path: Path, run_id: str, cwd: Path) -> bool:
    """After a decision: a waiting run nobody runs is resumed in the background at once."""
    from ..storage.lease import owner_alive
    from ..storage.store import Store

    store = Store.open(db_path)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    if run is None or not str(run["status"]).startswith("waiting") or owner_alive(run):
        return False
    spawn(["resume", run_id], db_path=db_path, run_id=run_id, cwd=cwd)
    return True


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error:")]
    return "\n".join(errors or lines[-5:]).strip()
