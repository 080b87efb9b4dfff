"""Commands that answer waiting runs: approve, deny, signal, human answer, inbox."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import DbOption, JsonOption, app
from .format import table

if TYPE_CHECKING:
    from ..storage.store import Store

human_app = typer.Typer(help="Human tasks: answer what a run asked a person for.", no_args_is_help=True)
app.add_typer(human_app, name="human")

NodeOpt = Annotated[str | None, typer.Option("--node", help="The waiting node (needed when several wait).")]
IterOpt = Annotated[int | None, typer.Option("--iteration", help="The node's iteration, inside loops.")]
NoteOpt = Annotated[str | None, typer.Option("--note", help="A note recorded with the decision.")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who decided (recorded).")]


def _echo(result: dict[str, Any], json_out: bool, line: str) -> None:
    typer.echo(json.dumps(result) if json_out else line)


def _then(store: Store, run_id: str) -> str:
    """What continues the run now: its live owner (``up --wait``), or ``smithers resume``."""
    from ..storage.lease import owner_alive

    run = store.get_run(run_id)
    if run is not None and owner_alive(run):
        return f"its owner (pid {run['owner_pid']}) continues it now"
    return f"continue it with: smithers resume {run_id}"


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="The waiting run.")],
    node: NodeOpt = None,
    iteration: IterOpt = None,
    note: NoteOpt = None,
    by: ByOpt = None,
    select: Annotated[str | None, typer.Option("--select", help="For mode='select': the chosen option key.")] = None,
    rank: Annotated[str | None, typer.Option("--rank", help="For mode='rank': option keys in order, comma-separated.")] = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Approve what a run waits for. Recorded at once; a waiting owner continues, else `smithers resume`.

    Example: smithers approve 20261203-101500-ab12cd --node deploy --note "looks good" --by alice
    """
    from .. import ops
    from ..decisions import decide

    store = ops.open_store(db)
    ranked = [k.strip() for k in rank.split(",") if k.strip()] if rank else None
    result = decide(store, run_id, approved=True, node_id=node, iteration=iteration, note=note, by=by, select=select, rank=ranked)
    _echo(result, json_out, f"approved {result['node_id']}[{result['iteration']}] in run {run_id}; {_then(store, run_id)}")
    return 0


@app.command()
def deny(
    run_id: Annotated[str, typer.Argument(help="The waiting run.")],
    node: NodeOpt = None,
    iteration: IterOpt = None,
    note: NoteOpt = None,
    by: ByOpt = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Deny what a run waits for; the node's on_deny policy decides what happens next.

    Example: smithers deny 20261203-101500-ab12cd --node deploy --note "not on a Friday"
    """
    from .. import ops
    from ..decisions import decide

    store = ops.open_store(db)
    result = decide(store, run_id, approved=False, node_id=node, iteration=iteration, note=note, by=by)
    _echo(result, json_out, f"denied {result['node_id']}[{result['iteration']}] in run {run_id}; {_then(store, run_id)}")
    return 0


@app.command()
def signal(
    run_id: Annotated[str, typer.Argument(help="The run to signal.")],
    name: Annotated[str, typer.Argument(help="The signal's name (the Signal node's id).")],
    data: Annotated[str, typer.Option("--data", help="The payload: a JSON value, or @file.json.")] = "{}",
    correlation: Annotated[str | None, typer.Option("--correlation", help="Only a wait with this correlation id takes it.")] = None,
    by: ByOpt = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Send a signal to a run. Kept until a matching Signal node consumes it; duplicates count once.

    Example: smithers signal 20261203-101500-ab12cd deploy-done --data '{"version": "1.2.3"}'
    """
    from pathlib import Path

    from .. import ops
    from ..decisions import parse_json, send_signal

    text = Path(data[1:]).read_text(encoding="utf-8") if data.startswith("@") else data
    store = ops.open_store(db)
    result = send_signal(store, run_id, name, parse_json(text, "--data"), correlation_id=correlation, by=by)
    delivered = "was already delivered" if result["duplicate"] else "delivered"
    line = f"signal {name} {delivered} to run {run_id} (#{result['seq']}); {_then(store, run_id)}"
    _echo(result, json_out, line)
    return 0


@human_app.command("answer")
def human_answer(
    request_id: Annotated[str, typer.Argument(help="The request id (see `smithers inbox`).")],
    value: Annotated[str, typer.Option("--value", help="The answer: JSON matching the task's output model, or @file.json.")],
    by: ByOpt = None,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Answer a human task. An answer that does not validate is refused (exit 4) and the request stays open.

    Example: smithers human answer hr-1a2b3c4d --value '{"priority": "high"}'
    """
    from pathlib import Path

    from .. import ops
    from ..decisions import answer_human, parse_json

    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    store = ops.open_store(db)
    result = answer_human(store, request_id, parse_json(text, "--value"), by=by)
    _echo(result, json_out, f"answered {request_id} (run {result['run_id']}, node {result['node_id']}); {_then(store, result['run_id'])}")
    return 0


@app.command()
def inbox(db: DbOption = None, json_out: JsonOption = False) -> int:
    """Every pending approval, human task and awaited signal across runs, with the command that answers it.

    Example: smithers inbox --json
    """
    from .. import ops
    from ..decisions import inbox as list_inbox

    items = list_inbox(ops.open_store(db))
    if json_out:
        typer.echo(json.dumps(items, indent=2))
        return 0
    if not items:
        typer.echo("nothing is waiting for you")
        return 0
    rows = [
        [item["kind"], item["run_id"], f"{item['node_id']}[{item['iteration']}]", item.get("title") or item.get("signal") or "",
         "\n".join(item["commands"])]
        for item in items
    ]
    for line in table(["KIND", "RUN ID", "NODE", "WAITING FOR", "ANSWER WITH"], rows):
        typer.echo(line)
    return 0
