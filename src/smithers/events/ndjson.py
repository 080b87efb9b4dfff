"""Every committed event, one JSON object a line, in ``.smithers/runs/<run_id>/events.ndjson``.

Lines are written after the commit, so the database is the source of truth; a crash can lose
the last unflushed lines of the log but never an event from the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_dir(home: Path, run_id: str) -> Path:
    """A run's log folder: ``HOME/.smithers/runs/<run_id>`` (``HOME``: the store's ``home``, a
    SQLite file's folder)."""
    return home / ".smithers" / "runs" / run_id


class NdjsonSink:
    """Appends one run's events (a store may carry several runs' commits: subflows)."""

    def __init__(self, path: Path, run_id: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.run_id = run_id
        self._file = path.open("a", encoding="utf-8")

    def __call__(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if self.run_id is None or event["run_id"] == self.run_id:
                self._file.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
