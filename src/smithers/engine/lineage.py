"""Runs that beget runs: continue-as-new (a fresh run carrying state) and subflows (child runs).

Continue-as-new is one transaction: the new run row (same workflow, input and source
fingerprint; ``continued_from`` and the carried state set), the rows the new run needs to
carry on (a loop's pass and its newest outputs), and the old run marked ``continued`` with a
``RunContinuedAsNew`` event naming the new run.
"""

from __future__ import annotations

from typing import Any

from ..states import EventType, NodeStatus, RunStatus
from ..storage.store import Store


def next_run_id(run_id: str) -> str:
    """``abc`` → ``abc~2`` → ``abc~3``: a chain keeps its origin readable."""
    base, _, number = run_id.rpartition("~")
    if base and number.isdigit():
        return f"{base}~{int(number) + 1}"
    return f"{run_id}~2"


def continue_as_new(
    store: Store,
    run_id: str,
    owner_id: str,
    *,
    carried: Any,
    reason: str,
    loops: dict[str, int] | None = None,
    carry_nodes: list[tuple[str, int, str]] | None = None,  # (node id, iteration, output table) to copy over
    node: tuple[str, int] | None = None,
) -> str:
    new_id = next_run_id(run_id)
    while store.get_run(new_id) is not None:
        new_id = next_run_id(new_id)
    with store.tx(run_id, owner_id=owner_id) as tx:
        old = tx.run_row()
        assert old is not None  # fenced above: the run exists and is ours
        tx.create_run(
            run_id=new_id, workflow=old["workflow"], workflow_spec=old["workflow_spec"], input_json=old["input_json"],
            source_json=old["source_json"], cwd=old["cwd"], max_concurrency=old["max_concurrency"],
            parent_run_id=old["parent_run_id"], continued_from=run_id, carried=carried,
        )
        for loop_id, iteration in (loops or {}).items():
            tx.carry_loop(new_id, loop_id, iteration)
        for node_id, iteration, table in carry_nodes or []:
            tx.copy_output(new_id, table, node_id, iteration)
        if node is not None:
            tx.set_node(node[0], node[1], NodeStatus.FINISHED)
        tx.set_run(RunStatus.CONTINUED, finished=True)
        tx.event(EventType.RUN_CONTINUED_AS_NEW, next_run_id=new_id, reason=reason)
        tx.event(EventType.RUN_STARTED, run_id=new_id, resumed=False, continued_from=run_id)
    return new_id


def resolve_subflow_workflow(spec: Any, base_dir: str) -> tuple[Any, str]:
    """(Workflow, spec string to store) for a Subflow's ``workflow=`` (an object or a path)."""
    import inspect
    from pathlib import Path

    from ..authoring.loader import load_workflow, split_spec
    from ..authoring.workflow import Workflow

    if isinstance(spec, Workflow):
        source = inspect.getsourcefile(spec.fn)
        return spec, f"{source}:{spec.name}" if source else spec.name
    if isinstance(spec, str):
        path, name = split_spec(spec)
        full = (Path(base_dir) / path).resolve()
        loaded = load_workflow(f"{full}:{name}" if name else str(full))
        return loaded.workflow, loaded.spec
    raise TypeError(f"Subflow workflow= must be a @workflow or a path, got {type(spec).__name__}")
