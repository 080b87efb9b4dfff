"""② Plan: which tasks are ready, given the rendered tree and the node states.

The plan is built once per render in O(tasks) and then updated incrementally: when a task
becomes terminal, only its ancestors are visited (a Sequence moves its cursor, a Parallel
counts), so the per-task cost does not grow with the run's length.

Traversal rules: a Sequence (and a Loop's body) enables child n once child n-1 is terminal;
Parallel and Branch enable all children and are terminal when all are; a Loop is terminal only
once it is done, and reports a finished pass through ``ready_loops``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from .tree import PlanNode, TaskDescriptor

TERMINAL = frozenset({"finished", "skipped"})
RUNNABLE = frozenset({"pending", "cancelled"})
WAITING = frozenset({"waiting-approval", "waiting-event", "waiting-timer"})

StatusOf = Callable[[tuple[str, int]], str]


class Plan:
    """The live plan of one render. ``ready`` is a heap in document order."""

    def __init__(self, root: PlanNode, status_of: StatusOf) -> None:
        self.root = root
        self.status_of = status_of
        self.ready: list[tuple[int, TaskDescriptor]] = []
        self.queued: set[tuple[str, int]] = set()
        self.ready_loops: list[PlanNode] = []
        self.blocked_failures: list[TaskDescriptor] = []
        self.waiting: list[TaskDescriptor] = []  # tasks already waiting for a person, a signal or a clock
        self._enable(root)

    # -- traversal ---------------------------------------------------------------------

    def is_terminal_status(self, desc: TaskDescriptor, status: str) -> bool:
        """Terminal for traversal: done, or failed with continue_on_fail, or an async wait."""
        return (
            status in TERMINAL
            or (status == "failed" and desc.task.continue_on_fail)
            or (status in WAITING and desc.task.wait_async)
        )

    def _enable(self, node: PlanNode) -> bool:
        """Enable ``node``; returns whether it is already terminal."""
        node.enabled = True
        kind = node.kind
        if kind == "task":
            desc = node.task
            assert desc is not None
            status = self.status_of(desc.key)
            if status in WAITING:
                self.waiting.append(desc)
            if self.is_terminal_status(desc, status):
                node.terminal = True
                return True
            if status in RUNNABLE:
                self.push(desc)
            elif status == "failed":
                self.blocked_failures.append(desc)
            return False
        if kind == "loop":
            if node.done:
                node.terminal = True
                return True
            if node.until or self._enable_sequence(node):
                self.ready_loops.append(node)
            return False
        if kind in ("sequence", "workflow", "approval", "worktree"):
            node.terminal = self._enable_sequence(node)
            return node.terminal
        # parallel, branch: all children at once
        node.n_done = sum(1 for child in node.children if self._enable(child))
        node.terminal = node.n_done == len(node.children)
        return node.terminal

    def _enable_sequence(self, node: PlanNode) -> bool:
        children = node.children
        while node.cursor < len(children):
            if not self._enable(children[node.cursor]):
                return False
            node.cursor += 1
        return True

    def task_terminal(self, desc: TaskDescriptor) -> None:
        """A task just became terminal: move its ancestors on, enabling what that unblocks."""
        node = desc.node
        assert node is not None
        if node.terminal or not node.enabled:
            return
        node.terminal = True
        parent = node.parent
        while parent is not None:
            kind = parent.kind
            if kind in ("sequence", "workflow", "loop", "approval", "worktree"):
                if parent.cursor >= len(parent.children) or parent.children[parent.cursor] is not node:
                    return
                parent.cursor += 1
                if not self._enable_sequence(parent):
                    return
                if kind == "loop":
                    self.ready_loops.append(parent)
                    return
            else:
                parent.n_done += 1
                if parent.n_done < len(parent.children):
                    return
            parent.terminal = True
            node, parent = parent, parent.parent

    # -- the ready heap ------------------------------------------------------------------

    def push(self, desc: TaskDescriptor) -> None:
        if desc.key not in self.queued:
            self.queued.add(desc.key)
            heapq.heappush(self.ready, (desc.ordinal, desc))

    def pop(self) -> TaskDescriptor:
        _, desc = heapq.heappop(self.ready)
        self.queued.discard(desc.key)
        return desc

    @property
    def finished(self) -> bool:
        return self.root.terminal
