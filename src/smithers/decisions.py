"""Verbs that answer a waiting run: approve, deny, signal, answer a human task, list the inbox,
say what a run waits for (``waiting_for``).

Each records the decision durably in one transaction and returns at once. A process that
owns the run and waits (``up --wait``) picks it up within a tick; otherwise ``smithers
resume`` or the supervisor continues the run. Bad input (a node that is not waiting, a
payload that fails its schema, an unknown request id) changes nothing and exits 4.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from .errors import InputError, UnknownNodeError, UnknownRunError, UserError
from .states import ENDED_RUN_STATUSES, EventType, RunStatus
from .storage.store import Store


def _run(store: Store, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run is None:
        raise UnknownRunError(f"no run {run_id!r} in {store.label}", hint="list runs with: smithers ps")
    return run


def _open_run(store: Store, run_id: str, what: str) -> dict[str, Any]:
    run = _run(store, run_id)
    if run["status"] in ENDED_RUN_STATUSES:
        raise UserError(
            f"run {run_id} is {run['status']}; it takes no {what}",
            hint=f"resume it first (smithers resume {run_id})" if run["status"] in (RunStatus.FAILED, RunStatus.CANCELLED) else None,
        )
    return run


def _pending_approval(store: Store, run_id: str, node_id: str | None, iteration: int | None) -> dict[str, Any]:
    rows = store.requested_approvals(run_id)
    if node_id is not None:
        rows = [r for r in rows if r["node_id"] == node_id]
    if iteration is not None:
        rows = [r for r in rows if r["iteration"] == iteration]
    if not rows:
        what = f"node {node_id!r}" + (f" iteration {iteration}" if iteration is not None else "") if node_id else "any node"
        raise UserError(
            f"run {run_id}: {what} is not waiting for an approval",
            hint=f"see what the run waits for with: smithers why {run_id}"
        )
    if len(rows) > 1 and node_id is None:
        names = ", ".join(f"{r['node_id']}[{r['iteration']}]" for r in rows)
        raise UserError(f"run {run_id} waits for several approvals ({names}); choose one with --node", hint="add --node NODE_ID")
    if len(rows) > 1:
        raise UserError(f"run {run_id}: {node_id} waits in several iterations; choose one with --iteration")
    return rows[0]


def decide(
    store: Store, run_id: str, *, approved: bool, node_id: str | None = None, iteration: int | None = None,
    note: str | None = None, by: str | None = None, select: str | None = None, rank: list[str] | None = None,
) -> dict[str, Any]:
    """Approve or deny the approval a run waits for."""
    _open_run(store, run_id, "decision")
    row = _pending_approval(store, run_id, node_id, iteration)
    request = json.loads(row["request_json"])
    mode = request.get("mode", "approve")
    keys = [o["key"] for o in request.get("options", [])]
    decision: dict[str, Any] = {"note": note}
    if approved and mode == "select":
        if select is None:
            raise UserError(f"approval {row['node_id']!r} asks to select one of: {', '.join(keys)}", hint="pass --select KEY")
        if select not in keys:
            raise UserError(f"approval {row['node_id']!r}: {select!r} is not an option; choose one of {', '.join(keys)}")
        decision["selected"] = select
    elif approved and mode == "rank":
        if not rank:
            raise UserError(f"approval {row['node_id']!r} asks to rank: {', '.join(keys)}", hint="pass --rank KEY1,KEY2,...")
        if sorted(rank) != sorted(keys):
            raise UserError(f"approval {row['node_id']!r}: --rank must list each of {', '.join(keys)} once, got {', '.join(rank)}")
        decision["ranked"] = rank
    elif (select is not None or rank is not None) and mode == "approve":
        raise UserError(f"approval {row['node_id']!r} is a yes/no approval; --select and --rank do not apply")
    with store.tx(run_id) as tx:
        if not tx.record_decision(row["node_id"], row["iteration"], approved=approved, decision=decision, by=by):
            raise UserError(f"run {run_id}: approval {row['node_id']!r} was decided meanwhile")
        tx.event(
            EventType.APPROVAL_DECIDED, node_id=row["node_id"], iteration=row["iteration"], approved=approved, note=note, by=by,
            selected=decision.get("selected"), ranked=decision.get("ranked"),
        )
    return {"run_id": run_id, "node_id": row["node_id"], "iteration": row["iteration"], "approved": approved, **decision}


def _validate(schema: dict[str, Any], value: Any, what: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  - {'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]
        raise InputError(f"{what} does not match its schema:\n" + "\n".join(lines), hint="fix the JSON and send it again")


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{what} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None


def send_signal(
    store: Store, run_id: str, name: str, data: Any, *, correlation_id: str | None = None, by: str | None = None
) -> dict[str, Any]:
    """Deliver a signal. Kept until a matching wait consumes it; an identical re-send is recorded once.
    When the run already knows the signal's schema (its wait is mounted), the payload is checked now."""
    _open_run(store, run_id, "signal")
    name = name.strip()
    if not name:
        raise InputError("a signal needs a name")
    schema = store.signal_schema(run_id, name)
    if schema is not None:  # the run knows this signal's schema: check now
        _validate(schema, data, f"signal {name!r} payload")
    payload = json.dumps(data, sort_keys=True)
    key = hashlib.sha256(f"{name}\0{correlation_id or ''}\0{payload}".encode()).hexdigest()
    with store.tx(run_id) as tx:
        # a re-send of a signal still waiting to be consumed is the same delivery; once consumed, the
        # same payload again is a new one (a Signal inside a Loop receives one per pass)
        existing = tx.pending_signal_with_key(key)
        if existing is not None:
            return {"run_id": run_id, "signal": name, "seq": existing, "duplicate": True}
        seq = tx.add_signal(name, correlation_id, payload, key, by)
        tx.event(EventType.SIGNAL_SENT, signal=name, correlation_id=correlation_id, signal_seq=seq, by=by)
    return {"run_id": run_id, "signal": name, "seq": seq, "duplicate": False}


