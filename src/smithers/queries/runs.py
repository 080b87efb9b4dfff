"""Read models: list runs, inspect a run or a node, read its events, decode its outputs.

Pure functions over a :class:`~smithers.storage.store.Store` returning plain JSON-ready data.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import UnknownNodeError, UnknownRunError, UserError
from ..states import ENDED_RUN_STATUSES, RunStatus
from ..storage.output_tables import KEY_COLUMNS
from ..storage.store import Store

RUN_STATUSES: tuple[RunStatus, ...] = tuple(RunStatus)  # what `ps --status` accepts
TERMINAL_STATUSES = ENDED_RUN_STATUSES  # a run in one of these is over: nothing more happens to it


# -- runs ------------------------------------------------------------------------------------


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run's row, or :class:`UnknownRunError` (exit 4) naming the id."""
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"no run {run_id!r} in {store.label}", hint="list runs with: smithers ps --all")
    return run


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``ps --json``; a fork also has ``forked_from`` and ``fork_frame``."""
    summary = {
        "run_id": run["run_id"],
        "workflow": run["workflow"],
        "status": run["status"],
        "created_at_ms": run["created_at_ms"],
        "updated_at_ms": run["updated_at_ms"],
        "triggered_by": run.get("triggered_by"),  # "cron:ID" for a run a schedule started, else None
    }
    if run.get("forked_from"):
        summary.update(forked_from=run["forked_from"], fork_frame=run.get("fork_frame"))
    return summary


def check_run_status(status: str | None) -> None:
    """An unknown run status (``ps --status runing``) is a usage error."""
    if status is not None and status not in RUN_STATUSES:
        raise UserError(f"unknown run status {status!r}", hint=f"use one of: {', '.join(RUN_STATUSES)}")


def list_runs(store: Store, *, status: str | None = None, limit: int | None = 20) -> list[dict[str, Any]]:
    """Runs, newest first (``limit=None`` for all). An unknown status is a usage error."""
    check_run_status(status)
    return [run_summary(r) for r in store.list_runs(status=status, limit=limit)]


def run_detail(store: Store, run_id: str) -> dict[str, Any]:
    """``inspect --json``: the run, its error, and every node iteration with attempts and output."""
    run = get_run(store, run_id)
    outputs = _OutputReader(store, run_id)
    attempts = store.attempts_by_node(run_id)
    nodes = []
    for row in store.nodes(run_id):
        key = (row["node_id"], row["iteration"])
        nodes.append({
            "id": row["node_id"],
            "iteration": row["iteration"],
            "status": row["status"],
            "attempts": [_attempt(a, traceback=False) for a in attempts.get(key, [])],
            "output": outputs.get(row["output_table"], *key),
        })
    return {
        "run_id": run["run_id"],
        "workflow": run["workflow"],
        "status": run["status"],
        "input": json.loads(run["input_json"]),
        "created_at_ms": run["created_at_ms"],
        "error": json_or_none(run["error_json"]),
        "triggered_by": run.get("triggered_by"),
        "nodes": nodes,
    }


def node_detail(store: Store, run_id: str, node_id: str) -> dict[str, Any]:
    """``node --json``: one node with all its iterations, each with full attempts (tracebacks
    included), its last error and its output."""
    get_run(store, run_id)
    rows = store.nodes(run_id, node_id)
    if not rows:
        known = store.node_ids(run_id)
        shown = ", ".join(known[:20]) + (", …" if len(known) > 20 else "")
        raise UnknownNodeError(
            f"run {run_id} has no node {node_id!r}",
            hint=f"nodes of this run: {shown}" if known else "this run has no nodes yet",
        )
    outputs = _OutputReader(store, run_id)
    by_iteration: dict[int, list[dict[str, Any]]] = {}
    for a in store.attempts(run_id, node_id):
        by_iteration.setdefault(a["iteration"], []).append(a)
    iterations = [
        {
            "iteration": row["iteration"],
            "status": row["status"],
            "error": json_or_none(row["error_json"]),
            "retry_at_ms": row["retry_at_ms"],
            "updated_at_ms": row["updated_at_ms"],
            "attempts": [_attempt(a, traceback=True) for a in by_iteration.get(row["iteration"], [])],
            "output": outputs.get(row["output_table"], node_id, row["iteration"]),
        }
        for row in rows
    ]
    first = rows[0]
    return {
        "run_id": run_id,
        "id": node_id,
        "kind": first["kind"],
        "output_table": first["output_table"],
        "label": first["label"],
        "iterations": iterations,
    }


def _attempt(row: dict[str, Any], *, traceback: bool) -> dict[str, Any]:
    error = json_or_none(row["error_json"])
    if not traceback and isinstance(error, dict):
        error = {k: v for k, v in error.items() if k != "traceback"}
    out = {
        "attempt": row["attempt"],
        "status": row["status"],
        "started_at_ms": row["started_at_ms"],
        "finished_at_ms": row["finished_at_ms"],
        "error": error,
    }
    if traceback:  # the full record for `node`
        out["heartbeat_at_ms"] = row["heartbeat_at_ms"]
        out["heartbeat"] = json_or_none(row["heartbeat_json"])
        out["meta"] = json_or_none(row["meta_json"])
        out["snapshot_before"] = row.get("snapshot_before")  # commit ids of the working tree (DESIGN 10.3), or None
        out["snapshot_after"] = row.get("snapshot_after")
    return out


def json_or_none(text: str | None) -> Any:
    """Decode a nullable JSON column."""
    return None if text is None else json.loads(text)


def decode_column(value: Any) -> Any:
    """Output columns hold nested values as JSON text: decode text that is a JSON object or array,
    keep everything else as stored.

    >>> decode_column('["a", 1]'), decode_column('plain'), decode_column(3)
    (['a', 1], 'plain', 3)
    """
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, (dict, list)):
            return decoded
    return value


def decode_typed(value: Any, kind: str | None) -> Any:
    """Decode a stored column by the kind recorded for it (falls back to :func:`decode_column`)."""
    if value is None:
        return None
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if kind == "bool":
        return bool(value)
    if kind in ("int", "real", "text"):
        return value
    return decode_column(value)


class _OutputReader:
    """Output rows of one run, one query per output table, as ``{field: value}`` dicts."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.tables: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
        self.columns = store.output_table_kinds()

    def get(self, table: str, node_id: str, iteration: int) -> dict[str, Any] | None:
        rows = self.tables.get(table)
        if rows is None:
            rows = self.tables[table] = self._load(table)
        return rows.get((node_id, iteration))

    def _load(self, table: str) -> dict[tuple[str, int], dict[str, Any]]:
        if table not in self.columns:  # never written: no task of that model finished anywhere
            return {}
        found = self.store.run_output_rows(table, self.run_id)
        if found is None:  # a table dropped by hand reads as "no output"
            return {}
        kinds = self.columns[table]
        if isinstance(kinds, list):  # written before kinds were recorded
            kinds = dict.fromkeys(kinds)
        columns = [(c, k) for c, k in kinds.items() if c not in KEY_COLUMNS]
        return {
            (row["node_id"], row["iteration"]): {c: decode_typed(row.get(c), k) for c, k in columns}
            for row in found
        }


# -- events ----------------------------------------------------------------------------------


def events(
    store: Store, run_id: str, *, type: str | None = None, node_id: str | None = None, after_seq: int = 0,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The run's events in order. ``type`` is an event type (``NodeFinished``) or a prefix
    (``Node``)."""
    get_run(store, run_id)
    return store.events(run_id, after_seq=after_seq, type_prefix=type, node_id=node_id, limit=limit)
