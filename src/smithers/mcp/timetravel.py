"""The time-travel tools of ``smithers mcp`` (DESIGN §10.5 "+ fork_run, revert_attempt,
get_diff once §10.3 exists"): each calls the verb behind ``smithers fork``, ``smithers revert`` and
``smithers diff`` (:mod:`smithers.history`, :mod:`smithers.undo`), so an agent gets exactly what
``--json`` prints. A mixin of :class:`~smithers.mcp.tools.SmithersTools`, kept apart because it is
one concept: going back in a run.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from .models import DiffResult, ForkResult, RevertResult

if TYPE_CHECKING:
    from ..storage.store import Store

RunId = Annotated[str, Field(description="The run id (see list_runs).", min_length=1)]
NodeId = Annotated[str, Field(description="The node (task) id.", min_length=1)]
Iteration = Annotated[int | None, Field(default=None, ge=0, description="The node's iteration, inside loops (default: the last).")]
Attempt = Annotated[int | None, Field(default=None, ge=1, description="The attempt (default: the newest with a snapshot).")]


class TimeTravelTools:
    """``fork_run``, ``revert_attempt``, ``get_diff`` over the store of the tools object."""

    db: str
    root: Path

    def store(self) -> AbstractContextManager[Store]:  # provided by SmithersTools
        raise NotImplementedError

    def _spawn_resume(self, run_id: str, *options: str) -> tuple[str, int, str]:  # provided by SmithersTools
        raise NotImplementedError

    def fork_run(
        self,
        run_id: RunId,
        frame_no: Annotated[int, Field(ge=0, description="The frame to fork at (see smithers timeline RUN).")],
        reset_nodes: Annotated[list[str] | None, Field(default=None, description="Nodes to run again (and what depends on them).")] = None,
        input: Annotated[dict[str, Any] | None, Field(default=None, description="A new input (default: the parent's).")] = None,
        label: Annotated[str | None, Field(default=None, description="A label shown in the timeline.")] = None,
        run: Annotated[bool, Field(default=False, description="Start the fork now in the background (else it stays queued).")] = False,
    ) -> ForkResult:
        """A new run with this run's state as of frame ``frame_no`` (`smithers fork`): the outputs of the
        tasks finished by then are kept, ``reset_nodes`` and what depends on them run again. The parent is
        unchanged. The fork is ``queued`` (drive it with resume_run) unless ``run``."""
        from .. import history

        with self.store() as store:
            result = history.fork_run(store, run_id, frame_no, reset_nodes=reset_nodes or (), raw_input=input, label=label)
        status, pid, log = "queued", None, None
        if run:
            status, pid, log = self._spawn_resume(result["run_id"])
        return ForkResult(**result, status=status, pid=pid, log=log)

    def revert_attempt(
        self,
        run_id: RunId,
        node_id: NodeId,
        iteration: Iteration = None,
        attempt: Attempt = None,
        before: Annotated[bool, Field(default=False, description="Go back to the tree before the attempt (default: after it).")] = False,
        force: Annotated[
            bool, Field(default=False, description="Revert even over changes no snapshot holds (they are saved as a snapshot first).")
        ] = False,
    ) -> RevertResult:
        """Put the working tree back to the snapshot after an attempt, or before it (`smithers revert`).
        Refused (UNSAVED_CHANGES) when the tree has changes that no snapshot of the run holds, unless
        ``force``; refused while the run is running. Returns the files it changed."""
        from .. import undo

        with self.store() as store:
            return RevertResult(**undo.revert(
                store, run_id, node_id, iteration, attempt, before=before, force=force, actor="mcp",
            ))

    def get_diff(self, run_id: RunId, node_id: NodeId, iteration: Iteration = None, attempt: Attempt = None) -> DiffResult:
        """What one attempt changed in the working tree (`smithers diff --json`): the files (added,
        modified, deleted; +/- lines) and the patch."""
        from .. import undo

        with self.store() as store:
            return DiffResult(**undo.diff(store, run_id, node_id, iteration, attempt))

