"""``smithers daemon start|stop|status``: the warm daemon that makes every command start fast.

While it runs, the ``smithers`` command hands each invocation to it (``smithers.cli.entry``);
see docs/cli.md "daemon" and ``smithers.cli.daemon`` for how and when.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import typer

from ..errors import UserError
from .app import JsonOption, app
from .entry import fingerprint, recv_message, send_message, socket_path

daemon_app = typer.Typer(help="A warm process that makes every smithers command start in milliseconds.", no_args_is_help=True)
app.add_typer(daemon_app, name="daemon")

START_TIMEOUT_S = 20.0


def _status(path: str) -> dict[str, Any] | None:
    """The daemon's own answer, or None when nothing listens at ``path``."""
    if not os.path.exists(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    try:
        sock.connect(path)
        send_message(sock, {"op": "status"}, [0, 1, 2])
        return recv_message(sock)
    except OSError:
        return None
    finally:
        sock.close()


def _describe(path: str, status: dict[str, Any] | None) -> dict[str, Any]:
    if status is None:
        return {"running": False, "socket": path}
    return {
        "running": True, "socket": path, "pid": status.get("pid"), "children": status.get("children"), "served": status.get("served"),
        "current": status.get("fingerprint") == fingerprint(),
    }


def _stop(path: str, status: dict[str, Any]) -> None:
    pid = int(status["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10.0
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


@daemon_app.command("start")
def daemon_start(json_out: JsonOption = False) -> int:
    """Start the daemon (restart it if it runs stale code). Commands then start in milliseconds."""
    path = socket_path()
    status = _status(path)
    if status is not None and status.get("fingerprint") == fingerprint():
        info = _describe(path, status)
        typer.echo(json.dumps(info) if json_out else f"smithers daemon already running (pid {info['pid']}, {path})")
        return 0
    if status is not None:  # stale: code or interpreter changed since it started
        _stop(path, status)
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    log_path = os.path.join(folder, "daemon.log")
    with open(log_path, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-P", "-m", "smithers.cli.daemon", path],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while (status := _status(path)) is None:
        if time.monotonic() > deadline:
            raise UserError(f"the smithers daemon did not start within {START_TIMEOUT_S:.0f} s", hint=f"see its log: {log_path}")
        time.sleep(0.02)
    info = _describe(path, status)
    typer.echo(json.dumps(info) if json_out else f"smithers daemon started (pid {info['pid']}, {path})")
    return 0


@daemon_app.command("stop")
def daemon_stop(json_out: JsonOption = False) -> int:
    """Stop the daemon. Commands it is running carry on to their end."""
    path = socket_path()
    status = _status(path)
    if status is not None:
        _stop(path, status)
    info = {"stopped": status is not None, "socket": path}
    typer.echo(json.dumps(info) if json_out else ("smithers daemon stopped" if status is not None else "no smithers daemon was running"))
    return 0


@daemon_app.command("status")
def daemon_status(json_out: JsonOption = False) -> int:
    """Whether the daemon runs and runs this smithers (exit 1 when it does not run)."""
    path = socket_path()
    info = _describe(path, _status(path))
    if json_out:
        typer.echo(json.dumps(info))
    elif not info["running"]:
        typer.echo(f"no smithers daemon running ({path})")
    else:
        freshness = "current" if info["current"] else "stale: restart it with `smithers daemon start`"
        running = f"{info['children']} command(s) in it now, this one included"
        typer.echo(f"smithers daemon running (pid {info['pid']}, {running}, {info['served']} served, {freshness})")
    return 0 if info["running"] else 1
