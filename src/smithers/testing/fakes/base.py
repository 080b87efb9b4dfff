"""What every fake model server shares: the script of replies and a server thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    """A tool call the fake model makes: ``name`` with JSON ``arguments``."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass
class Reply:
    """One model turn: some text and/or tool calls, with the token usage to report."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 12
    output_tokens: int = 7
    status: int = 200  # an HTTP error status makes the fake answer with an API error instead
    error_message: str = "fake error"


ReplyFn = Callable[[dict[str, Any]], Reply]


class Script:
    """Replies in order; each request (the parsed JSON body) is recorded.

    A step may be a :class:`Reply`, a plain string (a text reply) or a function of the request
    body returning a Reply. Once the script is used up the last step repeats.
    """

    def __init__(self, steps: Sequence[Reply | str | ReplyFn]) -> None:
        if not steps:
            raise ValueError("a fake server script needs at least one reply")
        self.steps = list(steps)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            step = self.steps[min(len(self.requests), len(self.steps) - 1)]
            self.requests.append(body)
        if callable(step):
            step = step(body)
        return Reply(text=step) if isinstance(step, str) else step


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FakeServer:
    """Serve an ASGI app on 127.0.0.1 in a background thread (a context manager).

    ``url`` is ``http://127.0.0.1:PORT``; ``requests`` is the script's request log."""

    def __init__(self, app: Any, *, port: int | None = None) -> None:
        import uvicorn

        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"fake-server-{self.port}", daemon=True)

    @property
    def requests(self) -> list[dict[str, Any]]:
        script = getattr(self.app.state, "script", None)
        return script.requests if script is not None else []

    def start(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
