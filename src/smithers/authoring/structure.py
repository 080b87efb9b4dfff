"""Nodes that shape long runs: Subflow (a child run), ContinueAsNew (start afresh, carrying
state) and Worktree (run a subtree in its own git worktree)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from ..errors import RenderError
from .nodes import Child, Node, Task, flatten


class ContinueResult(BaseModel):
    """The output model a ContinueAsNew node declares. No row is written: the hand-over is
    recorded as the ``RunContinuedAsNew`` event and the new run's ``continued_from``."""

    next_run_id: str


def _never(*_: Any) -> None:  # pragma: no cover - executed by the engine itself
    raise RuntimeError("structure nodes are run by the engine")


MAX_CARRIED_BYTES = 10 * 1024 * 1024


class ContinueAsNew(Task):
    """When reached, end this run as ``continued`` and start a fresh run of the same workflow whose
    ``ctx.carried`` is ``state`` (and ``ctx.continued_from`` this run's id). A loop that runs for
    weeks keeps a small history this way.

    >>> ContinueAsNew({"cursor": 1000})   # doctest: +SKIP
    """

    __slots__ = ()

    def __init__(self, state: Any = None, *, id: str = "continue-as-new") -> None:
        Task.__init__(self, id, output=ContinueResult, run=_never)
        try:
            encoded = json.dumps(state)
        except (TypeError, ValueError) as err:
            raise RenderError(f"ContinueAsNew {id!r}: state is not JSON-serialisable: {err}") from None
        if len(encoded) > MAX_CARRIED_BYTES:
            raise RenderError(f"ContinueAsNew {id!r}: state is {len(encoded)} bytes; the limit is 10 MB")
        self.mode = "continue"
        self.retries = 0
        self.meta = {"state": state}


class Subflow(Task):
    """Run another workflow as a child run (its own run id, ``parent_run_id`` set, resumable on
    its own). Its result — the output of the child's node ``result``, by default its last task in
    document order — is validated against ``output`` and stored as this node's row.

    ``workflow`` is a ``@workflow`` object or a path ``"other.py"`` / ``"other.py:name"``
    (relative to the parent workflow's folder).
    """

    __slots__ = ()

    def __init__(
        self,
        id: str,
        *,
        workflow: Any,
        output: type[BaseModel],
        input: dict[str, Any] | BaseModel | None = None,
        result: str | None = None,
        retries: int | None = None,
        label: str | None = None,
    ) -> None:
        Task.__init__(self, id, output=output, run=_never, retries=retries if retries is not None else 0, label=label)
        if isinstance(input, BaseModel):
            input = input.model_dump(mode="json")
        self.mode = "subflow"
        self.meta = {"workflow": workflow, "input": input or {}, "result": result}


class Worktree(Node):
    """Run the children (in sequence) inside a git worktree at ``path`` (relative to the workflow's
    folder), created on demand from ``base`` on ``branch`` (default: a branch named after the
    path). Tasks inside get it as their working directory, so parallel agents each edit their
    own checkout."""

    __slots__ = ("base", "branch", "children", "path")
    kind = "worktree"

    def __init__(self, path: str, *children: Child, branch: str | None = None, base: str = "main") -> None:
        if not isinstance(path, str) or not path.strip():
            raise RenderError("Worktree needs a path, e.g. Worktree('.worktrees/fix-a', ...)")
        self.path = path
        self.children = flatten(children, f"Worktree {path!r}")
        self.branch = branch
        self.base = base
