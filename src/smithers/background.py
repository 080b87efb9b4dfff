"""Background runs: ``smithers up``/``resume`` in a process of their own, for the front ends
that must answer at once (the HTTP API, the MCP server), exactly as ``up --detach`` does.

The child runs in a new session with its output in the run's log; the caller waits only until
the child owns the run (or has already left it), so workflow code never runs in the server.

>>> child, log = spawn(["up", "wf.py", "--run-id", "r1"], store=store, run_id="r1", cwd=root)  # doctest: +SKIP
>>> wait_started(child, log, store, "r1")                                                     # doctest: +SKIP
'running'
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ErrorCode, SmithersError

if TYPE_CHECKING:
    from .storage.store import Store

SECRET_ENV = ("SMITHERS_API_KEY",)  # the server's token never reaches a run's environment


class BackgroundStartError(SmithersError):
    """The background process exited before it took the run. ``details``: ``exit_code``,
    ``log`` and ``run_created`` (whether the run row exists)."""


def spawn(args: list[str], *, store: Store, run_id: str, cwd: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``smithers ARGS --db DB --quiet`` in a new session (``DB``: the store's target, a
    path or URL), output appended to the run's ``output.log`` under the store's home (``-P``:
    files in the project never shadow modules the CLI imports)."""
    from .events.ndjson import run_dir
    from .storage.target import child_db

    log_path = run_dir(store.home, run_id) / "output.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    db_args, db_env = child_db(store.target)
    argv = [sys.executable, "-P", "-m", "smithers", *args, *db_args, "--quiet"]
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV} | db_env
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        child = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()  # no zombies
    return child, log_path


def wait_started(
    child: subprocess.Popen[bytes], log_path: Path, store: Store, run_id: str, *, timeout: float = 15.0,
) -> str:
    """Wait until the child owns the run (or already left it) and return the run's status
    (``starting`` if it has not taken it within ``timeout``). A child that exits first with a
    usage error (exit 4), or before creating the run, raises :class:`BackgroundStartError`
    quoting its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.get_run(run_id)
        if run is not None and run["owner_pid"] == child.pid:
            return str(run["status"])
        code = child.poll()
        if code is not None:
            run = store.get_run(run_id)
            if code == 4 or run is None:
                message = error_lines(log_path) or f"the background process exited with code {code}"
                raise BackgroundStartError(
                    message, hint=f"see {log_path}", code=ErrorCode.USAGE if code == 4 else ErrorCode.TASK_FAILED,
                    details={"exit_code": code, "log": str(log_path), "run_created": run is not None},
                )
            return str(run["status"])
        time.sleep(0.05)
    run = store.get_run(run_id)
    return str(run["status"]) if run else "starting"


def continue_if_unowned(store: Store, run_id: str, *, cwd: Path) -> bool:
    """After a decision: a waiting run nobody runs is resumed in the background at once."""
    from .storage.lease import owner_alive

    run = store.get_run(run_id)
    if run is None or not str(run["status"]).startswith("waiting") or owner_alive(run):
        return False
    spawn(["resume", run_id], store=store, run_id=run_id, cwd=cwd)
    return True


def error_lines(log_path: Path) -> str:
    """The ``error:``/``hint:`` lines at the end of a background run's log (else its last lines)."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
    except OSError:
        return ""
    picked = [line.strip() for line in lines if line.startswith(("error:", "  hint:"))]
    return "\n".join(picked[-2:] or lines[-5:]).strip()


__all__ = ["BackgroundStartError", "continue_if_unowned", "error_lines", "spawn", "wait_started"]
