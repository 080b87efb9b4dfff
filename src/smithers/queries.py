"""Read-side verbs: list runs, inspect a run or a node, read events, explain a run, show its plan.

Pure functions over a :class:`~smithers.storage.store.Store` that return plain JSON-ready
data, so every front end (the CLI today, an HTTP server later) shows the same thing. Nothing
here prints. Heavy engine modules are imported only by the verbs that need them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from itertools import pairwise
from typing import Any

from .errors import UnknownNodeError, UnknownRunError, UserError
from .storage.output_tables import KEY_COLUMNS
from .storage.store import Store

RUN_STATUSES = (
    "running", "waiting-approval", "waiting-event", "waiting-timer", "finished", "failed", "cancelled", "continued",
)
TERMINAL_STATUSES = frozenset({"finished", "failed", "cancelled", "continued"})

# the node status each event leaves behind when a run's events are replayed (see `node_statuses`)
_EVENT_STATUS = {
    "NodePending": "pending",
    "NodeStarted": "running",
    "NodeFinished": "finished",
    "NodeFailed": "failed",
    "NodeRetrying": "retrying",
    "NodeSkipped": "skipped",
    "NodeCancelled": "cancelled",
    "AttemptAbandoned": "pending",  # resume puts in-flight work of a dead owner back in the queue
}


# -- runs ------------------------------------------------------------------------------------


def get_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run's row, or :class:`UnknownRunError` (exit 4) naming the id."""
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"no run {run_id!r} in {store.path}", hint="list runs with: smithers ps --all")
    return run


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``ps --json``."""
    return {
        "run_id": run["run_id"],
        "workflow": run["workflow"],
        "status": run["status"],
        "created_at_ms": run["created_at_ms"],
        "updated_at_ms": run["updated_at_ms"],
    }


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
    attempts = _attempts_by_node(store, run_id)
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
        "error": _loads(run["error_json"]),
        "nodes": nodes,
    }


def node_detail(store: Store, run_id: str, node_id: str) -> dict[str, Any]:
    """``node --json``: one node with all its iterations, each with full attempts (tracebacks
    included), its last error and its output."""
    get_run(store, run_id)
    rows = store.nodes(run_id, node_id)
    if not rows:
        known = [r["node_id"] for r in store._rows(
            "SELECT DISTINCT node_id FROM _smithers_nodes WHERE run_id = ? ORDER BY node_id", (run_id,)
        )]
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
            "error": _loads(row["error_json"]),
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
    error = _loads(row["error_json"])
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
        out["heartbeat"] = _loads(row["heartbeat_json"])
        out["meta"] = _loads(row["meta_json"])
    return out


def _attempts_by_node(store: Store, run_id: str) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for a in store._rows(
        "SELECT * FROM _smithers_attempts WHERE run_id = ? ORDER BY node_id, iteration, attempt", (run_id,)
    ):
        out.setdefault((a["node_id"], a["iteration"]), []).append(a)
    return out


def _loads(text: str | None) -> Any:
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
        self.columns = {
            r["table_name"]: json.loads(r["columns_json"]) for r in store._rows("SELECT * FROM _smithers_output_tables")
        }

    def get(self, table: str, node_id: str, iteration: int) -> dict[str, Any] | None:
        rows = self.tables.get(table)
        if rows is None:
            rows = self.tables[table] = self._load(table)
        return rows.get((node_id, iteration))

    def _load(self, table: str) -> dict[tuple[str, int], dict[str, Any]]:
        if table not in self.columns:  # never written: no task of that model finished anywhere
            return {}
        try:
            found = self.store._rows(f'SELECT * FROM "{table}" WHERE run_id = ?', (self.run_id,))
        except sqlite3.OperationalError:  # a table dropped by hand reads as "no output"
            return {}
        kinds = self.columns[table]
        if isinstance(kinds, list):  # written before kinds were recorded
            kinds = {c: None for c in kinds}
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


# -- why -------------------------------------------------------------------------------------


def why(store: Store, run_id: str) -> dict[str, Any]:
    """What the run is blocked on and the commands that unblock it:
    ``{run_id, status, reason, blocked_on: [...], commands: [...]}``.

    ``blocked_on`` entries are ``{node_id, iteration, status, attempts, started_at_ms,
    retry_at_ms, error}`` (``error`` is the last error message, or null).
    """
    from .storage.lease import owner_alive

    run = get_run(store, run_id)
    status = run["status"]
    resume = f"smithers resume {run_id}"
    nodes = store.nodes(run_id)
    starts = {
        (r["node_id"], r["iteration"]): r["started_at_ms"]
        for r in store._rows(
            "SELECT node_id, iteration, MAX(started_at_ms) AS started_at_ms FROM _smithers_attempts "
            "WHERE run_id = ? GROUP BY node_id, iteration", (run_id,)
        )
    }

    def entry(row: dict[str, Any]) -> dict[str, Any]:
        error = _loads(row["error_json"])
        return {
            "node_id": row["node_id"],
            "iteration": row["iteration"],
            "status": row["status"],
            "attempts": row["attempts"],
            "started_at_ms": starts.get((row["node_id"], row["iteration"])),
            "retry_at_ms": row["retry_at_ms"],
            "error": error.get("message") if isinstance(error, dict) else None,
        }

    def result(reason: str, blocked: list[dict[str, Any]], commands: list[str]) -> dict[str, Any]:
        return {"run_id": run_id, "status": status, "reason": reason, "blocked_on": blocked, "commands": commands}

    if status in ("finished", "continued"):
        what = "finished" if status == "finished" else "continued as a new run"
        return result(f"the run {what}; nothing is blocked and there is nothing to do", [], [])
    if status == "failed":
        failed = [entry(r) for r in nodes if r["status"] == "failed"]
        run_error = _loads(run["error_json"]) or {}
        if failed:
            parts = [
                f"task {f['node_id']!r}" + (f" (iteration {f['iteration']})" if f["iteration"] else "")
                + f" failed after {f['attempts']} attempt{'s' if f['attempts'] != 1 else ''}: {f['error'] or 'no error recorded'}"
                for f in failed
            ]
            reason = "; ".join(parts)
        else:
            reason = f"the run failed: {run_error.get('message') or 'no error recorded'}"
        reason += f". `{resume}` retries failed tasks with a fresh retry budget"
        return result(reason, failed, [resume])
    if status == "cancelled":
        cancelled = [entry(r) for r in nodes if r["status"] == "cancelled"]
        return result(f"the run was cancelled; `{resume}` continues it where it stopped", cancelled, [resume])
    if status.startswith("waiting-"):
        from .ops import waiting_for

        items = waiting_for(store, run_id)
        waiting = [entry(r) for r in nodes if r["status"].startswith("waiting-")]
        commands = [c for item in items for c in item["commands"]]
        if owner_alive(run):
            then = f"its owner (pid {run['owner_pid']}) continues the moment it arrives"
        else:
            then = f"then `{resume}` continues it"
            if not any(item["kind"] == "timer" for item in items):
                commands.append(resume)
        if not items:  # decided, answered or delivered, and not picked up yet
            return {**result(f"what the run waited for has arrived; {then}", waiting, commands), "waiting_for": items}
        what = "; ".join(_waiting_item(item) for item in items)
        return {**result(f"the run is waiting for {what}; {then}", waiting, commands), "waiting_for": items}
    # running (or a status written by a later version): is anyone actually running it?
    in_flight = [entry(r) for r in nodes if r["status"] == "running"]
    backoff = [entry(r) for r in nodes if r["status"] == "pending" and r["retry_at_ms"] is not None]
    owner = f"pid {run['owner_pid']} on {run['owner_host']}" if run["owner_pid"] else "no owner"
    if not owner_alive(run):
        who = f"the process running it ({owner}) died" if run["owner_pid"] else "no process is running it"
        reason = f"{who}; `{resume}` takes it over"
        if in_flight:
            reason += f" and retries the {len(in_flight)} task(s) that were in flight"
        return result(reason, in_flight + backoff, [resume])
    if run["cancel_requested_at_ms"]:
        return result(f"a cancel was requested; the owner ({owner}) is stopping its in-flight tasks", in_flight, [])
    parts = []
    if in_flight:
        parts.append(f"{len(in_flight)} task(s) in flight: {', '.join(e['node_id'] for e in in_flight)}")
    if backoff:
        parts.append(f"{len(backoff)} task(s) waiting to retry: {', '.join(e['node_id'] for e in backoff)}")
    detail = "; ".join(parts) if parts else "it is between tasks"
    return result(f"the run is running ({owner}); {detail}", in_flight + backoff, [])


def _waiting_item(item: dict[str, Any]) -> str:
    """One thing a waiting run waits for, in words (an item of ``ops.waiting_for``)."""
    where = f"{item['node_id']}[{item['iteration']}]"
    kind = item["kind"]
    if kind == "approval":
        return f"approval {where} ({item.get('title')})"
    if kind == "human":
        return f"human request {item['request_id']} on {where} ({item.get('title')})"
    if kind == "signal":
        corr = f" with correlation {item['correlation_id']!r}" if item.get("correlation_id") else ""
        return f"signal {item.get('signal')!r}{corr} on {where}"
    if kind == "timer":
        due = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["fires_at_ms"] / 1000))
        return f"timer {where} due at {due}"
    if kind == "subflow":  # its child run waits: say what the child waits for
        inner = "; ".join(_waiting_item(child) for child in item["waiting_for"]) or "what has arrived (resume to pick it up)"
        return f"subflow {where}, whose child run {item['child_run_id']} is {item['child_status']} waiting for {inner}"
    return f"{kind} {where}"


# -- graph -----------------------------------------------------------------------------------


def preview_plan(spec: str, raw_input: dict[str, Any] | None) -> dict[str, Any]:
    """The plan of a workflow's first render, without creating a run: validate the input,
    render once against an empty state. Returns ``{workflow, entries}`` (frame entries); input
    errors and render errors exit 4, as for ``smithers up``."""
    from pathlib import Path

    from .authoring.context import Ctx
    from .authoring.loader import load_workflow
    from .engine.persist import _entries
    from .engine.render import render
    from .engine.state import RunState

    loaded = load_workflow(spec)
    input_value, _ = loaded.workflow.validate_input(raw_input)
    # an empty, private database: previewing never creates or touches the user's smithers.db
    scratch = Store(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False), Path(":memory:"))
    scratch._migrate()
    try:
        state = RunState(scratch, "\x00no-run", loaded.models)
        ctx = Ctx(input=input_value, run_id="(not yet created)", reader=state)
        rendered = render(loaded.workflow, ctx, state.loop_state)
        return {"workflow": loaded.workflow.name, "entries": _entries(rendered.root)}
    finally:
        scratch.close()


def frame_plan(store: Store, run_id: str, frame: int | None = None) -> dict[str, Any]:
    """Frame ``frame`` of a run (default: the last), rebuilt from its stored deltas, with each
    task's status as of that frame.

    Returns ``{run_id, workflow, frame, frames, event_seq, entries, statuses}`` where ``statuses`` maps
    ``(node_id, iteration)`` to a status. For an earlier frame the statuses are those when the
    frame was committed (``Node*`` events up to its ``event_seq``); the last frame is the plan
    still in effect, so its statuses are the current ones.
    """
    from .storage.frames import rebuild

    run = get_run(store, run_id)
    count = store.frame_count(run_id)
    if count == 0:
        raise UserError(f"run {run_id} has no frames yet (it has not rendered)", hint=f"see why with: smithers why {run_id}")
    if frame is None:
        frame = count - 1
    if frame < 0 or frame >= count:
        raise UserError(
            f"run {run_id} has {count} frame{'s' if count != 1 else ''} (0..{count - 1}); frame {frame} does not exist",
            hint=f"pass --frame between 0 and {count - 1}, or leave it out for the last",
        )
    # only the rows from the last keyframe at or before the frame: cost independent of run length
    rows = store._rows(
        "SELECT * FROM _smithers_frames WHERE run_id = ? AND frame_no <= ? AND frame_no >= COALESCE("
        "(SELECT MAX(frame_no) FROM _smithers_frames WHERE run_id = ? AND is_keyframe = 1 AND frame_no <= ?), 0) "
        "ORDER BY frame_no",
        (run_id, frame, run_id, frame),
    )
    entries = rebuild(rows, frame, json.loads)
    event_seq = rows[-1]["event_seq"]
    last = frame == count - 1
    return {
        "run_id": run_id,
        "workflow": run["workflow"],
        "frame": frame,
        "frames": count,
        "event_seq": event_seq,
        "entries": entries,
        "statuses": node_statuses(store, run_id, upto_seq=None if last else event_seq),
    }


def node_statuses(store: Store, run_id: str, *, upto_seq: int | None = None) -> dict[tuple[str, int], str]:
    """Replay the run's node events (up to ``upto_seq``, or all): the last one of each node wins."""
    sql = (
        "SELECT type, node_id, iteration, payload_json FROM _smithers_events "
        "WHERE run_id = ? AND node_id IS NOT NULL AND (type LIKE 'Node%' OR type = 'AttemptAbandoned')"
    )
    params: list[Any] = [run_id]
    if upto_seq is not None:
        sql += " AND seq <= ?"
        params.append(upto_seq)
    statuses: dict[tuple[str, int], str] = {}
    for row in store._rows(sql + " ORDER BY seq", params):
        status = _EVENT_STATUS.get(row["type"])
        if status is None:
            continue
        if row["type"] == "NodeFailed" and row["payload_json"] and json.loads(row["payload_json"]).get("will_retry"):
            status = "retrying"
        statuses[(row["node_id"], row["iteration"])] = status
    return statuses