def answer_human(store: Store, request_id: str, value: Any, *, by: str | None = None) -> dict[str, Any]:
    """Answer a human task; the value must validate against the task's output schema."""
    row = store.human_request_by_id(request_id)
    if row is None:
        raise UserError(f"no human request {request_id!r}", hint="list open requests with: smithers inbox")
    if row["status"] != "pending":  # a human request's own status: pending | answered
        raise UserError(f"human request {request_id} is already {row['status']}")
    _validate(json.loads(row["schema_json"]), value, f"the answer to {request_id}")
    with store.tx(row["run_id"]) as tx:
        if not tx.answer_human(request_id, value, by=by):
            raise UserError(f"human request {request_id} was answered meanwhile")
        tx.event(EventType.HUMAN_ANSWER_RECEIVED, node_id=row["node_id"], iteration=row["iteration"], request_id=request_id, by=by)
    return {"request_id": request_id, "run_id": row["run_id"], "node_id": row["node_id"], "status": "answered"}


def inbox(store: Store) -> list[dict[str, Any]]:
    """Every pending approval, human task and awaited signal across live runs (not finished, failed, cancelled
    or continued), with the command that answers it."""
    items: list[dict[str, Any]] = []
    for row in store.requested_approvals_of_live_runs():
        request = json.loads(row["request_json"])
        cmd = f"smithers approve {row['run_id']} --node {row['node_id']}"
        if request.get("mode") == "select":
            cmd += " --select KEY"
        elif request.get("mode") == "rank":
            cmd += " --rank " + ",".join(o["key"] for o in request.get("options", []))
        items.append({
            "kind": "approval", "run_id": row["run_id"], "node_id": row["node_id"], "iteration": row["iteration"],
            "title": request.get("title"), "summary": request.get("summary"), "mode": request.get("mode", "approve"),
            "options": request.get("options", []), "since_ms": row["requested_at_ms"],
            "commands": [cmd, f"smithers deny {row['run_id']} --node {row['node_id']}"],
        })
    for row in store.pending_human_requests_of_live_runs():
        items.append({
            "kind": "human", "run_id": row["run_id"], "node_id": row["node_id"], "iteration": row["iteration"],
            "request_id": row["request_id"], "title": row["prompt"], "schema": json.loads(row["schema_json"]),
            "since_ms": row["created_at_ms"], "commands": [f"smithers human answer {row['request_id']} --value '{{...}}'"],
        })
    for wait in store.signal_waits():
        corr = wait["correlation_id"]
        if store.next_signal(wait["run_id"], wait["signal"], corr) is not None:  # delivered, not yet consumed: nothing left to do
            continue
        items.append({
            "kind": "signal", "run_id": wait["run_id"], "node_id": wait["node_id"], "iteration": wait["iteration"],
            "signal": wait["signal"], "correlation_id": corr, "schema": wait["schema"], "since_ms": wait["waiting_since_ms"],
            "commands": [
                f"smithers signal {wait['run_id']} {wait['signal']} --data '{{...}}'" + (f" --correlation {corr}" if corr else ""),
            ],
        })
    return items


def waiting_for(store: Store, run_id: str) -> list[dict[str, Any]]:
    """What a waiting run waits for, each with the command that continues it."""
    items = [item for item in inbox(store) if item["run_id"] == run_id] + subflow_waits(store, run_id)
    for node_id, iteration, fires in store.waiting_timers(run_id):
        items.append({
            "kind": "timer", "run_id": run_id, "node_id": node_id, "iteration": iteration, "fires_at_ms": fires,
            "commands": [f"smithers resume {run_id}   (after {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(fires / 1000))})",
                         "smithers supervise   (resumes it when due)"],
        })
    return items


def subflow_waits(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The Subflow nodes of ``run_id`` that wait because their child run waits: one item each,
    naming the child, its status and what it waits for (``waiting_for``, recursively), with the
    commands that answer the child; then ``smithers resume RUN_ID`` (the parent) finishes both."""
    items: list[dict[str, Any]] = []
    for row in store.waiting_subflows(run_id):
        child_items = waiting_for(store, row["child_run_id"])
        items.append({
            "kind": "subflow", "run_id": run_id, "node_id": row["node_id"], "iteration": row["iteration"],
            "child_run_id": row["child_run_id"], "child_status": row["child_status"], "waiting_for": child_items,
            "title": f"child run {row['child_run_id']} ({row['child_status']})",
            "commands": [c for item in child_items for c in item["commands"] if not c.startswith(f"smithers resume {row['child_run_id']}")],
        })
    return items


def check_node(store: Store, run_id: str, node_id: str) -> None:
    if not store.nodes(run_id, node_id):
        raise UnknownNodeError(f"run {run_id} has no node {node_id!r}")
