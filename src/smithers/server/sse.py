"""``GET /v1/runs/{id}/events`` as Server-Sent Events.

Each run event goes out as ``id: <seq>`` / ``event: <type>`` / ``data: <event JSON>``. SQLite
has no notifications, so the stream polls the store (every ``poll_interval``, 0.2 s by
default). It resumes after ``Last-Event-ID`` (or ``?after_seq=``), sends a ``: ping`` comment
when idle for ``ping_interval`` (15 s), and once the run is terminal and every event has been
sent it sends a last ``event: end`` (no id, ``data: {"run_id", "status"}``) and closes, so a
browser ``EventSource`` knows to stop instead of reconnecting.

The run's status is read *before* its events on every poll: a terminal status is committed
with the run's last event, so an empty batch after a terminal status means nothing is left.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import Request
from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event

from ..queries import TERMINAL_STATUSES
from .service import Service

BATCH = 500


def _poll(service: Service, run_id: str, after_seq: int) -> tuple[str | None, list[dict[str, Any]]]:
    store = service.store()
    run = store.get_run(run_id)
    if run is None:
        return None, []
    return run["status"], store.events(run_id, after_seq=after_seq, limit=BATCH)


def encode(event: dict[str, Any]) -> bytes:
    return format_sse_event(data_str=json.dumps(event, separators=(",", ":"), default=str), event=event["type"], id=str(event["seq"]))


async def event_stream(service: Service, request: Request, run_id: str, after_seq: int) -> AsyncIterator[bytes]:
    last = after_seq
    idle_since = time.monotonic()
    while True:
        status, batch = await anyio.to_thread.run_sync(_poll, service, run_id, last)
        for event in batch:
            yield encode(event)
            last = event["seq"]
        if len(batch) == BATCH:
            idle_since = time.monotonic()
            continue
        if status is None or status in TERMINAL_STATUSES:
            end = {"run_id": run_id, "status": status, "last_seq": last}
            yield format_sse_event(data_str=json.dumps(end), event="end")
            return
        now = time.monotonic()
        if batch:
            idle_since = now
        elif now - idle_since >= service.ping_interval:
            yield KEEPALIVE_COMMENT
            idle_since = now
        if await request.is_disconnected():
            return
        await anyio.sleep(service.poll_interval)
