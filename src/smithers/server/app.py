"""The HTTP server: ``create_app(db, root, token)`` builds the FastAPI app over one store.

- every route except ``/health`` and ``/v1/meta`` (and the dashboard's sign-in and static files) needs the
  token when one is set: ``Authorization: Bearer T`` or the ``smithers_token`` cookie that
  ``POST /v1/session`` sets; tokens are compared in constant time and never logged;
- request bodies over ``max_body_bytes`` (1 MiB) are refused with 413 before any route runs,
  and so are cross-origin browser writes and, without a token, non-loopback ``Host`` names
  (403; see :class:`Guard`);
- every error is the envelope ``{"error": {"code", "message", "details"}}``;
- runs are started and resumed in background ``smithers`` processes (their own session), so
  the server never runs workflow code beyond validating a new run's input.

:func:`serve_forever` (``smithers serve``) and :class:`ServerThread` (``smithers up --serve``)
bind the socket themselves, so port 0 works and a busy port is a clean error.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request

from ..errors import UserError
from ..storage.target import resolve_db_target
from . import check_bind, errors, is_loopback  # noqa: F401  (check_bind: re-exported)
from .errors import ApiError, envelope
from .service import (  # defined here before .service: still importable from here
    COOKIE_NAME,
    MAX_BODY_BYTES,
    STATIC_CACHE_CONTROL,
    STATIC_DIR,
    Service,
    service_of,
)

DEFAULT_PORT = 7331
_DRAIN_LIMIT = 16 << 20  # read (and drop) at most this much of an oversized body before answering 413


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _hostname(netloc: str) -> str:
    """``host[:port]`` → host (``[::1]:80`` → ``::1``)."""
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


async def _refuse(send: Any, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
    payload = json.dumps(envelope(code, message, details)).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": payload})


class Guard:
    """Pure ASGI middleware in front of every route:

    - browsers' cross-site writes are refused (403): an unsafe method whose ``Origin`` is not
      this server's own ``Host``, so a web page cannot start, approve or cancel runs through a
      browser on this machine;
    - without a token, a ``Host`` that is not a loopback name is refused (403), which defeats
      DNS rebinding against a loopback server;
    - a request body over ``max_bytes`` is answered with 413 before any route runs (the body
      is read once and replayed, so the limit holds for chunked bodies too).
    """

    def __init__(self, app: Any, max_bytes: int, token_required: bool) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.token_required = token_required

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.token_required and host and not is_loopback(_hostname(host)):
            await _refuse(send, 403, "FORBIDDEN_HOST", f"host {host!r} is not a loopback name; a server without a token answers only those")
            return
        if scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1].rstrip("/") != host:
            await _refuse(send, 403, "CROSS_ORIGIN", f"cross-origin request from {origin!r} refused")
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                too_large = True
            if not too_large:
                chunks.append(body)
            if not message.get("more_body") or size > _DRAIN_LIMIT:
                break
        if too_large:
            message = f"the request body is larger than {self.max_bytes} bytes"
            await _refuse(send, 413, "PAYLOAD_TOO_LARGE", message, {"max_bytes": self.max_bytes})
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def require_token(request: Request) -> None:
    """The auth dependency of every protected route: a bearer token or the session cookie."""
    service = service_of(request)
    if not service.token:
        return
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
    if service.token_ok(bearer) or service.token_ok(request.cookies.get(COOKIE_NAME)):
        return
    raise ApiError(
        401, "UNAUTHORIZED", "a valid token is required: send 'Authorization: Bearer <token>' or sign in with POST /v1/session",
        headers={"WWW-Authenticate": "Bearer"},
    )


def create_app(
    db: str | Path,
    root: str | Path,
    token: str | None = None,
    *,
    poll_interval: float = 0.2,
    ping_interval: float = 15.0,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over the database ``db`` (a SQLite path or a ``postgresql://`` URL); new runs must
    name a workflow under ``root``."""
    from .. import __version__
    from . import api

    service = Service(
        db=resolve_db_target(db), root=Path(root).expanduser().resolve(), token=token or None,
        poll_interval=poll_interval, ping_interval=ping_interval, max_body_bytes=max_body_bytes,
    )
    service.store()  # create/migrate the database now, not in the first request

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="smithers", version=__version__, description="HTTP API of the smithers durable workflow runtime.",
        openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan,
    )
    app.state.service = service
    errors.install(app)
    app.include_router(api.public)
    app.include_router(api.router, dependencies=[Depends(require_token)])
    if STATIC_DIR.is_dir():
        app.mount("/static", _dashboard_files(), name="static")
    app.add_middleware(Guard, max_bytes=max_body_bytes, token_required=bool(service.token))
    return app


# Served explicitly: the platform's MIME table may say text/plain for .js (Windows' registry
# does), and browsers refuse to run a module served so.
STATIC_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


def _dashboard_files() -> Any:
    """The dashboard's files under ``/static/``: ES modules as ``text/javascript``, always revalidated."""
    from starlette.staticfiles import StaticFiles

    class DashboardFiles(StaticFiles):
        def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Any, status_code: int = 200) -> Any:
            response = super().file_response(full_path, stat_result, scope, status_code)
            media_type = STATIC_MEDIA_TYPES.get(Path(full_path).suffix)
            if media_type and response.status_code != 304:
                response.headers["content-type"] = media_type
            response.headers["cache-control"] = STATIC_CACHE_CONTROL
            response.headers["x-content-type-options"] = "nosniff"
            return response

    return DashboardFiles(directory=STATIC_DIR)


# -- running it -------------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free port); a busy port is a usage error."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise UserError(f"cannot resolve --host {host}: {err.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)  # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on each connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror}", hint="pick another --port") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: FastAPI, *, access_log: bool) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def serve_forever(app: FastAPI, sock: socket.socket) -> None:
    """Serve on ``sock`` until Ctrl-C / SIGTERM (uvicorn handles both)."""
    _server(app, access_log=True).run(sockets=[sock])


class ServerThread:
    """uvicorn in a daemon thread (``smithers up --serve``, tests): ``start()``, then ``stop()``."""

    def __init__(self, app: FastAPI, sock: socket.socket, *, access_log: bool = False) -> None:
        self.sock = sock
        self.url = url_of(sock)
        self.server = _server(app, access_log=access_log)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="smithers-server", daemon=True)

    def start(self, timeout: float = 10.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise UserError(f"the HTTP server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
