"""Drive ``python -m smithers mcp`` with the MCP SDK's own stdio client (tests only)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


def server_params(root: Path, db: Path, *extra: str) -> StdioServerParameters:
    env = {k: os.environ[k] for k in ("PYTHONPATH", "PATH", "HOME", "TMPDIR") if k in os.environ}
    return StdioServerParameters(command=sys.executable, args=["-m", "smithers", "mcp", "--db", str(db), *extra], env=env, cwd=root)


class Client:
    """A connected session with ``call`` answering the envelope (and checking it is well formed)."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.session.call_tool(tool, arguments)
        body = result.structured_content
        assert isinstance(body, dict), result
        assert body["ok"] is (not result.is_error), body
        assert (body["data"] is None) is (not body["ok"]) and (body["error"] is None) is body["ok"], body
        return body

    async def data(self, tool: str, **arguments: Any) -> dict[str, Any]:
        body = await self.call(tool, **arguments)
        assert body["ok"], body
        return body["data"]

    async def error(self, tool: str, **arguments: Any) -> dict[str, Any]:
        body = await self.call(tool, **arguments)
        assert not body["ok"], body
        return body["error"]

    async def until(self, tool: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60, **arguments: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            data = await self.data(tool, **arguments)
            if check(data):
                return data
            assert time.monotonic() < deadline, f"{tool} never satisfied the check; last: {data}"
            await anyio.sleep(0.1)


@asynccontextmanager
async def connect(root: Path, db: Path, *extra: str) -> AsyncIterator[Client]:
    async with stdio_client(server_params(root, db, *extra)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield Client(session)
