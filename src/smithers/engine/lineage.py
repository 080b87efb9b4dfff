"""Runs that beget runs: continue-as-new (a fresh run carrying state) and subflows (child runs).

Continue-as-new is one transaction: the new run row (same workflow, input and source
fingerprint; ``continued_from`` and the carried state set), the rows the new run needs to
carry on (a loop's pass and its newest outputs), and the old run marked ``continued`` with a
``RunContinuedAsNew`` event naming the new run.
"""

from __future__ import annotations

import json
from typing import Any

from ..storage.output_tables import KEY_COLUMNS
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
        tx.execute(
            "INSERT INTO _smithers_runs (run_id, workflow, workflow_spec, status, input_json, source_json, cwd, max_concurrency, "
            "created_at_ms, updated_at_ms, parent_run_id, continued_from, carried_json) "
            "SELECT ?, workflow, workflow_spec, 'running', input_json, source_json, cwd, max_concurrency, ?, ?, parent_run_id, ?, ? "
            "FROM _smithers_runs WHERE run_id = ?",
            (new_id, tx.ts, tx.ts, run_id, json.dumps(carried), run_id),
        )
        for loop_id, iteration in (loops or {}).items():
            tx.execute("INSERT INTO _smithers_loops (run_id, loop_id, iteration, done) VALUES (?, ?, ?, 0)", (new_id, loop_id, iteration))
        for node_id, iteration, table in carry_nodes or []:
            columns = [r[1] for r in tx.execute(f'PRAGMA table_info("{table}")') if r[1] not in KEY_COLUMNS]
            quoted = ", ".join(f'"{c}"' for c in columns)
            select = f", {quoted}" if quoted else ""
            tx.execute(
                f'INSERT INTO "{table}" (run_id, node_id, iteration{select}) SELECT ?, node_id, iteration{select} '
                f'FROM "{table}" WHERE run_id = ? AND node_id = ? AND iteration = ?',
                (new_id, run_id, node_id, iteration),
            )
            tx.execute(
                "INSERT INTO _smithers_nodes (run_id, node_id, iteration, status, kind, output_table, label, attempts, updated_at_ms) "
                "SELECT ?, node_id, iteration, 'finished', kind, output_table, label, 0, ? FROM _smithers_nodes "
                "WHERE run_id = ? AND node_id = ? AND iteration = ?",
                (new_id, tx.ts, run_id, node_id, iteration),
            )
        if node is not None:
            tx.set_node(node[0], node[1], "finished")
        tx.set_run("continued", finished=True)
        tx.event("RunContinuedAsNew", next_run_id=new_id, reason=reason)
        tx.event("RunStarted", run_id=new_id, resumed=False, continued_from=run_id)
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
