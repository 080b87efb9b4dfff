"""The run's state as the engine sees it: node states, outputs read so far, loop passes.

It is loaded once when a run starts or resumes, then kept in step with every commit, so
scheduling never has to query the database. It is also the ``OutputReader`` behind ``ctx``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..storage.output_tables import table_name
from ..storage.store import Store


@dataclass(slots=True)
class NodeState:
    status: str
    table: str
    kind: str
    attempts: int = 0
    failures: int = 0
    retry_at_ms: int | None = None


class RunState:
    def __init__(self, store: Store, run_id: str, models: tuple[type[BaseModel], ...] = ()) -> None:
        self.store = store
        self.run_id = run_id
        self.nodes: dict[tuple[str, int], NodeState] = {}
        self.finished_iters: dict[str, list[int]] = {}
        self.cache: dict[tuple[str, int], BaseModel] = {}
        self.loops: dict[str, tuple[int, bool]] = store.loops(run_id)
        self.models: dict[str, type[BaseModel]] = {}
        self.unresolved: set[str] = set()
        self.scoped: dict[str, set[str]] = {}  # logical id -> finished node ids with a loop scope ("review@outer=0")
        for model in models:  # every model in the module, input and helper models too: only the name matters here
            self.models.setdefault(table_name(model), model)
        for row in store.nodes(run_id):
            key = (row["node_id"], row["iteration"])
            self.nodes[key] = NodeState(
                status=row["status"], table=row["output_table"], kind=row["kind"], attempts=row["attempts"],
                failures=row["failures"], retry_at_ms=row["retry_at_ms"],
            )
            if row["status"] == "finished":
                bisect.insort(self.finished_iters.setdefault(row["node_id"], []), row["iteration"])
                self._note_scoped(row["node_id"])

    # -- state used by plan and schedule ------------------------------------------------

    def status_of(self, key: tuple[str, int]) -> str:
        node = self.nodes.get(key)
        return node.status if node is not None else "pending"

    def retry_at_of(self, key: tuple[str, int]) -> int | None:
        node = self.nodes.get(key)
        return node.retry_at_ms if node is not None else None

    def loop_state(self, loop_id: str) -> tuple[int, bool]:
        return self.loops.get(loop_id, (0, False))

    def mark_finished(self, key: tuple[str, int], value: BaseModel) -> None:
        self.nodes[key].status = "finished"
        self.cache[key] = value
        iters = self.finished_iters.setdefault(key[0], [])
        if key[1] not in iters:
            bisect.insort(iters, key[1])
        self._note_scoped(key[0])

    def _note_scoped(self, node_id: str) -> None:
        logical, at, _ = node_id.partition("@")
        if at:
            self.scoped.setdefault(logical, set()).add(node_id)

    # -- loop scopes: a logical id read inside nested loops means the current outer passes' copy

    def _in_current_scope(self, scoped_id: str) -> bool:
        """Whether ``x@outer=2,mid=0`` belongs to the passes the enclosing loops are on now."""
        for part in scoped_id.partition("@")[2].split(","):
            loop_id, _, iteration = part.partition("=")
            if self.loop_iteration(loop_id) != int(iteration):
                return False
        return True

    def _node_in_scope(self, node_id: str) -> str:
        """``review`` read inside loop ``inner`` inside ``outer`` (pass 2) is ``review@outer=2``;
        an exact id (unscoped, or already suffixed) is returned as is."""
        if node_id in self.finished_iters or node_id not in self.scoped:
            return node_id
        for scoped_id in self.scoped[node_id]:
            if self._in_current_scope(scoped_id):
                return scoped_id
        return node_id

    # -- OutputReader (what ctx reads) ---------------------------------------------------

    def _load(self, node_id: str, iteration: int) -> BaseModel | None:
        key = (node_id, iteration)
        value = self.cache.get(key)
        if value is not None:
            return value
        node = self.nodes.get(key)
        if node is None or node.status != "finished":
            return None
        model = self.models.get(node.table)
        if model is None:
            self.unresolved.add(node_id)
            return None
        table = self.store.output_decoder(model)  # a render only reads: no DDL, no write lock
        for row in self.store.read_output_rows(node.table, self.run_id, node_id):
            self.cache[(node_id, row["iteration"])] = table.decode(row)
        return self.cache.get(key)

    def output(self, node_id: str, iteration: int | None) -> BaseModel | None:
        node_id = self._node_in_scope(node_id)
        iters = self.finished_iters.get(node_id)
        if not iters:
            return None
        if iteration is None:
            iteration = iters[-1]
        elif iteration not in iters:
            return None
        return self._load(node_id, iteration)

    def outputs(self, node_id: str) -> list[Any]:
        node_id = self._node_in_scope(node_id)
        found = [self._load(node_id, it) for it in self.finished_iters.get(node_id, [])]
        return [v for v in found if v is not None]

    def iteration_count(self, node_id: str) -> int:
        return len(self.finished_iters.get(self._node_in_scope(node_id), []))

    def loop_iteration(self, loop_id: str) -> int:
        if loop_id in self.loops:
            return self.loops[loop_id][0]
        if "@" not in loop_id:  # a loop nested in loops is stored as inner@outer=N: take the current passes' one
            prefix = loop_id + "@"
            for scoped_id, (iteration, _) in self.loops.items():
                if scoped_id.startswith(prefix) and self._in_current_scope(scoped_id):
                    return iteration
        return 0
