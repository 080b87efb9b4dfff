"""① Render: call the workflow with ``ctx`` and turn the returned tree into plan nodes.

Rendering is pure. Validation that needs the whole tree (duplicate ids, two models on one
table name) happens here and raises :class:`RenderError` naming the id.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from pydantic import BaseModel

from ..authoring.context import Ctx
from ..authoring.nodes import Branch, Loop, Node, Parallel, Sequence, Task, flatten
from ..authoring.policies import DEFAULT_AGENT_RETRIES, DEFAULT_RETRY
from ..authoring.structure import Worktree
from ..authoring.workflow import Workflow
from ..errors import RenderError, SmithersError
from ..storage.output_tables import check_unique_models, table_name
from .tree import PlanNode, TaskDescriptor

if TYPE_CHECKING:
    from ..authoring.human import Approval

LoopState = Callable[[str], tuple[int, bool]]  # scoped loop id -> (iteration, done)


@dataclass
class Rendered:
    root: PlanNode
    tasks: list[TaskDescriptor]
    loops: list[PlanNode]
    reads: set[str]
    models: dict[str, type[BaseModel]]


def call_workflow(workflow: Workflow, ctx: Ctx) -> Any:
    try:
        return workflow(ctx)
    except SmithersError:
        raise
    except Exception as err:  # the user's render raised: report it with where it happened
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=-4))
        raise RenderError(
            f"workflow {workflow.name!r} raised {type(err).__name__} while rendering: {err}",
            hint="a render must only read ctx and build nodes; see the traceback",
            details={"traceback": tb},
        ) from None


def render(workflow: Workflow, ctx: Ctx, loop_state: LoopState) -> Rendered:
    """Render once and build the plan tree (document order, loop scopes, validation)."""
    result = call_workflow(workflow, ctx)
    top = flatten([result], f"workflow {workflow.name!r}")
    builder = _Builder(loop_state)
    root = PlanNode(kind="workflow", key="workflow")
    for child in top:
        builder.add(child, root, scopes=(), groups=())
    return Rendered(root=root, tasks=builder.tasks, loops=builder.loops, reads=set(ctx.reads), models=builder.models)


def _is_gate(node: Node) -> TypeGuard[Approval]:
    """Whether ``node`` is an Approval that gates children. Only a wait node can be one, so a
    run without wait nodes does not import the wait models (start-up)."""
    if not isinstance(node, Task) or node.wait is None:
        return False
    from ..authoring.human import Approval

    return isinstance(node, Approval) and bool(node.children)


class _Builder:
    def __init__(self, loop_state: LoopState) -> None:
        self.loop_state = loop_state
        self.tasks: list[TaskDescriptor] = []
        self.loops: list[PlanNode] = []
        self.models: dict[str, type[BaseModel]] = {}
        self.ids: set[str] = set()
        self.loop_ids: set[str] = set()
        self.count = 0
        self.worktree: tuple[str, str | None, str] | None = None

    def add(self, node: Node, parent: PlanNode, scopes: tuple[tuple[str, int], ...], groups: tuple[PlanNode, ...]) -> None:
        index = len(parent.children)
        if _is_gate(node):  # an Approval with children: the decision, then what it guards
            gate = PlanNode(kind="approval", key=f"{parent.key}/{index}", parent=parent, index=index)
            parent.children.append(gate)
            gate.children.append(self._task(node, gate, 0, scopes, groups))
            for child in node.children:
                self.add(child, gate, scopes, groups)
            return
        if isinstance(node, Task):
            plan_node = self._task(node, parent, index, scopes, groups)
        elif isinstance(node, Loop):
            plan_node = self._loop(node, parent, index, scopes, groups)
        elif isinstance(node, Worktree):
            plan_node = PlanNode(kind="worktree", key=f"{parent.key}/{index}", parent=parent, index=index)
            parent.children.append(plan_node)
            previous, self.worktree = self.worktree, (node.path, node.branch, node.base)
            try:
                for child in node.children:
                    self.add(child, plan_node, scopes, groups)
            finally:
                self.worktree = previous
            return
        elif isinstance(node, (Sequence, Parallel, Branch)):
            plan_node = PlanNode(kind=node.kind, key=f"{parent.key}/{index}", parent=parent, index=index)
            if isinstance(node, Parallel) and node.max_concurrency is not None:
                plan_node.limit = node.max_concurrency
                groups = (*groups, plan_node)
            parent.children.append(plan_node)
            for child in node.children:
                self.add(child, plan_node, scopes, groups)
            return
        else:
            raise RenderError(f"unknown node type {type(node).__name__} in the workflow tree")
        parent.children.append(plan_node)

    def _task(
        self, task: Task, parent: PlanNode, index: int, scopes: tuple[tuple[str, int], ...], groups: tuple[PlanNode, ...],
    ) -> PlanNode:
        node_id = task.id
        if len(scopes) >= 2:
            node_id += "@" + ",".join(f"{lid}={it}" for lid, it in scopes[:-1])
        if node_id in self.ids or node_id in self.loop_ids:
            raise RenderError(f"duplicate id {node_id!r}: two nodes in the tree share it", hint="ids must be unique; derive them from data")
        self.ids.add(node_id)
        check_unique_models(self.models, task.output, node_id)
        retries = task.retries
        if retries is None:
            retries = DEFAULT_AGENT_RETRIES if task.mode == "agent" else 0
        desc = TaskDescriptor(
            node_id=node_id,
            iteration=scopes[-1][1] if scopes else 0,
            ordinal=self.count,
            task=task,
            model=task.output,
            table=table_name(task.output),
            retries=retries,
            retry=task.retry or DEFAULT_RETRY,
            groups=groups,
            worktree=self.worktree,
        )
        self.count += 1
        plan_node = PlanNode(kind="task", key=f"task:{node_id}", parent=parent, index=index, task=desc)
        desc.node = plan_node
        self.tasks.append(desc)
        return plan_node

    def _loop(
        self, loop: Loop, parent: PlanNode, index: int, scopes: tuple[tuple[str, int], ...], groups: tuple[PlanNode, ...],
    ) -> PlanNode:
        scoped = loop.id
        if scopes:
            scoped += "@" + ",".join(f"{lid}={it}" for lid, it in scopes)
        if scoped in self.loop_ids or scoped in self.ids:
            raise RenderError(f"duplicate id {scoped!r}: two nodes in the tree share it", hint="ids must be unique")
        self.loop_ids.add(scoped)
        iteration, done = self.loop_state(scoped)
        plan_node = PlanNode(
            kind="loop", key=f"loop:{scoped}", parent=parent, index=index, loop_id=scoped, iteration=iteration,
            until=loop.until, max_iterations=loop.max_iterations, on_max_reached=loop.on_max_reached, done=done,
            continue_every=loop.continue_as_new_every,
        )
        self.loops.append(plan_node)
        inner = (*scopes, (loop.id, iteration))
        for child in loop.children:
            self.add(child, plan_node, inner, groups)
        return plan_node
