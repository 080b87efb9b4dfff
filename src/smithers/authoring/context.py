"""``ctx`` (what a render may read) and ``TaskContext`` (what a running compute task gets)."""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from pydantic import BaseModel

from ..errors import MissingOutputError


class OutputReader(Protocol):
    """What the engine provides to a render: persisted outputs and loop iterations."""

    def output(self, node_id: str, iteration: int | None) -> BaseModel | None: ...
    def outputs(self, node_id: str) -> list[BaseModel]: ...
    def iteration_count(self, node_id: str) -> int: ...
    def loop_iteration(self, loop_id: str) -> int: ...


class Ctx:
    """The read-only view a workflow function renders from.

    Every node id the render reads is remembered, so the engine re-renders only when an
    output it could observe has changed.

    >>> # inside a workflow:  analysis = ctx.output("analyze")  -> an Analysis or None
    """

    __slots__ = ("_reader", "carried", "continued_from", "input", "reads", "run_id")

    def __init__(
        self, *, input: Any, run_id: str, reader: OutputReader, carried: Any = None, continued_from: str | None = None
    ) -> None:
        self.input = input
        self.run_id = run_id
        self._reader = reader
        self.reads: set[str] = set()
        self.carried = carried  # the state a ContinueAsNew handed to this run (None for a first run)
        self.continued_from = continued_from  # the run this one continues, if any

    def output(self, id: str, iteration: int | None = None) -> Any:
        """The newest output of node ``id`` (or of the given iteration) as its model, or ``None``."""
        self.reads.add(id)
        return self._reader.output(id, iteration)

    def require(self, id: str, iteration: int | None = None) -> Any:
        """Like :meth:`output` but raises a clear error naming ``id`` when there is no output yet."""
        value = self.output(id, iteration)
        if value is None:
            where = "" if iteration is None else f" at iteration {iteration}"
            raise MissingOutputError(
                f"ctx.require({id!r}): node {id!r} has no output{where} yet",
                hint=f"use ctx.output({id!r}) and mount dependants only once it is not None",
            )
        return value

    def outputs(self, id: str) -> list[Any]:
        """Every iteration's output of node ``id``, oldest first."""
        self.reads.add(id)
        return self._reader.outputs(id)

    def iteration_count(self, id: str) -> int:
        """How many iterations of node ``id`` have finished."""
        self.reads.add(id)
        return self._reader.iteration_count(id)

    def iteration(self, loop_id: str) -> int:
        """The current (0-based) pass of loop ``loop_id``; 0 before the loop first renders."""
        return self._reader.loop_iteration(loop_id)


MAX_HEARTBEAT_BYTES = 1_000_000


class TaskContext:
    """Handed to a compute task's ``run`` function when it takes one argument.

    >>> def work(tc: TaskContext):
    ...     start = (tc.last_heartbeat or {}).get("done", 0)
    ...     for i in range(start, 10):
    ...         tc.heartbeat({"done": i + 1})
    ...     return {"total": 10}
    """

    __slots__ = (
        "_beats", "_heartbeat_at", "_heartbeat_json", "attempt", "cwd", "idempotency_key", "iteration",
        "last_heartbeat", "node_id", "run_id",
    )

    def __init__(
        self, *, run_id: str, node_id: str, iteration: int, attempt: int, last_heartbeat: Any, cwd: str
    ) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.iteration = iteration
        self.attempt = attempt
        self.idempotency_key = f"{run_id}:{node_id}:{iteration}"
        self.last_heartbeat = last_heartbeat
        self.cwd = cwd
        self._heartbeat_json: str | None = None
        self._heartbeat_at = time.monotonic()
        self._beats = 0

    def heartbeat(self, data: Any = None) -> None:
        """Say the task is alive; ``data`` (JSON, ≤ 1 MB) is handed to the next attempt if this one fails."""
        if data is not None:
            try:
                encoded = json.dumps(data)
            except (TypeError, ValueError) as err:
                raise ValueError(f"heartbeat data for {self.node_id!r} is not JSON-serialisable: {err}") from None
            if len(encoded) > MAX_HEARTBEAT_BYTES:
                raise ValueError(f"heartbeat data for {self.node_id!r} is {len(encoded)} bytes; the limit is 1 MB")
            self._heartbeat_json = encoded
        self._heartbeat_at = time.monotonic()
        self._beats += 1
