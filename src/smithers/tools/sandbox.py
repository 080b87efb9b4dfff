"""bubblewrap: how ``bash`` runs without network, and with the filesystem read-only except the root.

Inside the sandbox ``/`` is mounted read-only, the tool root read-write at its own path, ``/tmp``
is a fresh tmpfs, and the process gets its own PID namespace (so nothing it starts outlives it).
Without ``allow_network`` it also gets an empty network namespace: no interface but a loopback
that is down, so every connection fails, whatever the command is. Where bwrap is missing or
cannot create namespaces here, a command that needs the sandbox is refused, never run unconfined.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"


@dataclass(frozen=True)
class BwrapStatus:
    path: str | None
    usable: bool
    problem: str = ""


_cache: dict[str, BwrapStatus] = {}
_lock = threading.Lock()


def bwrap_status(binary: str = "bwrap") -> BwrapStatus:
    """Whether ``binary`` exists and can create the namespaces we need (checked once per binary)."""
    with _lock:
        cached = _cache.get(binary)
    if cached is not None:
        return cached
    status = _probe(binary)
    with _lock:
        _cache[binary] = status
    return status


def _probe(binary: str) -> BwrapStatus:
    path = shutil.which(binary)
    if path is None:
        return BwrapStatus(None, False, f"bubblewrap ({binary!r}) was not found")
    argv = [path, *base_args(Path("/"), network=False), "--", "true"]
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as err:
        return BwrapStatus(path, False, f"{path} could not run: {err}")
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-500:] or f"exit code {done.returncode}"
        return BwrapStatus(path, False, f"{path} cannot create a sandbox here: {detail}")
    return BwrapStatus(path, True)


def base_args(root: Path, *, network: bool) -> list[str]:
    args = [
        "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
    ]
    if str(root) != "/":
        args += ["--bind", str(root), str(root)]
    if not network:
        args.append("--unshare-net")
    return args


def wrap(argv: list[str], *, root: Path, cwd: Path, network: bool, binary: str = "bwrap") -> list[str] | None:
    """``argv`` run inside bubblewrap, or None when bwrap is not usable here (see ``bwrap_status``)."""
    status = bwrap_status(binary)
    if not status.usable or status.path is None:
        return None
    return [status.path, *base_args(root, network=network), "--chdir", str(cwd), "--", *argv]
