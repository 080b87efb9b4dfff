"""Read model of scores: what ``smithers scores``, the HTTP API and ``smithers eval`` show.

>>> run_scores(store, "20261203-101500-ab12cd", node_id="analyze")  # doctest: +SKIP
[{'node_id': 'analyze', 'iteration': 0, 'attempt': 1, 'scorer': 'latency', 'value': 1.0, ...}]
"""

from __future__ import annotations

from typing import Any

from ..errors import UnknownNodeError
from ..storage.store import Store
from .runs import get_run


def score_row(row: dict[str, Any]) -> dict[str, Any]:
    """One stored score as JSON: ``{node_id, iteration, attempt, scorer, value, reason, error, latency_ms}``
    (``error``: ``"Type: message"`` when the scorer raised, else None)."""
    error = row.get("error")
    return {
        "node_id": row["node_id"], "iteration": row["iteration"], "attempt": row["attempt"], "scorer": row["scorer"],
        "value": row["value"], "reason": row["reason"],
        "error": f"{error.get('type')}: {error.get('message')}" if isinstance(error, dict) else None,
        "latency_ms": row["latency_ms"],
    }


def run_scores(store: Store, run_id: str, *, node_id: str | None = None) -> list[dict[str, Any]]:
    """Every score of a run (or of one node), by node, iteration, attempt and scorer. An unknown
    run or node is a usage error naming it."""
    get_run(store, run_id)
    if node_id is not None and node_id not in store.node_ids(run_id):
        known = store.node_ids(run_id)
        hint = f"nodes of this run: {', '.join(known[:20])}" if known else "this run has no nodes yet"
        raise UnknownNodeError(f"run {run_id} has no node {node_id!r}", hint=hint)
    return [score_row(row) for row in store.scores(run_id, node_id)]


def mean_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The mean value of each scorer over ``rows`` (scores that errored are left out)."""
    values: dict[str, list[float]] = {}
    for row in rows:
        if row.get("value") is not None:
            values.setdefault(row["scorer"], []).append(float(row["value"]))
    return {name: sum(vs) / len(vs) for name, vs in sorted(values.items())}


__all__ = ["mean_scores", "run_scores", "score_row"]
