"""④ Execute one attempt of a task: static (validate a literal), compute (call a Python
function, sync in a daemon thread or async on the loop) or agent (prompt, extract, validate).

Timeouts, heartbeat timeouts and cancellation are enforced by the loop, which cancels the
attempt's asyncio task; a sync function's thread cannot be interrupted, so its late result is
discarded.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from ..agents.base import AgentEvent, AgentRequest, agent_name
from ..authoring.context import TaskContext
from ..errors import AgentError, InvalidOutputError
from .outputs import extract_json, schema_instruction, validate_output
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
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting task as the attempt's failure
            loop.call_soon_threadsafe(settle, False, err)
        else:
            loop.call_soon_threadsafe(settle, True, result)

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


def pick_agent(desc: TaskDescriptor, attempt: int) -> Any:
    """A list of agents is a fallback chain: attempt n uses entry min(n, len) - 1."""
    agent = desc.task.agent
    if isinstance(agent, (list, tuple)):
        if not agent:
            raise AgentError(f"task {desc.node_id!r}: the agent list is empty", retryable=False)
        return agent[min(attempt, len(agent)) - 1]
    return agent


async def run_agent(
    desc: TaskDescriptor, tc: TaskContext, on_event: Callable[[AgentEvent], None]
) -> tuple[BaseModel, dict[str, Any]]:
    agent = pick_agent(desc, tc.attempt)
    if not callable(getattr(agent, "run", None)):
        raise AgentError(f"task {desc.node_id!r}: {agent!r} is not an agent (it has no async run(request))", retryable=False)
    prompt = (desc.task.prompt or "") + schema_instruction(desc.model)
    request = AgentRequest(
        prompt=prompt,
        output_schema=desc.model.model_json_schema(),
        cwd=tc.cwd,
        timeout=desc.task.timeout,
        on_event=on_event,
        node_id=desc.node_id,
        attempt=tc.attempt,
    )
    result = await agent.run(request)
    info = {"agent": agent_name(agent), "session_id": result.session_id, "usage": result.usage}
    value = result.output
    if value is None:
        try:
            value = extract_json(result.text)
        except ValueError as err:
            raise InvalidOutputError(
                f"task {desc.node_id!r}: the agent's reply has no JSON output ({err})", retryable=True, details=info
            ) from None
    return validate_output(desc.model, value, node_id=desc.node_id, retryable=True), info
