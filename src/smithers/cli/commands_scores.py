"""``smithers scores``: what the task scorers said about a run."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import DbOption, JsonOption, app


@app.command()
def scores(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    node: Annotated[str | None, typer.Option("--node", help="Only this node's scores.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """The scores a run's task scorers recorded: one line per node, iteration, attempt and scorer.

    A scorer that raised shows its error instead of a value. JSON: a list of
    {node_id, iteration, attempt, scorer, value, reason, error, latency_ms}.

    Example: smithers scores 20261203-101500-ab12cd --node analyze
    """
    from .. import ops
    from ..queries.scores import mean_scores, run_scores
    from .format import short, table

    store = ops.open_store(db)
    rows = run_scores(store, run_id, node_id=node)
    if json_out:
        typer.echo(json.dumps(rows))
        return 0
    if not rows:
        typer.echo(f"run {run_id} has no scores" + (f" for node {node}" if node else "") + " (yet)")
        return 0
    lines = table(
        ["NODE", "ITER", "ATTEMPT", "SCORER", "VALUE", "REASON / ERROR", "TOOK"],
        [
            [
                r["node_id"], r["iteration"], r["attempt"], r["scorer"], "error" if r["value"] is None else f"{r['value']:.3f}",
                short(r["error"] or r["reason"] or "", 70), f"{r['latency_ms']}ms",
            ]
            for r in rows
        ],
        right=["ITER", "ATTEMPT", "VALUE", "TOOK"],
    )
    typer.echo("\n".join(lines))
    means = mean_scores(rows)
    if means:
        typer.echo("\nmean: " + ", ".join(f"{name} {value:.3f}" for name, value in means.items()))
    return 0
