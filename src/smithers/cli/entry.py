"""The ``smithers`` console script: hand the command to a warm daemon when one runs, else run it here.

A command's fixed cost is mostly importing Python libraries (pydantic, asyncio, Typer, Rich):
about 0.2-0.4 s on a small machine, before smithers does anything. ``smithers daemon start``
keeps one process with all of that imported; this module (standard library only, so it starts
in ~20 ms) connects to it and the daemon forks a child that runs the command as if it were this
process: same arguments, working directory, environment, umask, and this terminal's
stdin/stdout/stderr (passed over the socket). Signals sent to this process are forwarded to the
child; if this process dies (even by SIGKILL) the child kills itself; the child's exit status
becomes this process's. See ``smithers.cli.daemon`` for the server side.

The daemon is used only when its socket exists and its fingerprint (interpreter, smithers'
source and its newest modification time, ``PYTHONPATH``) matches this process's; otherwise, or
with ``SMITHERS_NO_DAEMON=1``, the command runs in this process exactly as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys

TYPE_CHECKING = False  # no `typing` at run time: this module's imports are the whole cost of a warm command
if TYPE_CHECKING:
    from typing import Any

SOCKET_ENV = "SMITHERS_DAEMON_SOCKET"
DISABLE_ENV = "SMITHERS_NO_DAEMON"
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_HEADER = struct.Struct("!I")


def socket_path() -> str:
    """``$SMITHERS_DAEMON_SOCKET``, else ``$XDG_RUNTIME_DIR/smithers-<uid>/daemon.sock`` (``/tmp`` without it)."""
    explicit = os.environ.get(SOCKET_ENV)
    if explicit:
        return explicit
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(base, f"smithers-{os.getuid()}", "daemon.sock")


def fingerprint() -> str:
    """What must match between this process and the daemon for the daemon's modules to be ours."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    newest = 0
    for folder, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "templates", "static")]
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime_ns)
    return "|".join((sys.executable, package, str(newest), os.environ.get("PYTHONPATH", ""), sys.version))


def send_message(sock: socket.socket, message: dict[str, object], fds: list[int] | None = None) -> None:
    body = json.dumps(message).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def recv_message(sock: socket.socket) -> dict[str, Any] | None:
    """One length-prefixed JSON message, or None when the peer closed the connection."""
    head = _recv_exactly(sock, _HEADER.size)
    if head is None:
        return None
    body = _recv_exactly(sock, _HEADER.unpack(head)[0])
    return None if body is None else json.loads(body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks


def run_in_daemon(argv: list[str]) -> int | None:
    """Run ``argv`` in the daemon and return its exit code; None when no usable daemon answers
    (the caller then runs the command itself; nothing has been done yet in that case)."""
    if os.environ.get(DISABLE_ENV):
        return None
    path = socket_path()
    if not os.path.exists(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:  # a socket file left by a daemon that is gone
        sock.close()
        return None
    umask = os.umask(0)
    os.umask(umask)
    # signals wait (blocked) until the child's pid is known and they can be forwarded to it
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    hello = {"fingerprint": fingerprint(), "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask}
    try:
        send_message(sock, hello, [0, 1, 2])
        answer = recv_message(sock)
    except OSError:
        answer = None
    if answer is None or "pid" not in answer:  # refused (a stale daemon) or gone: run here
        sock.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        return None
    child = int(answer["pid"])

    def forward(sig: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, sig)

    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    outcome = recv_message(sock)
    if outcome is None:
        sys.stderr.write("error: the smithers daemon went away before the command ended; see `smithers daemon status`\n")
        return 1
    if "signal" in outcome:  # the child died of a signal: so does this process, as if it had run here
        number = int(outcome["signal"])
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        return 128 + number
    code = outcome.get("exit", 1)
    return code if isinstance(code, int) else 1


def entry() -> None:
    code = run_in_daemon(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from .main import entry as run_here

    run_here()
