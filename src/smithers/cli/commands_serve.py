"""``smithers serve``: the HTTP API (and dashboard) over every run of a database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import DbOption, app

if TYPE_CHECKING:
    from ..server.app import ServerThread

TokenOption = Annotated[
    str | None,
    typer.Option(
        "--auth-token", envvar="SMITHERS_API_KEY", show_envvar=True, show_default=False,
        help="Require this token (Authorization: Bearer) on every route but /health.",
    ),
]


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; beyond loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0 picks a free one).")] = 7331,
    root: Annotated[
        str | None,
        typer.Option("--root", help="Folder whose workflow files POST /v1/runs may start (default: the current one).", show_default=False),
    ] = None,
    auth_token: TokenOption = None,
    db: DbOption = None,
) -> int:
    """Serve the HTTP API over every run of the database until Ctrl-C.

    Example: SMITHERS_API_KEY=s3cret smithers serve --port 7331 --root .
    """
    from ..errors import UserError
    from ..server import check_bind

    token = auth_token or None
    check_bind(host, token)  # before importing FastAPI and the engine: a refusal is instant
    from .. import ops

    server = _server_module()
    root_path = Path(root or ".").expanduser().resolve()
    if not root_path.is_dir():
        raise UserError(f"--root {root_path} is not a folder")
    store = ops.open_store(db)
    target, label = store.target, store.label
    store.close()
    application = server.create_app(target, root_path, token)
    sock = server.bind(host, port)
    auth = "token required" if token else "no token"
    typer.echo(f"serving {label} on {server.url_of(sock)} (root {root_path}, {auth}); Ctrl-C stops")
    server.serve_forever(application, sock)
    return 0


def start_background_server(db: str, host: str, port: int, token: str | None) -> ServerThread:
    """``smithers up --serve``: the API in a daemon thread; its URL goes to stderr."""
    from ..server import check_bind

    token = token or None
    check_bind(host, token)
    server = _server_module()
    application = server.create_app(db, Path.cwd(), token)
    thread: ServerThread = server.ServerThread(application, server.bind(host, port)).start()
    typer.echo(f"serving on {thread.url}", err=True)
    return thread


def _server_module() -> Any:
    from ..errors import UserError

    try:
        from ..server import app as server
    except ImportError as err:
        raise UserError(
            f"the HTTP server needs FastAPI and uvicorn ({err})", hint="install them with: pip install 'smithers-orchestrator[server]'"
        ) from None
    return server