def plan_tree(entries: dict[str, dict[str, Any]], statuses: dict[tuple[str, int], str] | None = None) -> dict[str, Any] | None:
    """Nest frame entries (``graph --format json``): ``{k, t, children, ...}``; tasks carry
    ``id, it, mode, out`` (and ``status`` when statuses are given), loops ``id, it, until, max,
    done``."""
    from .storage.frames import as_tree

    tree = as_tree(entries)
    if tree is not None and statuses is not None:
        stack = [tree]
        while stack:
            node = stack.pop()
            if node["t"] == "task":
                node["status"] = statuses.get((node["id"], node["it"]), "pending")
            stack.extend(node.get("children", ()))
    return tree


_SEQUENTIAL = ("workflow", "sequence", "loop")  # containers whose children run one after another
_MERMAID_STYLE = {
    "pending": "fill:#f4f4f4,stroke:#999",
    "running": "fill:#d6ecff,stroke:#1f78c1",
    "retrying": "fill:#fff1c2,stroke:#c99a00",
    "finished": "fill:#d7f5d7,stroke:#2e8b2e",
    "failed": "fill:#ffd6d6,stroke:#c12f2f",
    "skipped": "fill:#fffbe0,stroke:#b8a600",
    "cancelled": "fill:#f2dcf2,stroke:#8b2e8b",
}


