"""The rendered tree: plan nodes and the task descriptors they carry (one render's plan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..authoring.nodes import Task
from ..authoring.policies import Retry


@dataclass(eq=False, slots=True)
class TaskDescriptor:
    """Everything the engine needs to run one (node, iteration)."""

    node_id: str
    iteration: int
    ordinal: int  # document order
    task: Task
    model: type[BaseModel]
    table: str
    retries: int
    retry: Retry
    groups: tuple[PlanNode, ...] = ()  # enclosing Parallels with a limit, innermost last
    node: PlanNode | None = None
    worktree: tuple[str, str | None, str] | None = None  # (path, branch, base) of the innermost Worktree

    @property
    def key(self) -> tuple[str, int]:
        return (self.node_id, self.iteration)

    @property
    def mode(self) -> str:
        return self.task.mode


@dataclass(eq=False, slots=True)
class PlanNode:
    """A node of the plan tree. ``key`` is stable enough for frame deltas."""

    kind: str  # task | sequence | parallel | branch | loop | workflow
    key: str
    parent: PlanNode | None = None
    children: list[PlanNode] = field(default_factory=list)
    index: int = 0
    task: TaskDescriptor | None = None
    limit: int | None = None  # Parallel max_concurrency
    in_flight: int = 0
    # loops
    loop_id: str | None = None  # scoped loop id (the key of its stored state)
    iteration: int = 0
    until: bool = False
    max_iterations: int = 5
    on_max_reached: str = "return-last"
    continue_every: int | None = None
    done: bool = False
    # traversal state, rebuilt for every plan
    cursor: int = 0
    n_done: int = 0
    terminal: bool = False
    enabled: bool = False

    def describe(self) -> dict[str, Any]:
        """This node as frame data (no live objects)."""
        entry: dict[str, Any] = {"k": self.key, "t": self.kind, "p": self.parent.key if self.parent else None, "i": self.index}
        if self.task is not None:
            entry.update(id=self.task.node_id, it=self.task.iteration, mode=self.task.mode, out=self.task.table)
            if self.task.task.label:
                entry["label"] = self.task.task.label
        if self.kind == "loop":
            entry.update(id=self.loop_id, it=self.iteration, until=self.until, max=self.max_iterations, done=self.done)
        if self.limit is not None:
            entry["limit"] = self.limit
        return entry
