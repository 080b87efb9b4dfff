"""The HTTP API (``smithers serve``, ``smithers up --serve``). FastAPI and uvicorn are
imported only when a server is built: ``smithers --help`` never loads this package, and the
bind checks below need neither (a refused ``--host`` fails fast)."""

from __future__ import annotations

import ipaddress
from typing import Any

from ..errors import UserError


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`smithers.server.app.create_app`."""
    from .app import create_app as build

    return build(*args, **kwargs)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse (exit 4) to listen beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise UserError(
            f"refusing to serve on {host} without a token: anyone who can reach it could start and approve runs",
            hint="set one with --auth-token or $SMITHERS_API_KEY, or keep the default --host 127.0.0.1",
        )


__all__ = ["check_bind", "create_app", "is_loopback"]
