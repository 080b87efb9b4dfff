"""④ Execute one attempt of a task: static (validate a literal), compute (call a Python
function, sync in a daemon thread or async on the loop) or agent (prompt, extract, validate).

Timeouts, heartbeat timeouts and cancellation are enforced by the loop, which cancels the
attempt's asyncio task; a sync function's thread cannot be interrupted, so its late result is
discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from ..authoring.context import TaskContext
from .outputs import validate_output
from .tree import TaskDescriptor


def run_static(desc: TaskDescriptor) -> BaseModel:
    """A static value that fails its model fails at once and is never retried."""
    return validate_output(desc.model, desc.task.value, node_id=desc.node_id, retryable=False)


@lru_cache(maxsize=1024)
def _wants_context(fn: Callable[..., Any]) -> bool:
    try:
        params = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return False
    return len(params) >= 1


def _run_in_daemon_thread(fn: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
    """Like to_thread, but the thread is a daemon: a hung sync task cannot keep the process alive."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as err:  # handed to the awaiting task as the attempt's failure
            outcome: tuple[bool, Any] = (False, err)
        else:
            outcome = (True, result)
        with contextlib.suppress(RuntimeError):  # the run's loop has closed (the attempt timed out or was cancelled): discard it
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name="smithers-task", daemon=True).start()
    return future


async def run_compute(desc: TaskDescriptor, tc: TaskContext) -> BaseModel:
    fn = desc.task.run
    assert fn is not None
    args = (tc,) if _wants_context(fn) else ()
    if inspect.iscoroutinefunction(fn):
        result = await fn(*args)
    else:
        result = await _run_in_daemon_thread(fn, args)
        if inspect.isawaitable(result):
            result = await result
    return validate_output(desc.model, result, node_id=desc.node_id, retryable=True)


