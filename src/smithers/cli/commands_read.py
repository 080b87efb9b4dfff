"""Commands that read runs: ps, inspect, node, events, logs, why, graph.

They never change a run and never create a database: pointed at a folder without one, ``ps``
lists nothing and the others report the unknown run (exit 4). The verbs live in
:mod:`smithers.queries`; this module only prints.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..states import EventType, RunStatus
from .app import EXIT_FAILED, DbOption, JsonOption, app
from .format import clock, error_text, short, status_text, table, took, when

if TYPE_CHECKING:
    from ..storage.store import Store

RunArg = Annotated[str, typer.Argument(help="The run id (see: smithers ps).", show_default=False)]
EVENT_FAMILIES = sorted({re.findall(r"[A-Z][a-z]+", kind)[0] for kind in EventType})  # Run, Node, Agent, …


class GraphFormat(StrEnum):
    TREE = "tree"
    MERMAID = "mermaid"
    JSON = "json"

FOLLOW_POLL_S = 0.2
DEAD_OWNER_POLLS = 5  # `logs -f` gives up after the owner has been gone this many polls in a row


# -- shared helpers --------------------------------------------------------------------------


def _db_label(db: str | None) -> str:
    from ..storage.target import db_label, db_target

    return db_label(db_target(db))


def _open(db: str | None) -> Store | None:
    """The store, or None when there is no database file (a read never creates one)."""
    from ..storage.target import db_target, open_existing

    return open_existing(db_target(db))


def _open_for_run(db: str | None, run_id: str) -> Store:
    store = _open(db)
    if store is None:
        from ..errors import UnknownRunError

        raise UnknownRunError(
            f"no run {run_id!r}: there is no database at {_db_label(db)}",
            hint="run smithers from your project folder, or pass --db / set SMITHERS_DB",
        )
    return store


def _emit(text: str) -> None:
    """Write to stdout; a closed pipe (``smithers events X | head``) ends output quietly."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def _lines(lines: list[str]) -> None:
    if lines:
        _emit("".join(line + "\n" for line in lines))


def _json(value: Any) -> None:
    _emit(json.dumps(value, indent=2, default=str) + "\n")


# -- ps --------------------------------------------------------------------------------------


