"""What ``smithers up`` shows while a run goes: a live table of nodes on a terminal, plain
event lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

STATUS_STYLE = {
    "pending": "dim", "running": "cyan", "finished": "green", "failed": "red", "skipped": "yellow",
    "cancelled": "magenta", "retrying": "yellow",
}


def describe_event(event: dict[str, Any]) -> str:
    """One human line for an event."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event["ts_ms"] / 1000))
    parts = [stamp, f"{event['type']:<15}"]
    if "node_id" in event:
        parts.append(f"{event['node_id']}[{event['iteration']}]")
    if "attempt" in event:
        parts.append(f"attempt {event['attempt']}")
    payload = event.get("payload") or {}
    if "error" in payload and isinstance(payload["error"], dict):
        parts.append(f"- {payload['error'].get('message', '')}")
    elif event["type"] == "NodeRetrying":
        parts.append(f"(retry at {time.strftime('%H:%M:%S', time.localtime(payload.get('retry_at_ms', 0) / 1000))})")
    elif event["type"].startswith("Loop"):
        parts.append(f"{payload.get('loop_id')} pass {payload.get('loop_iteration')}")
    elif event["type"] == "FrameCommitted":
        parts.append(f"frame {payload.get('frame')} ({payload.get('tasks')} tasks)")
    elif event["type"] == "AgentEvent":
        parts.append(f"{payload.get('kind')}")
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
    """A live table of nodes (status, attempt, elapsed), redrawn a few times a second."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=False)
        self.nodes: dict[tuple[str, int], dict[str, Any]] = {}
        self.run_id = ""
        self.status = "running"
        self.live = Live(console=self.console, refresh_per_second=8, transient=False, get_renderable=self._render)

    def started(self, run_id: str) -> None:
        self.run_id = run_id
        self.live.start()

    def on_events(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event["type"]
            if "node_id" in event:
                node = self.nodes.setdefault((event["node_id"], event["iteration"]), {"status": "pending", "attempt": 0, "start": None, "end": None})
                if kind == "NodeStarted":
                    node.update(status="running", attempt=event.get("attempt", 0), start=event["ts_ms"], end=None)
                elif kind in ("NodeFinished", "NodeSkipped", "NodeCancelled"):
                    node.update(status=kind[4:].lower(), end=event["ts_ms"])
                elif kind == "NodeFailed":
                    node.update(status="retrying" if (event.get("payload") or {}).get("will_retry") else "failed", end=event["ts_ms"])
            elif kind.startswith("Run") and kind not in ("RunStarted", "RunCancelRequested"):
                self.status = kind[3:].lower()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"run {self.run_id} — {self.status}", title_justify="left", expand=False)
        table.add_column("node")
        table.add_column("iter", justify="right")
        table.add_column("status")
        table.add_column("attempt", justify="right")
        table.add_column("elapsed", justify="right")
        now = time.time() * 1000
        rows = list(self.nodes.items())
        limit = max(self.console.size.height - 6, 5)
        if len(rows) > limit:  # keep what is moving: running first, then the most recent
            running = [r for r in rows if r[1]["status"] == "running"]
            rest = [r for r in rows if r[1]["status"] != "running"]
            rows = (running + rest[-(limit - len(running)):])[:limit] if len(running) < limit else running[:limit]
        for (node_id, iteration), node in rows:
            elapsed = ""
            if node["start"]:
                elapsed = f"{((node['end'] or now) - node['start']) / 1000:.1f}s"
            style = STATUS_STYLE.get(node["status"], "")
            table.add_row(node_id, str(iteration), f"[{style}]{node['status']}[/]", str(node["attempt"] or ""), elapsed)
        return table

    def close(self) -> None:
        if self.live.is_started:
            self.live.stop()


def make_view(*, quiet: bool = False) -> PlainView | LiveView:
    if sys.stdout.isatty() and not quiet:
        return LiveView()
    return PlainView(quiet=quiet)
