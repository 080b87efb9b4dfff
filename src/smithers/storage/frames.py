"""Frames: the run's time axis, stored as deltas.

Two kinds of frame share one numbering (from 0, per run):

- a **plan frame** is written when a render's plan differs from the previous one: the change
  (``put``/``del`` of plan entries), or a full keyframe;
- a **step frame** is written whenever a task finishes, fails or is skipped (and when
  ``retry-task`` puts nodes back to pending): ``{"n": [[node_id, iteration, step, attempt], ...]}``.

So ``--frame N`` can point between any two steps, and the state at frame N (the plan, the
node states, which outputs exist) is rebuilt by folding the deltas up to N
(:func:`rebuild`, :func:`fold_steps`). A keyframe is written when the plan deltas since the
last one would add up to more than a full copy of the plan, so storage stays within twice the
changes: it grows with what happened, never with (tasks x frames).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Entries = dict[str, dict[str, Any]]  # plan-node key -> description

# what a step frame records for a node (``n`` entries); RETRYING: a failed attempt that will be
# retried (the node row is back to pending); RESET: retry-task put the node back to pending
STEP_FINISHED, STEP_FAILED, STEP_SKIPPED, STEP_RETRYING, STEP_RESET = "finished", "failed", "skipped", "retrying", "reset"


def diff(previous: Entries, current: Entries) -> dict[str, Any]:
    put = [entry for key, entry in current.items() if previous.get(key) != entry]
    removed = [key for key in previous if key not in current]
    return {"put": put, "del": removed}


def delta_size(delta: dict[str, Any]) -> int:
    """How many plan entries a delta writes or removes."""
    return len(delta.get("put", ())) + len(delta.get("del", ()))


def needs_keyframe(since_keyframe: int, delta: dict[str, Any], entries: Entries) -> bool:
    """Whether to store the plan whole: the deltas since the last keyframe (``since_keyframe``
    entries) plus this one would outweigh a full copy. Keeps storage linear in the changes and
    a rebuild within two plans' worth of entries."""
    return since_keyframe + delta_size(delta) > len(entries)


def apply(entries: Entries, delta: dict[str, Any]) -> Entries:
    out = dict(entries)
    for key in delta.get("del", ()):
        out.pop(key, None)
    for entry in delta.get("put", ()):
        out[entry["k"]] = entry
    return out


def rebuild(rows: list[dict[str, Any]], frame_no: int, decode: Any) -> Entries:
    """Entries of frame ``frame_no`` from frame rows (oldest first): last keyframe, then deltas."""
    entries: Entries = {}
    for row in rows:
        if row["frame_no"] > frame_no:
            break
        data = decode(row["data_json"])
        entries = {entry["k"]: entry for entry in data["put"]} if row["is_keyframe"] else apply(entries, data)
    return entries


def steps_of(data: dict[str, Any]) -> list[list[Any]]:
    """The ``[node_id, iteration, step, attempt]`` entries of one frame's data (none for a plan frame)."""
    steps: list[list[Any]] = data.get("n", [])
    return steps


def fold_steps(datas: Iterable[dict[str, Any]]) -> dict[tuple[str, int], list[Any]]:
    """Each node's last step over the given frames' data (oldest first): ``{(node_id, iteration):
    [node_id, iteration, step, attempt]}``."""
    last: dict[tuple[str, int], list[Any]] = {}
    for data in datas:
        for step in steps_of(data):
            last[(step[0], step[1])] = step
    return last


def as_tree(entries: Entries) -> dict[str, Any] | None:
    """Nest entries by parent, children in document order."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for entry in entries.values():
        children.setdefault(entry.get("p"), []).append(entry)

    def build(entry: dict[str, Any]) -> dict[str, Any]:
        node = {k: v for k, v in entry.items() if k not in ("p", "i")}
        kids = sorted(children.get(entry["k"], []), key=lambda e: e["i"])
        if kids:
            node["children"] = [build(k) for k in kids]
        return node

    roots = children.get(None, [])
    return build(roots[0]) if roots else None
