"""Subflows: a Subflow node runs another workflow as a child run inside the parent's event loop.

The child is a run of its own (id ``PARENT.NODE.ITERATION``, ``parent_run_id`` set): created
the first time, resumed on every later attempt. What the child run ends with decides the
parent node's fate:

- finished: its result output, validated against the Subflow's model, is the node's row;
- waiting (an approval, signal or timer in the child): :class:`ChildRunWaiting` — the parent
  node waits with the child's waiting status, and so does the parent run; the next resume of
  the parent (or ``smithers supervise``) resumes the child through the parent;
- anything else: the attempt fails, naming the child.

The run loop builds the child's :class:`~smithers.engine.loop.RunLoop` itself; this module
only prepares and reads the child run, so it needs nothing from the loop (no import circle).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..authoring.context import Ctx
from ..authoring.loader import source_fingerprint, split_spec
from ..authoring.workflow import Workflow
from ..errors import RunError
from ..states import WAITING_RUN_STATUSES, EventType, RunStatus
from ..storage.lease import Owner
from ..storage.store import Store
from .lineage import resolve_subflow_workflow
from .outputs import validate_output
from .recovery import recover
from .render import render
from .state import RunState
from .tree import TaskDescriptor


@dataclass(frozen=True, slots=True)
class ChildRunWaiting:
    """A subflow attempt's result when its child run stopped to wait: the parent waits too."""

    child_run_id: str
    status: RunStatus
    wake_at_ms: int | None  # the child's next due time (a timer or a signal timeout), if any


@dataclass(slots=True)
class ChildRun:
    """A child run, claimed by this process and ready to be driven."""

    run_id: str
    workflow: Workflow
    input_value: Any
    owner: Owner
    state: RunState
    cwd: str
    result_node: str | None


def child_run_id(parent_run_id: str, desc: TaskDescriptor) -> str:
    return f"{parent_run_id}.{desc.node_id}.{desc.iteration}"


def open_child(store: Store, parent_run_id: str, desc: TaskDescriptor, base_dir: str) -> ChildRun:
    """Create the child run of a Subflow node (first attempt) or claim it again (later ones)."""
    meta = desc.task.meta or {}
    run_id = child_run_id(parent_run_id, desc)
    workflow, spec = resolve_subflow_workflow(meta["workflow"], base_dir)
    path = Path(split_spec(spec)[0])
    input_value, input_json = workflow.validate_input(meta.get("input") or {})
    owner = Owner.this_process()
    if store.get_run(run_id) is None:
        _check_first_render(workflow, input_value, store)
        with store.tx(run_id) as tx:
            tx.create_run(
                workflow=workflow.name, workflow_spec=spec, input_json=json.dumps(input_json),
                source_json=json.dumps(source_fingerprint(path) if path.is_file() else {}), cwd=os.getcwd(),
                max_concurrency=workflow.max_concurrency, owner=owner, parent_run_id=parent_run_id,
            )
            tx.event(EventType.RUN_STARTED, workflow=workflow.name, resumed=False, parent_run_id=parent_run_id, owner_pid=owner.pid)
    recover(store, run_id, owner)
    return ChildRun(
        run_id=run_id, workflow=workflow, input_value=input_value, owner=owner, state=RunState(store, run_id, ()),
        cwd=str(workflow.working_dir(path)), result_node=meta.get("result"),
    )


def child_outcome(store: Store, desc: TaskDescriptor, child: ChildRun, status: str, last_task: str | None) -> BaseModel | ChildRunWaiting:
    """What the Subflow attempt returns once the child's loop stopped (see the module doc)."""
    if status in WAITING_RUN_STATUSES:
        row = store.get_run(child.run_id) or {}
        return ChildRunWaiting(child.run_id, RunStatus(status), row.get("wake_at_ms"))
    if status != RunStatus.FINISHED:
        raise RunError(
            f"subflow {desc.node_id!r}: child run {child.run_id} ended {status}",
            hint=f"see it with: smithers why {child.run_id}", details={"child_run_id": child.run_id, "child_status": status},
        )
    node_id = child.result_node or last_task
    value = child.state.output(node_id, None) if node_id else None
    if value is None:
        raise RunError(f"subflow {desc.node_id!r}: child run {child.run_id} finished without a result", retryable=False)
    return validate_output(desc.model, value.model_dump(mode="json"), node_id=desc.node_id, retryable=False)


def _check_first_render(workflow: Workflow, input_value: Any, store: Store) -> None:
    """Render the child once against an empty run so its render errors fail the attempt before a run exists."""
    state = RunState(store, "\x00no-run", ())
    render(workflow, Ctx(input=input_value, run_id="(not yet created)", reader=state), state.loop_state)
