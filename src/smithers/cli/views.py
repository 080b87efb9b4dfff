"""What ``smithers up`` shows while a run goes: a live table of nodes on a terminal, plain
event lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ..states import EventType, NodeStatus, RunStatus
from .format import clock, duration, status_text

NODE_ENDINGS = {
    EventType.NODE_FINISHED: NodeStatus.FINISHED, EventType.NODE_SKIPPED: NodeStatus.SKIPPED,
    EventType.NODE_CANCELLED: NodeStatus.CANCELLED,
}
RUN_STATUS_EVENTS = {  # the run status each event leaves (a RunWaiting payload names which wait)
    EventType.RUN_FINISHED: RunStatus.FINISHED, EventType.RUN_FAILED: RunStatus.FAILED, EventType.RUN_CANCELLED: RunStatus.CANCELLED,
    EventType.RUN_WAITING: RunStatus.WAITING_EVENT, EventType.RUN_WAIT_ENDED: RunStatus.RUNNING,
    EventType.RUN_CONTINUED_AS_NEW: RunStatus.CONTINUED,
}


def describe_event(event: dict[str, Any]) -> str:
    """One human line for an event."""
    parts = [clock(event["ts_ms"]), f"{event['type']:<15}"]
    if "node_id" in event:
        parts.append(f"{event['node_id']}[{event['iteration']}]")
    if "attempt" in event:
        parts.append(f"attempt {event['attempt']}")
    payload = event.get("payload") or {}
    if "error" in payload and isinstance(payload["error"], dict):
        parts.append(f"- {payload['error'].get('message', '')}")
    elif event["type"] == EventType.NODE_RETRYING:
        parts.append(f"(retry at {clock(payload.get('retry_at_ms', 0))})")
    elif event["type"].startswith("Loop"):
        parts.append(f"{payload.get('loop_id')} pass {payload.get('loop_iteration')}")
    elif event["type"] == EventType.FRAME_COMMITTED:
        parts.append(f"frame {payload.get('frame')} ({payload.get('tasks')} tasks)")
    elif event["type"] == EventType.AGENT_EVENT:
        parts.append(f"{payload.get('kind')}")
    elif event["type"] == EventType.WORKFLOW_RELOADED:
        parts.append(", ".join(payload.get("files", [])))
    return "  ".join(parts)


class PlainView:
    """One line per event, for logs and pipes."""

    def __init__(self, out: TextIO | None = None, *, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet

    def started(self, run_id: str) -> None:
        if not self.quiet:
            self.out.write(f"run {run_id} started\n")
            self.out.flush()

    def on_events(self, events: list[dict[str, Any]]) -> None:
        if self.quiet:
            return
        self.out.write("".join(describe_event(e) + "\n" for e in events))

    def close(self) -> None:
        self.out.flush()


class LiveView:
    """A live tree of nodes (status, attempt, elapsed), redrawn a few times a second.

    The structure comes from the run's latest frame; statuses from the events. When the tree
    is taller than the terminal, the rows around the first unfinished node are shown."""

    def __init__(self, store: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=False)
        self.store = store
        self.nodes: dict[tuple[str, int], dict[str, Any]] = {}
        self.layout: list[tuple[int, dict[str, Any]]] = []  # (depth, frame entry) in document order
        self.run_id = ""
        self.status: str = RunStatus.RUNNING
        self.live = Live(console=self.console, refresh_per_second=8, transient=False, get_renderable=self._render)

    def started(self, run_id: str) -> None:
        self.run_id = run_id
        self.nodes.clear()  # a continue-as-new chain shows each run in turn
        self.layout = []
        self.status = RunStatus.RUNNING
        if not self.live.is_started:
            self.live.start()

    def on_events(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event["type"]
            payload = event.get("payload") or {}
            if "node_id" in event:
                node = self.nodes.setdefault(
                    (event["node_id"], event["iteration"]), {"status": NodeStatus.PENDING, "attempt": 0, "start": None, "end": None}
                )
                if kind == EventType.NODE_STARTED:
                    node.update(status=NodeStatus.RUNNING, attempt=event.get("attempt", 0), start=event["ts_ms"], end=None)
                elif kind in NODE_ENDINGS:
                    node.update(status=NODE_ENDINGS[kind], end=event["ts_ms"])
                elif kind == EventType.NODE_FAILED:
                    node.update(status="retrying" if payload.get("will_retry") else NodeStatus.FAILED, end=event["ts_ms"])
                elif kind == EventType.NODE_WAITING:
                    node.update(status=payload.get("status", NodeStatus.WAITING_EVENT))
            elif kind == EventType.FRAME_COMMITTED:
                self._load_layout(payload.get("frame"))
            elif kind in RUN_STATUS_EVENTS:
                self.status = payload.get("status") or RUN_STATUS_EVENTS[kind]

    def _load_layout(self, frame_no: int | None) -> None:
        if self.store is None or frame_no is None:
            return
        import json

        from ..storage.frames import as_tree, rebuild

        tree = as_tree(rebuild(self.store.frames(self.run_id, upto=frame_no), frame_no, json.loads))
        layout: list[tuple[int, dict[str, Any]]] = []
        stack = [(0, tree)] if tree else []
        while stack:
            depth, entry = stack.pop()
            if entry["t"] != "workflow":
                layout.append((depth, entry))
            stack.extend((depth + (entry["t"] != "workflow"), child) for child in reversed(entry.get("children", [])))
        self.layout = layout

    def _rows(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(indented label, iteration, node state or None for containers)."""
        if not self.layout:
            return [(node_id, str(it), state) for (node_id, it), state in self.nodes.items()]
        rows: list[tuple[str, str, dict[str, Any] | None]] = []
        for depth, entry in self.layout:
            indent = "  " * depth
            if entry["t"] == "task":
                state = self.nodes.get((entry["id"], entry["it"]), {"status": NodeStatus.PENDING, "attempt": 0, "start": None, "end": None})
                rows.append((f"{indent}{entry.get('label') or entry['id']}", str(entry["it"]), state))
            elif entry["t"] == "loop":
                rows.append((f"{indent}loop {entry['id']} (pass {entry['it']}{', done' if entry.get('done') else ''})", "", None))
            else:
                rows.append((f"{indent}{entry['t']}", "", None))
        return rows

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(f"run {self.run_id} — {self.status}"), title_justify="left", expand=False)
        table.add_column("node")
        table.add_column("iter", justify="right")
        table.add_column("status")
        table.add_column("attempt", justify="right")
        table.add_column("elapsed", justify="right")
        now = time.time() * 1000
        rows = self._rows()
        limit = max(self.console.size.height - 6, 5)
        if len(rows) > limit:  # show the window that is moving: from just before the first unfinished node
            first_open = next(
                (i for i, r in enumerate(rows) if r[2] is not None and r[2]["status"] not in (NodeStatus.FINISHED, NodeStatus.SKIPPED)),
                len(rows) - 1,
            )
            start = max(min(first_open - 2, len(rows) - limit), 0)
            rows = rows[start : start + limit]
        for label, iteration, node in rows:
            if node is None:
                table.add_row(Text(label, style="bold"), "", "", "", "")
                continue
            elapsed = duration((node["end"] or now) - node["start"]) if node["start"] else ""
            table.add_row(Text(label), iteration, status_text(node["status"]), str(node["attempt"] or ""), elapsed)
        return table

    def close(self) -> None:
        if self.live.is_started:
            self.live.stop()


def make_view(*, quiet: bool = False, store: Any = None) -> PlainView | LiveView:
    if sys.stdout.isatty() and not quiet:
        return LiveView(store)
    return PlainView(quiet=quiet)
