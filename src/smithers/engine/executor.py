"""An executor slot's side of a remote attempt: rebuild the task from the run, run it, report.

A worker claims a queue row ``(run, node, iteration, attempt)`` and hands it here. The task
descriptor is rebuilt the way ``resume`` rebuilds a run: load the run's workflow file, render it
against the run's stored outputs and loop passes, and take the task with that key. Renders are
cached per run and per owner render (the row's ``render_no``), so a fan-out of a thousand tasks
costs each worker one render, not a thousand.

The task runs *here*, in this worker's process and working directory: the run's working folder
as this machine sees the workflow file (``Workflow.cwd`` from the file's folder), or the task's
``Worktree`` under it (created here when missing). An agent task runs the agent CLI installed on
this machine; its events are written to the run's event log while this worker still holds the
claim. The result — the validated output as JSON, or the error record — goes back in the queue
row; the owner commits it.

>>> runner = RemoteRunner(store)                                          # doctest: +SKIP
>>> outcome = await runner.run(row, worker="w1", on_start=slot.started)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..authoring.context import Ctx, TaskContext
from ..authoring.loader import LoadedWorkflow, load_workflow, source_fingerprint
from ..errors import ErrorCode, RunError, error_record
from ..storage.store import Store
from .agent_events import EventBuffer
from .agent_task import AgentChain, run_agent_attempt
from .execute import run_compute
from .render import Rendered, render
from .state import RunState
from .tree import TaskDescriptor

MAX_CACHED_RENDERS = 2  # per run: the owner's newest renders


@dataclass
class Outcome:
    """What one remote attempt produced, as the queue row stores it."""

    ok: bool
    result_json: str | None = None
    error_json: str | None = None
    meta_json: str | None = None
    heartbeat_json: str | None = None


@dataclass
class RunBinding:
    """A run as this worker sees it: its workflow, input and working folder; its recent renders."""

    loaded: LoadedWorkflow
    input_value: Any
    carried: Any
    continued_from: str | None
    cwd: Path
    source_error: str | None
    # (owner id, render_no) -> that render's tasks by key
    renders: dict[tuple[str, int], dict[tuple[str, int], TaskDescriptor]] = field(default_factory=dict)


class RemoteRunner:
    """Runs claimed attempts for one worker process (one per process: agents disabled by a
    configuration error stay off for this worker)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.bindings: dict[str, RunBinding] = {}
        self.disabled_agents: set[int] = set()

    def forget(self, run_id: str) -> None:
        self.bindings.pop(run_id, None)

    async def run(self, row: dict[str, Any], *, worker: str, on_start: Callable[[TaskContext], None]) -> Outcome:
        """Run the claimed attempt ``row``; ``on_start`` receives its TaskContext (whose
        heartbeats the worker copies into the claim). Never raises for the task's own failure."""
        tc: TaskContext | None = None
        info: dict[str, Any] = {"worker": worker}
        try:
            binding = self._binding(row["run_id"])
            desc = self._descriptor(binding, row)
            tc = TaskContext(
                run_id=row["run_id"], node_id=desc.node_id, iteration=desc.iteration, attempt=row["attempt"],
                last_heartbeat=self.store.last_heartbeat(row["run_id"], desc.node_id, desc.iteration) if row["attempt"] > 1 else None,
                cwd=str(binding.cwd),
            )
            if desc.worktree:
                from .worktrees import in_worktree, worktree_path

                tc.cwd = str(worktree_path(binding.cwd, desc.worktree[0]))
            on_start(tc)
            coro = self._agent(desc, tc, worker, info) if desc.mode == "agent" else run_compute(desc, tc)
            if desc.worktree:
                coro = in_worktree(binding.cwd, desc.worktree, coro, alive=tc.heartbeat)
            value = await coro
        except Exception as err:  # the task's failure (or a failure to rebuild it) is the attempt's outcome
            record = error_record(err, with_traceback=True)
            return Outcome(
                ok=False, error_json=json.dumps(record, default=str), meta_json=json.dumps(info, default=str),
                heartbeat_json=tc._heartbeat_json if tc is not None else None,
            )
        return Outcome(
            ok=True, result_json=value.model_dump_json(), meta_json=json.dumps(info, default=str), heartbeat_json=tc._heartbeat_json,
        )

    async def _agent(self, desc: TaskDescriptor, tc: TaskContext, worker: str, info: dict[str, Any]) -> Any:
        chain = AgentChain.of(desc, self.disabled_agents)
        key = (tc.run_id, desc.node_id, desc.iteration, tc.attempt)

        def write(events: list[tuple[str, dict[str, Any]]]) -> None:
            if not self.store.claim_still_held(worker, key):
                return  # the owner took the attempt back: its events would describe work it discards
            with self.store.tx(tc.run_id) as tx:
                for event_type, payload in events:
                    tx.event(event_type, node_id=desc.node_id, iteration=desc.iteration, attempt=tc.attempt, **payload)

        events = EventBuffer(write)
        try:
            return await run_agent_attempt(desc, tc, chain, events.emit, tc.heartbeat, info, "")
        finally:
            events.close()

    # -- rebuilding the task ---------------------------------------------------------------

    def _binding(self, run_id: str) -> RunBinding:
        binding = self.bindings.get(run_id)
        if binding is not None:
            return binding
        run = self.store.get_run(run_id)
        if run is None:
            raise RunError(f"no run {run_id!r} in {self.store.label}", retryable=False)
        loaded = load_workflow(run["workflow_spec"])
        input_value, _ = loaded.workflow.validate_input(json.loads(run["input_json"]))
        before = json.loads(run["source_json"] or "{}")
        after = source_fingerprint(loaded.path)
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        binding = RunBinding(
            loaded=loaded, input_value=input_value, carried=json.loads(run["carried_json"]) if run.get("carried_json") else None,
            continued_from=run.get("continued_from"), cwd=loaded.workflow.working_dir(loaded.path),
            source_error=f"this worker's copy of the workflow differs from the run's: {', '.join(changed)}" if changed else None,
        )
        self.bindings[run_id] = binding
        return binding

    def _descriptor(self, binding: RunBinding, row: dict[str, Any]) -> TaskDescriptor:
        if binding.source_error is not None:
            raise RunError(
                f"run {row['run_id']}: {binding.source_error}", retryable=False, code=ErrorCode.SOURCE_CHANGED,
                hint="every worker needs the same workflow files at the same path (one checkout per machine, same commit)",
            )
        wanted = (row["node_id"], row["iteration"])
        cache_key = (row["owner_id"], row["render_no"])
        tasks = binding.renders.get(cache_key)
        found = tasks.get(wanted) if tasks is not None else None
        if found is None:  # not rendered yet for this owner render (or the render moved on): render the run as it is now
            tasks = {desc.key: desc for desc in self._render(binding, row["run_id"]).tasks}
            binding.renders[cache_key] = tasks
            while len(binding.renders) > MAX_CACHED_RENDERS:
                binding.renders.pop(next(iter(binding.renders)))
            found = tasks.get(wanted)
        if found is None:
            raise RunError(
                f"task {row['node_id']!r} iteration {row['iteration']} is not in run {row['run_id']}'s plan as this worker renders it",
                retryable=True, hint="the run's outputs changed under it; the owner retries it",
            )
        return found

    def _render(self, binding: RunBinding, run_id: str) -> Rendered:
        """Render the run from its stored outputs and loop passes (what ``resume`` does first)."""
        state = RunState(self.store, run_id, binding.loaded.models)
        rendered: Rendered | None = None
        for _ in range(3):  # like the loop: models first met in this render may resolve reads on the next
            state.unresolved.clear()
            ctx = Ctx(
                input=binding.input_value, run_id=run_id, reader=state, carried=binding.carried, continued_from=binding.continued_from,
            )
            rendered = render(binding.loaded.workflow, ctx, state.loop_state)
            new_models = {t: m for t, m in rendered.models.items() if state.models.get(t) is not m}
            state.models.update(rendered.models)
            if not state.unresolved or not new_models:
                break
        assert rendered is not None
        return rendered


__all__ = ["Outcome", "RemoteRunner", "RunBinding"]
