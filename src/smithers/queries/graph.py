"""The plan as a graph: a workflow's preview (no run), a run's frame with each task's status,
the nested tree (``graph --format json``) and its Mermaid flowchart."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

from ..errors import UserError
from ..states import WAITING_NODE_STATUSES, EventType, NodeStatus
from ..storage.store import Store
from .runs import get_run

# a status the graph shows but no node row holds: a failed attempt that will be retried (the row
# is back to `pending` with a `retry_at_ms`)
RETRYING = "retrying"

# the node status each event leaves behind when a run's events are replayed (see `node_statuses`);
# NodeWaiting carries its waiting status in the payload
_EVENT_STATUS: dict[str, str] = {
    EventType.NODE_PENDING: NodeStatus.PENDING,
    EventType.NODE_STARTED: NodeStatus.RUNNING,
    EventType.NODE_FINISHED: NodeStatus.FINISHED,
    EventType.NODE_FAILED: NodeStatus.FAILED,
    EventType.NODE_RETRYING: RETRYING,
    EventType.NODE_SKIPPED: NodeStatus.SKIPPED,
    EventType.NODE_CANCELLED: NodeStatus.CANCELLED,
    EventType.ATTEMPT_ABANDONED: NodeStatus.PENDING,  # resume puts in-flight work of a dead owner back in the queue
}


def preview_plan(spec: str, raw_input: dict[str, Any] | None) -> dict[str, Any]:
    """The plan of a workflow's first render, without creating a run: validate the input,
    render once against an empty state. Returns ``{workflow, entries}`` (frame entries); input
    errors and render errors exit 4, as for ``smithers up``."""
    from ..authoring.context import Ctx
    from ..authoring.loader import load_workflow
    from ..engine.persist import plan_entries
    from ..engine.render import render
    from ..engine.state import RunState

    loaded = load_workflow(spec)
    input_value, _ = loaded.workflow.validate_input(raw_input)
    # an empty, private database: previewing never creates or touches the user's smithers.db
    scratch = Store.memory()
    try:
        state = RunState(scratch, "\x00no-run", loaded.models)
        ctx = Ctx(input=input_value, run_id="(not yet created)", reader=state)
        rendered = render(loaded.workflow, ctx, state.loop_state)
        return {"workflow": loaded.workflow.name, "entries": plan_entries(rendered.root)}
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
    from ..storage.frames import rebuild

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
    rows = store.frames_from_keyframe(run_id, frame)
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
    statuses: dict[tuple[str, int], str] = {}
    for event in store.node_events(run_id, upto_seq=upto_seq):
        payload = event["payload"] or {}
        if event["type"] == EventType.NODE_WAITING:
            status = payload.get("status")
            if status not in WAITING_NODE_STATUSES:  # not a wait this version knows: keep the last status
                continue
        else:
            status = _EVENT_STATUS.get(event["type"])
            if status is None:
                continue
            if event["type"] == EventType.NODE_FAILED and payload.get("will_retry"):
                status = RETRYING
        statuses[(event["node_id"], event["iteration"])] = status
    return statuses


def plan_tree(entries: dict[str, dict[str, Any]], statuses: dict[tuple[str, int], str] | None = None) -> dict[str, Any] | None:
    """Nest frame entries (``graph --format json``): ``{k, t, children, ...}``; tasks carry
    ``id, it, mode, out`` (and ``status`` when statuses are given), loops ``id, it, until, max,
    done``."""
    from ..storage.frames import as_tree

    tree = as_tree(entries)
    if tree is not None and statuses is not None:
        stack = [tree]
        while stack:
            node = stack.pop()
            if node["t"] == "task":
                node["status"] = statuses.get((node["id"], node["it"]), NodeStatus.PENDING)
            stack.extend(node.get("children", ()))
    return tree


_SEQUENTIAL = ("workflow", "sequence", "loop")  # containers whose children run one after another
_MERMAID_STYLE: dict[str, str] = {
    NodeStatus.PENDING: "fill:#f4f4f4,stroke:#999",
    NodeStatus.RUNNING: "fill:#d6ecff,stroke:#1f78c1",
    RETRYING: "fill:#fff1c2,stroke:#c99a00",
    NodeStatus.FINISHED: "fill:#d7f5d7,stroke:#2e8b2e",
    NodeStatus.FAILED: "fill:#ffd6d6,stroke:#c12f2f",
    NodeStatus.SKIPPED: "fill:#fffbe0,stroke:#b8a600",
    NodeStatus.CANCELLED: "fill:#f2dcf2,stroke:#8b2e8b",
    NodeStatus.WAITING_APPROVAL: "fill:#ffe8cc,stroke:#d9730d,stroke-dasharray:4 3",
    NodeStatus.WAITING_EVENT: "fill:#ffe8cc,stroke:#d9730d,stroke-dasharray:4 3",
    NodeStatus.WAITING_TIMER: "fill:#ffe8cc,stroke:#d9730d,stroke-dasharray:4 3",
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
            text = str(node["id"]) + (f" #{node['it']}" if node.get("it") else "")
            text += f"<br/>{node.get('mode', '')} → {node.get('out', '')}"
            if "status" in node:
                text += f"<br/>{node['status']}"
        elif node["t"] == "loop":
            text = f"loop {node['id']} · pass {node['it']} of max {node['max']}" + (" · done" if node.get("done") else "")
        elif node["t"] == "parallel" and node.get("limit"):
            text = f"parallel · max {node['limit']}"
        else:
            text = str(node["t"])
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
        name = status.replace("-", "_")  # a class name: waiting-approval → waiting_approval
        style = _MERMAID_STYLE.get(status)
        if style:
            lines.append(f"  classDef {name} {style}")
        lines.append(f"  class {','.join(members)} {name}")
    if len(lines) == 1:
        lines.append('  empty["(empty plan)"]')
    return "\n".join(lines) + "\n"
