"""How the CLI shows things: times, durations, statuses (with their colours), short values and
tables. Every command formats through here, so a run looks the same in ``ps``, ``inspect``,
``why`` and the live view of ``up``.

Tables are ``rich.table.Table``s without borders: aligned columns that read the same in a
terminal (where statuses are coloured), a pipe and a log file (plain text, never wrapped).
Cells are :class:`rich.text.Text`, never markup, so a value such as ``[not json`` prints as is.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..states import AttemptStatus, NodeStatus, RunStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

STATUS_STYLE: dict[str, str] = {
    RunStatus.QUEUED: "dim",
    RunStatus.RUNNING: "cyan",
    RunStatus.WAITING_APPROVAL: "yellow",
    RunStatus.WAITING_EVENT: "yellow",
    RunStatus.WAITING_TIMER: "yellow",
    RunStatus.FINISHED: "green",
    RunStatus.FAILED: "red",
    RunStatus.CANCELLED: "magenta",
    RunStatus.CONTINUED: "blue",
    NodeStatus.PENDING: "dim",
    NodeStatus.SKIPPED: "yellow",
    AttemptStatus.CACHED: "green",
    AttemptStatus.ABANDONED: "red",
    AttemptStatus.SUSPENDED: "yellow",  # a Subflow attempt whose child run waits
    "retrying": "yellow",  # the live view's name for a failed attempt that will retry
}
"""The colour of each run, node and attempt status (the enums share most values)."""

PIPE_WIDTH = 4096
"""Columns a table may use when stdout is not a terminal: wide enough never to wrap a row."""


def when(ms: int | None) -> str:
    """A point in time, local: ``2026-12-03 10:15:00`` (``-`` when unknown)."""
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def clock(ms: int | None) -> str:
    """A time of day, local: ``10:15:00`` (``-`` when unknown)."""
    return "-" if ms is None else time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def took(start_ms: int | None, end_ms: int | None) -> str:
    """The time between two instants: ``14ms``, ``2.5s``, ``3m07s``, ``1h02m`` (empty if either is unknown)."""
    if start_ms is None or end_ms is None:
        return ""
    return duration(end_ms - start_ms)


def duration(ms: float) -> str:
    """A duration in milliseconds, as :func:`took` shows it."""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds >= 0.1 else f"{int(ms)}ms"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def short(value: Any, width: int = 60) -> str:
    """A value on one line, at most ``width`` characters (``…`` marks a cut)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def error_text(error: Any) -> str:
    """An error as ``Type: message`` (a plain ``RunError`` shows its message only)."""
    if not isinstance(error, dict):
        return "" if error is None else str(error)
    kind = error.get("type")
    message = error.get("message") or ""
    return f"{kind}: {message}" if kind and kind != "RunError" else message


def status_text(status: str) -> Text:
    """A status in its colour (plain text off a terminal)."""
    from rich.text import Text

    return Text(str(status), style=STATUS_STYLE.get(status, ""))


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): colours on a terminal only (Rich honours ``NO_COLOR``)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    return Console(file=stream, highlight=False, soft_wrap=False, width=None if terminal else PIPE_WIDTH)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[str] = ()) -> list[str]:
    """Rows under headers as aligned lines. A cell is a ``str`` (shown as is) or a ``Text``
    (e.g. :func:`status_text`); columns named in ``right`` are right-aligned."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        grid.add_column(header, justify="right" if header in right else "left", no_wrap=True)
    for row in rows:
        grid.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    out = console()
    with out.capture() as captured:
        out.print(grid)
    return [line.rstrip() for line in captured.get().splitlines()]
