"""The HTTP API (``smithers serve``, ``smithers up --serve``). FastAPI and uvicorn are
imported only when a server is built: ``smithers --help`` never loads this package."""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`smithers.server.app.create_app`."""
    from .app import create_app as build

    return build(*args, **kwargs)


__all__ = ["create_app"]
