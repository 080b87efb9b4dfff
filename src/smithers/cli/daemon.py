"""The warm daemon behind ``smithers daemon start``: one process that has imported what every
command needs, and forks a child per command (the client side is ``smithers.cli.entry``).

Why a fork server: a command's fixed cost is importing Python libraries, not smithers' work
(DESIGN §7; figures in ``bench/RESULTS.md``). A forked child shares the already imported
modules and starts running the command within a few milliseconds.

The server is single-threaded (forking a threaded process is unsafe): one ``selectors`` loop
over the listening socket and a wake-up pipe for SIGCHLD/SIGTERM. Each child:

- takes the client's stdin/stdout/stderr (received as file descriptors), working directory,
  environment, umask and arguments;
- watches the client's connection from a thread and SIGKILLs itself when the client is gone,
  so killing ``smithers up`` kills the run as it would without the daemon;
- sends its exit code to the client itself; the server reports a child that died of a signal.

A client whose fingerprint differs (another interpreter, ``PYTHONPATH`` or an edited smithers)
is refused and runs the command itself.
"""

from __future__ import annotations

import contextlib
import io
import os
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from .entry import FORWARDED_SIGNALS, fingerprint, send_message, socket_path

MAX_FDS = 3
FORWARDED = {*FORWARDED_SIGNALS, signal.SIGCHLD}


def preload() -> None:
    """Import what commands use, so a forked child pays for none of it."""
    import asyncio  # noqa: F401

    from pydantic import BaseModel
    from rich.console import Console
    from rich.table import Table

    from .. import ops, queries  # noqa: F401
    from ..authoring import context, nodes  # noqa: F401
    from ..engine import loop, render  # noqa: F401
    from ..queries import chains, explain, graph, runs  # noqa: F401
    from ..storage import store  # noqa: F401
    from . import params, views  # noqa: F401
    from .main import prebuild_command

    prebuild_command()
    table = Table("warm", "up")  # Rich loads its width tables on the first render
    table.add_row("ü", "✓")
    Console(file=io.StringIO(), width=80).print(table)

    class _Warm(BaseModel):  # the first model built pays for pydantic's schema machinery
        value: int

    _Warm.model_validate({"value": 1})


class Daemon:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fingerprint = fingerprint()
        self.children: dict[int, socket.socket] = {}
        self.stopping = False
        self.served = 0

    def serve(self) -> None:
        folder = os.path.dirname(self.path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # the socket hands out this user's processes: nobody else may connect
        if os.path.exists(self.path):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, "accept")
        selector.register(wake_read, selectors.EVENT_READ, "wake")
        try:
            while not self.stopping:
                for key, _ in selector.select():
                    if key.data == "accept":
                        conn, _addr = listener.accept()
                        self._handle(conn, listener, selector)
                    else:
                        os.read(wake_read, 512)
                self._reap()
        finally:
            selector.close()
            listener.close()
            if os.path.exists(self.path):
                os.unlink(self.path)

    def _on_signal(self, sig: int, _frame: Any) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True  # running children carry on: they belong to their clients

    def _handle(self, conn: socket.socket, listener: socket.socket, selector: selectors.BaseSelector) -> None:
        conn.settimeout(5.0)
        try:
            hello, fds = _recv_hello(conn)
        except (OSError, ValueError) as err:
            sys.stderr.write(f"smithers daemon: a client's request could not be read: {err}\n")
            conn.close()
            return
        if hello.get("op") == "status":
            for fd in fds:
                os.close(fd)
            send_message(conn, {"pid": os.getpid(), "fingerprint": self.fingerprint, "children": len(self.children), "served": self.served})
            conn.close()
            return
        if hello.get("fingerprint") != self.fingerprint or len(fds) != MAX_FDS:
            send_message(conn, {"refused": "stale: another interpreter, PYTHONPATH or an edited smithers"})
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        # a signal the client forwards before the child has reset its handlers waits (blocked) for them
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            selector.close()
            listener.close()
            _run_child(conn, hello, fds)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        for fd in fds:
            os.close(fd)
        conn.settimeout(None)
        self.served += 1
        self.children[pid] = conn
        send_message(conn, {"pid": pid})

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                with contextlib.suppress(OSError):  # the client is gone (it is why the child killed itself)
                    send_message(conn, {"signal": os.WTERMSIG(status)})
            conn.close()


def _recv_hello(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    import struct

    head, fds, _flags, _addr = socket.recv_fds(conn, 4, MAX_FDS)
    if len(head) < 4:
        raise ValueError("short header")
    size = struct.unpack("!I", head)[0]
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("connection closed mid-request")
        body += chunk
    import json

    return json.loads(body), list(fds)


def _run_child(conn: socket.socket, hello: dict[str, Any], fds: list[int]) -> None:
    code = 1
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        os.setpgid(0, 0)  # its own group: the client forwards signals; agents get groups of their own
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        _reopen_stdio(hello["env"])
        os.chdir(hello["cwd"])
        os.umask(int(hello["umask"]))
        os.environ.clear()
        os.environ.update(hello["env"])
        sys.argv = ["smithers", *hello["argv"]]
        conn.settimeout(None)
        threading.Thread(target=_die_with_client, args=(conn,), daemon=True, name="smithers-client-watch").start()
        from .main import main

        try:
            code = main(list(hello["argv"]))
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except KeyboardInterrupt:
            code = 130
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        with contextlib.suppress(OSError):
            send_message(conn, {"exit": code})
        os._exit(code)


def _die_with_client(conn: socket.socket) -> None:
    try:
        while conn.recv(64):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _reopen_stdio(env: dict[str, str]) -> None:
    """New text streams over fds 0-2, buffered as Python would for this terminal (or pipe)."""
    encoding = env.get("PYTHONIOENCODING", "utf-8").split(":")[0] or "utf-8"
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding=encoding, line_buffering=os.isatty(1), write_through=False
    )
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding=encoding, errors="backslashreplace", line_buffering=True)


def main() -> None:
    """``python -m smithers.cli.daemon [SOCKET]``: preload, then serve until SIGTERM."""
    path = sys.argv[1] if len(sys.argv) > 1 else socket_path()
    preload()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Daemon(path).serve()


if __name__ == "__main__":
    main()
