"""Read-side verbs: list runs, inspect a run or a node, read events, explain a run, show its plan.

Pure functions over a :class:`~smithers.storage.store.Store` that return plain JSON-ready
data, so every front end (the CLI, the HTTP server) shows the same thing. Nothing here prints.

- :mod:`.runs` — read models: runs, run and node detail, events, output decoding;
- :mod:`.explain` — the ``why`` explainer;
- :mod:`.graph` — the plan preview, a run's frame plan, node statuses, the plan tree, Mermaid;
- :mod:`.chains` — continue-as-new chains.

Importing this package is cheap: no module here imports the engine at import time (only
:func:`preview_plan` does, when called), so read commands start fast.
"""

from __future__ import annotations

from .chains import run_chain
from .explain import why
from .graph import frame_plan, mermaid, node_statuses, plan_tree, preview_plan
from .runs import (
    RUN_STATUSES,
    TERMINAL_STATUSES,
    check_run_status,
    decode_column,
    decode_typed,
    events,
    get_run,
    list_runs,
    node_detail,
    run_detail,
    run_summary,
)

__all__ = [
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "check_run_status",
    "decode_column",
    "decode_typed",
    "events",
    "frame_plan",
    "get_run",
    "list_runs",
    "mermaid",
    "node_detail",
    "node_statuses",
    "plan_tree",
    "preview_plan",
    "run_chain",
    "run_detail",
    "run_summary",
    "why",
]