def mermaid(tree: dict[str, Any] | None) -> str:
    """A ``flowchart TD``: tasks are nodes, containers are subgraphs, and the children of a
    sequence (and of a loop body, and of the workflow itself) are chained by edges in order."""
    lines = ["flowchart TD"]
    if tree is None:
        return "\n".join([*lines, '  empty["(empty plan)"]']) + "\n"
    ids: dict[str, str] = {}
    edges: list[str] = []
    classes: dict[str, list[str]] = {}

    def ident(node: dict[str, Any]) -> str:
        return ids.setdefault(node["k"], f"n{len(ids)}")

    def label(node: dict[str, Any]) -> str:
        if node["t"] == "task":
            text = node["id"] + (f" #{node['it']}" if node.get("it") else "")
            text += f"<br/>{node.get('mode', '')} → {node.get('out', '')}"
            if "status" in node:
                text += f"<br/>{node['status']}"
        elif node["t"] == "loop":
            text = f"loop {node['id']} · pass {node['it']} of max {node['max']}" + (" · done" if node.get("done") else "")
        elif node["t"] == "parallel" and node.get("limit"):
            text = f"parallel · max {node['limit']}"
        else:
            text = node["t"]
        return text.replace('"', "#quot;")

    def walk(node: dict[str, Any], depth: int) -> None:
        pad = "  " * depth
        children = node.get("children", [])
        if node["t"] == "task":
            lines.append(f'{pad}{ident(node)}["{label(node)}"]')
            if "status" in node:
                classes.setdefault(node["status"], []).append(ident(node))
            return
        lines.append(f'{pad}subgraph {ident(node)}["{label(node)}"]')
        lines.append(f"{pad}  direction TB")
        for child in children:
            walk(child, depth + 1)
        lines.append(f"{pad}end")
        if node["t"] in _SEQUENTIAL:
            edges.extend(f"  {ident(a)} --> {ident(b)}" for a, b in pairwise(children))

    top = tree.get("children", [])
    for child in top:
        walk(child, 1)
    edges.extend(f"  {ident(a)} --> {ident(b)}" for a, b in pairwise(top))
    lines.extend(edges)
    for status, members in classes.items():
        style = _MERMAID_STYLE.get(status)
        if style:
            lines.append(f"  classDef {status} {style}")
        lines.append(f"  class {','.join(members)} {status}")
    if len(lines) == 1:
        lines.append('  empty["(empty plan)"]')
    return "\n".join(lines) + "\n"


def run_chain(store: Store, run_id: str) -> list[str]:
    """Every run of the continue-as-new chain ``run_id`` belongs to, oldest first."""
    first = run_id
    seen = {first}
    while True:
        row = store.conn.execute("SELECT continued_from FROM _smithers_runs WHERE run_id = ?", (first,)).fetchone()
        if not row or not row[0] or row[0] in seen:
            break
        first = row[0]
        seen.add(first)
    chain = [first]
    while True:
        row = store.conn.execute("SELECT run_id FROM _smithers_runs WHERE continued_from = ?", (chain[-1],)).fetchone()
        if not row or row[0] in chain:
            return chain
        chain.append(row[0])
