"""Frames as deltas: each render's plan is stored as the change from the previous one, with a
full keyframe every ``KEYFRAME_EVERY`` frames, so storage grows with changes, not with
(tasks x frames)."""

from __future__ import annotations

from typing import Any

KEYFRAME_EVERY = 50

Entries = dict[str, dict[str, Any]]  # plan-node key -> description


def diff(previous: Entries, current: Entries) -> dict[str, Any]:
    put = [entry for key, entry in current.items() if previous.get(key) != entry]
    removed = [key for key in previous if key not in current]
    return {"put": put, "del": removed}


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