@app.command()
def ps(
    status: Annotated[RunStatus | None, typer.Option("--status", help="Only runs with this status.", show_default=False)] = None,
    all_runs: Annotated[bool, typer.Option("--all", "-a", help="All runs, not only the 20 newest.")] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """List runs, newest first (the 20 newest unless --all).

    Example: smithers ps --status failed
    """
    from .. import queries as verbs

    store = _open(db)
    if store is None:
        runs: list[dict[str, Any]] = []
        more = False
    else:
        runs = verbs.list_runs(store, status=None if status is None else status.value, limit=None if all_runs else 21)
        more = not all_runs and len(runs) > 20
        runs = runs[:20] if more else runs
    if json_out:
        _json(runs)
        return 0
    if not runs:
        where = f"with status {status.value} " if status else ""
        _lines([f"no runs {where}in {_db_label(db)}", "start one with: smithers up WORKFLOW.py"])
        return 0
    rows = [
        [r["run_id"], r["workflow"], status_text(r["status"]), when(r["created_at_ms"]), took(r["created_at_ms"], r["updated_at_ms"])]
        for r in runs
    ]
    headers = ["RUN ID", "WORKFLOW", "STATUS", "CREATED", "ELAPSED"]
    if any(r["triggered_by"] for r in runs):  # the column shows once a schedule started a listed run
        headers.append("TRIGGER")
        rows = [[*row, r["triggered_by"] or ""] for row, r in zip(rows, runs, strict=True)]
    if any("forked_from" in r for r in runs):  # lineage: which run (and frame) a fork came from
        headers.append("FORKED FROM")
        for row, r in zip(rows, runs, strict=True):
            row.append(f"{r['forked_from']}@{r['fork_frame']}" if "forked_from" in r else "")
    lines = table(headers, rows, right=["ELAPSED"])
    if more:
        lines.append("(the 20 newest; --all shows every run)")
    _lines(lines)
    return 0


# -- inspect ---------------------------------------------------------------------------------


@app.command("inspect")
def inspect_run(run_id: RunArg, db: DbOption = None, json_out: JsonOption = False) -> int:
    """Show a run: its status, input, error, and every node with its attempts and output.

    Example: smithers inspect 20261203-101500-ab12cd --json
    """
    from .. import queries as verbs

    detail = verbs.run_detail(_open_for_run(db, run_id), run_id)
    if json_out:
        _json(detail)
        return 0
    lines = [
        f"run {detail['run_id']}",
        f"  workflow  {detail['workflow']}",
        f"  status    {detail['status']}",
        f"  created   {when(detail['created_at_ms'])}",
        f"  input     {short(detail['input'], 100)}",
    ]
    if detail["triggered_by"]:
        lines.insert(3, f"  trigger   {detail['triggered_by']}")
    if detail["error"]:
        lines.append(f"  error     {error_text(detail['error'])}")
    if detail["nodes"]:
        rows = []
        for node in detail["nodes"]:
            last = node["attempts"][-1] if node["attempts"] else None
            if node["output"] is not None:
                shown = short(node["output"])
            elif last and last["error"]:
                shown = short(error_text(last["error"]))
            else:
                shown = ""
            spent = took(last["started_at_ms"], last["finished_at_ms"]) if last else ""
            rows.append([node["id"], str(node["iteration"]), status_text(node["status"]), str(len(node["attempts"])), spent, shown])
        lines.append("")
        lines.extend(table(["NODE", "ITER", "STATUS", "ATTEMPTS", "TOOK", "OUTPUT / ERROR"], rows, right=["ITER", "ATTEMPTS", "TOOK"]))
    else:
        lines.append("  (no nodes yet)")
    _lines(lines)
    return 0


# -- node ------------------------------------------------------------------------------------


@app.command()
def node(
    run_id: RunArg,
    node_id: Annotated[str, typer.Argument(help="The node (task) id.", show_default=False)],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Show one node of a run: every iteration, every attempt with its error and traceback, and the output.

    Example: smithers node 20261203-101500-ab12cd review
    """
    from .. import queries as verbs

    detail = verbs.node_detail(_open_for_run(db, run_id), run_id, node_id)
    if json_out:
        _json(detail)
        return 0
    label = f" ({detail['label']})" if detail["label"] else ""
    lines = [f"node {detail['id']}{label} in run {run_id}: {detail['kind']} task → table {detail['output_table']}"]
    for it in detail["iterations"]:
        count = len(it["attempts"])
        lines.append(f"iteration {it['iteration']}: {it['status']} ({count} attempt{'s' if count != 1 else ''})")
        if it["retry_at_ms"]:
            lines.append(f"  next retry at {when(it['retry_at_ms'])}")
        for a in it["attempts"]:
            spent = took(a["started_at_ms"], a["finished_at_ms"])
            lines.append(
                f"  attempt {a['attempt']}  {a['status']:<9}  {clock(a['started_at_ms'])} → {clock(a['finished_at_ms'])}"
                + (f"  ({spent})" if spent else "")
            )
            error = a["error"]
            if error:
                lines.append(f"    error: {error_text(error)}")
                tb = error.get("traceback") if isinstance(error, dict) else None
                if tb:
                    lines.extend("      " + line for line in tb.rstrip().splitlines())
        if it["output"] is not None:
            lines.append("  output:")
            lines.extend("    " + line for line in json.dumps(it["output"], indent=2, default=str, ensure_ascii=False).splitlines())
        else:
            lines.append("  output: none")
    _lines(lines)
    return 0


# -- events and logs -------------------------------------------------------------------------


@app.command()
def events(
    run_id: RunArg,
    type_: Annotated[
        str | None,
        typer.Option(
            "--type", "-t", metavar="TYPE", show_default=False,
            help=f"An event type (NodeFinished) or a prefix of one: {', '.join(EVENT_FAMILIES)}.",
        ),
    ] = None,
    node_id: Annotated[str | None, typer.Option("--node", "-n", help="Only events of this node.", show_default=False)] = None,
    after: Annotated[int, typer.Option("--after", help="Only events with seq greater than this.")] = 0,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Print a run's events in order; --json prints NDJSON (one event object per line).

    Example: smithers events 20261203-101500-ab12cd --type Node --json
    """
    from .. import queries as verbs
    from .views import describe_event

    if type_ is not None and not any(kind.startswith(type_) for kind in EventType):
        from ..errors import UserError

        raise UserError(
            f"--type {type_!r} is neither an event type nor the start of one",
            hint=f"use a type such as NodeFinished, or a prefix: {', '.join(EVENT_FAMILIES)} (see docs/cli.md#events)",
        )
    found = verbs.events(_open_for_run(db, run_id), run_id, type=type_, node_id=node_id, after_seq=after)
    if json_out:
        _lines([json.dumps(e, separators=(",", ":"), default=str) for e in found])
    else:
        _lines([f"{e['seq']:>5}  {describe_event(e)}" for e in found])
    return 0


@app.command()
def logs(
    run_id: RunArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events until the run ends.")] = False,
    follow_ancestry: Annotated[
        bool, typer.Option("--follow-ancestry", help="Show the whole continue-as-new chain this run belongs to, oldest first.")
    ] = False,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Print a run's progress as readable lines; -f follows a live run until it finishes, fails or is cancelled.

    Example: smithers logs 20261203-101500-ab12cd -f
    """
    from .. import queries as verbs
    from .views import describe_event

    store = _open_for_run(db, run_id)
    verbs.get_run(store, run_id)
    if follow_ancestry:
        chain = verbs.run_chain(store, run_id)
        for member in chain[:-1]:  # earlier runs are over: print them whole
            if not json_out:
                _lines([f"== run {member} =="])
            _lines([json.dumps(e, default=str) if json_out else describe_event(e) for e in store.events(member)])
        run_id = chain[-1]
        if not json_out:
            _lines([f"== run {run_id} =="])

    def show(batch: list[dict[str, Any]], last: int) -> int:
        if json_out:
            _lines([json.dumps(e, separators=(",", ":"), default=str) for e in batch])
        else:
            _lines([describe_event(e) for e in batch])
        return batch[-1]["seq"] if batch else last

    last = show(store.events(run_id), 0)
    if not follow:
        return 0
    from ..storage.lease import owner_alive

    gone = 0
    while True:
        run = verbs.get_run(store, run_id)
        if run["status"] in verbs.TERMINAL_STATUSES:
            show(store.events(run_id, after_seq=last), last)  # what committed with the final status
            return 0
        gone = gone + 1 if run["status"] == "running" and not owner_alive(run) else 0
        if gone >= DEAD_OWNER_POLLS:
            last = show(store.events(run_id, after_seq=last), last)
            sys.stderr.write(
                f"run {run_id} is marked running but the process running it died; "
                f"continue it with: smithers resume {run_id}\n"
            )
            return EXIT_FAILED
        time.sleep(FOLLOW_POLL_S)
        last = show(store.events(run_id, after_seq=last), last)


# -- why -------------------------------------------------------------------------------------


@app.command()
def why(run_id: RunArg, db: DbOption = None, json_out: JsonOption = False) -> int:
    """Explain what a run is blocked on and the command that unblocks it.

    Example: smithers why 20261203-101500-ab12cd
    """
    from .. import queries as verbs

    answer = verbs.why(_open_for_run(db, run_id), run_id)
    if json_out:
        _json(answer)
        return 0
    lines = [f"run {run_id}: {answer['status']}", f"  {answer['reason']}"]
    if answer["blocked_on"]:
        lines.append("blocked on:")
        for b in answer["blocked_on"]:
            parts = [f"  {b['node_id']}[{b['iteration']}]", b["status"], f"attempt {b['attempts']}"]
            if b["status"] == "running" and b["started_at_ms"]:
                parts.append(f"since {clock(b['started_at_ms'])}")
            if b["retry_at_ms"]:
                parts.append(f"retries at {clock(b['retry_at_ms'])}")
            if b["error"]:
                parts.append(f"- {short(b['error'], 100)}")
            lines.append("  ".join(parts))
        failed = [b["node_id"] for b in answer["blocked_on"] if b["status"] == "failed"]
        if failed:
            lines.append(f"  details and traceback: smithers node {run_id} {failed[0]}")
    if answer["commands"]:
        lines.append("to unblock it:")
        lines.extend(f"  {c}" for c in answer["commands"])
    elif answer["status"] not in verbs.TERMINAL_STATUSES:
        lines.append(f"watch it: smithers logs {run_id} -f")
    _lines(lines)
    return 0


# -- graph -----------------------------------------------------------------------------------


@app.command()
def graph(
    file: Annotated[
        str | None, typer.Argument(help="Workflow file (file.py or file.py:name); not needed with --run.", show_default=False)
    ] = None,
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Input for the preview: a JSON object, or @file.json.", show_default=False)
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", "-r", help="Show a run's stored plan instead of previewing the file.", show_default=False)
    ] = None,
    frame: Annotated[
        int | None, typer.Option("--frame", help="With --run: the frame to show, from 0 (default: the last).", show_default=False)
    ] = None,
    fmt: Annotated[GraphFormat, typer.Option("--format", help="How to show the plan.")] = GraphFormat.TREE,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> int:
    """Show a workflow's plan: a preview of its first render, or a run's plan at any frame with task statuses.

    Examples: smithers graph workflow.py --input '{"repo": "."}' --format mermaid
              smithers graph --run 20261203-101500-ab12cd --frame 0
    """
    from .. import queries as verbs
    from ..errors import UserError

    fmt = GraphFormat.JSON if json_out else fmt
    if run is None:
        if frame is not None:
            raise UserError("--frame needs --run RUN_ID", hint="frames belong to a run: smithers graph --run RUN_ID --frame N")
        if file is None:
            raise UserError("pass a workflow FILE to preview, or --run RUN_ID to show a run's plan")
        from ..ops import parse_input

        preview = verbs.preview_plan(file, parse_input(input))
        tree = verbs.plan_tree(preview["entries"])
        header = f"workflow {preview['workflow']}: plan of the first render (no run)"
    else:
        plan = verbs.frame_plan(_open_for_run(db, run), run, frame)
        tree = verbs.plan_tree(plan["entries"], plan["statuses"])
        last = plan["frame"] == plan["frames"] - 1
        header = (
            f"run {run} ({plan['workflow']}): frame {plan['frame']} (frames 0..{plan['frames'] - 1}), "
            + ("current statuses" if last else f"statuses as of event {plan['event_seq']}")
        )
    if fmt == GraphFormat.JSON:
        _json(tree)
    elif fmt == GraphFormat.MERMAID:
        _emit(verbs.mermaid(tree))
    else:
        _lines([header, *(_tree_lines(tree) if tree else ["(empty plan)"])])
    return 0


def _tree_lines(root: dict[str, Any]) -> list[str]:
    lines: list[str] = []

    def walk(node: dict[str, Any], prefix: str, connector: str, child_prefix: str) -> None:
        lines.append(prefix + connector + _node_label(node))
        kids = node.get("children", [])
        for i, kid in enumerate(kids):
            end = i == len(kids) - 1
            walk(kid, prefix + child_prefix, "└── " if end else "├── ", "    " if end else "│   ")

    walk(root, "", "", "")
    return lines


def _node_label(node: dict[str, Any]) -> str:
    kind: str = node["t"]
    if kind == "task":
        text: str = node["id"] + (f" #{node['it']}" if node.get("it") else "")
        text += f"  {node.get('mode', '')} → {node.get('out', '')}"
        if node.get("label"):
            text += f"  ({node['label']})"
        if "status" in node:
            text += f"  [{node['status']}]"
        return text
    if kind == "loop":
        text = f"loop {node['id']}  pass {node['it']} (max {node['max']})"
        if node.get("until"):
            text += ", until met"
        if node.get("done"):
            text += ", done"
        return text
    if kind == "parallel" and node.get("limit"):
        return f"parallel (max {node['limit']} at once)"
    return kind
