"""The run loop. Read this file first.

    render(ctx) ─> plan ─> schedule ─> execute ─> persist ─┐
       ^                                                   │
       └───── re-render when an output the render read changed

One asyncio task drives everything: it renders, starts every ready task at once (no waves),
waits for the first completion, timeout or wake-up, persists what happened, and repeats.
Static tasks complete inline; compute and agent attempts run as asyncio tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from ..authoring.context import Ctx, TaskContext
from ..authoring.workflow import Workflow
from ..errors import (
    ErrorCode,
    HeartbeatTimeoutError,
    InvalidOutputError,
    LeaseLostError,
    RenderError,
    RunError,
    TaskTimeoutError,
)
from ..events.ndjson import NdjsonSink, run_dir
from ..states import EventType, NodeStatus, RunStatus
from ..storage.lease import Owner, release_run, renew_lease
from ..storage.store import Store, now_ms
from .agent_events import EventBuffer
from .agent_task import AgentChain, run_agent_attempt
from .cache import TaskCache
from .execute import run_compute, run_static
from .file_snapshots import RunSnapshots, open_snapshots
from .lineage import continue_as_new
from .persist import Persister, error_info
from .plan import Plan
from .render import Rendered, render
from .schedule import take_startable
from .scoring import ScoreJobs
from .state import RunState
from .subflow import ChildRunWaiting, child_outcome, open_child
from .tree import TaskDescriptor
from .waits import WaitFailed, WaitFinished, WaitOutcome, WaitReopened, Waits, WaitSkipped, subtree_tasks

MAINTENANCE_EVERY = 0.25  # seconds: lease heartbeat, cancel polling, task heartbeat flush
YIELD_EVERY = 0.02  # seconds of inline (static) work before letting other coroutines run
EXIT_SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Step(Enum):
    """Where one pass of the loop goes after a phase."""

    NEXT = "next"  # on to the next phase of this pass
    REPLAN = "replan"  # start the pass over: a render is due, a loop moved on, or the run handed over


@dataclass(frozen=True, slots=True)
class Started:
    """What starting the ready tasks did: the next step, and the next retry wake-up (epoch ms)."""

    step: Step
    wake_at_ms: int | None


class Reloader(Protocol):
    """Hot reload (``up --hot``, implemented in engine/hot.py): watches the workflow's files from
    ``start`` to ``stop`` (calling ``wake``, thread-safe, on a change); the loop calls ``reload``
    at a safe point, the top of a pass, when ``due``."""

    def start(self, wake: Callable[[], object]) -> None: ...
    def due(self) -> bool: ...
    def reload(self, engine: RunLoop) -> None: ...
    def stop(self) -> None: ...


@dataclass(eq=False)
class Running:
    desc: TaskDescriptor
    attempt: int
    tc: TaskContext
    task: asyncio.Task[Any]
    deadline: float | None
    failed_as: BaseException | None = None  # set when the loop cancels it for a timeout
    beats_flushed: int = 0
    info: dict[str, Any] | None = None
    memory: Any = None  # a TaskMemory (engine.memory) for a task with memory=: its Recall and Remember


class RunLoop:
    def __init__(
        self, *, store: Store, run_id: str, workflow: Workflow, input_value: Any, owner: Owner, state: RunState,
        max_concurrency: int, cwd: str, handle_signals: bool = False, stay_alive: bool = False,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.workflow = workflow
        self.input_value = input_value
        self.owner = owner
        self.state = state
        self.persist = Persister(store, run_id, owner.id, state)
        self.max_concurrency = max_concurrency
        self.cwd = cwd
        self.handle_signals = handle_signals
        self.running: dict[tuple[str, int], Running] = {}
        self.plan: Plan | None = None
        self.rendered: Rendered | None = None
        self.needs_render = True
        self.changed_since_render = False
        self.failure: dict[str, Any] | None = None
        self.cancel_reason: str | None = None
        self.exit_signal: int | None = None
        self.wake = asyncio.Event()
        self.next_maintenance = 0.0
        self.rng = random.Random()
        self.disabled_agents: set[int] = set()  # agents that failed with a configuration error stay off for the run
        self.stay_alive = stay_alive  # `up --wait`: keep waiting for decisions, signals and timers instead of exiting
        self.waits = Waits(store, run_id, self.persist, state)
        self.waiting_status: str | None = None
        self.carried: Any = None  # what a ContinueAsNew handed this run
        self.continued_from: str | None = None
        self.next_run_id: str | None = None  # set when a ContinueAsNew handed the work to a fresh run
        self.reloader: Reloader | None = None  # `--hot`: picks up edits to the workflow (engine/hot.py)
        self.cache = TaskCache(store, run_id, workflow.name)  # tasks with cache=: lookups at start, stores at finish
        self.scores = ScoreJobs(store, run_id, owner.id, state, input_value, self.wake.set)  # scorers, off the critical path
        self.snapshots: RunSnapshots | None = None  # the working tree at start and after attempts (file_snapshots.py)
        self.remote: Any = None  # a RemoteAttempts (engine/remote.py) when a worker drives the run: attempts go to the queue

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> str:
        """Drive the run until it finishes, fails or is cancelled. Returns the final status."""
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig, name in EXIT_SIGNALS.items():
                loop.add_signal_handler(sig, self._on_signal, sig, name)
        try:
            if self.reloader is not None:
                self.reloader.start(functools.partial(loop.call_soon_threadsafe, self.wake.set))
            self.snapshots = open_snapshots(self.store, self.run_id, self.persist, self.cwd)
            return await self._drive()
        except LeaseLostError:
            self._abandon_running()
            return "lease-lost"
        finally:
            self.scores.cancel()  # only jobs a cancel or a lost lease left behind: recomputed on resume
            if self.handle_signals:
                for sig in EXIT_SIGNALS:
                    loop.remove_signal_handler(sig)
            if self.reloader is not None:
                self.reloader.stop()
            release_run(self.store, self.run_id, self.owner)

    async def _drive(self) -> str:
        """One pass per turn: check in, plan, start what is ready, settle or wait. Each phase
        returns a :class:`Step` saying where the pass goes next."""
        while True:
            if self.next_run_id is not None:  # a ContinueAsNew handed the work to a fresh run
                return RunStatus.CONTINUED
            self._maintenance()
            if self.cancel_reason is not None:
                return await self._cancel(self.cancel_reason)
            if self.reloader is not None and self.reloader.due():      # hot reload: between passes, no commit open
                self.reloader.reload(self)
            if self._plan_phase() is Step.REPLAN:                       # ① render + ② plan
                continue
            started = await self._start_phase()                         # ③ schedule + ④ execute
            if started.step is Step.REPLAN:
                continue
            if not self.running:
                settled = self._settle(started.wake_at_ms)
                if not isinstance(settled, Step):  # the run ended (or stopped to wait): its status
                    return settled
                if settled is Step.REPLAN:
                    continue
            await self._wait(started.wake_at_ms)                        # ⑤ persist what finished

    def _plan_phase(self) -> Step:
        """Render when a render is due (and the run has not failed), then move finished loops on.
        REPLAN when the pass must start over: a wait the render picked up ended with an output
        it reads (mount what that unlocks first), or a loop moved on (or handed over)."""
        if self.needs_render and self.failure is None:
            self._render_or_fail()
            if self.needs_render:
                return Step.REPLAN
        return Step.REPLAN if self._advance_loops() else Step.NEXT

    async def _start_phase(self) -> Started:
        """Start what is ready (nothing once the run has failed). REPLAN when the run handed over
        or a finished task's output is read by the render (once failed nothing re-renders:
        looping would spin)."""
        wake_at_ms = await self._start_ready() if self.failure is None else None
        if self.next_run_id is not None or (self.needs_render and self.failure is None):
            return Started(Step.REPLAN, wake_at_ms)
        return Started(Step.NEXT, wake_at_ms)

    async def _first_snapshot(self, first: asyncio.Task[Any] | None) -> None:
        """Wait for the run's first snapshot (file_snapshots.py) before starting tasks that can
        change files, keeping the lease and the waits alive meanwhile."""
        if first is None:
            return
        while not first.done():
            await asyncio.wait({first}, timeout=MAINTENANCE_EVERY)
            self._maintenance()
        first.result()  # a lost lease while recording it stops the run like anywhere else

    def _settle(self, wake_at_ms: int | None) -> str | Step:
        """Nothing is running: the run failed or finished (its status), only waits are left (the
        waiting status, or NEXT with ``stay_alive``), a retry is due later (NEXT), or one more
        render must confirm that nothing new mounts (REPLAN)."""
        assert self.plan is not None
        if self.failure is not None or self.plan.blocked_failures:
            if self.scores.outstanding:
                return Step.NEXT  # the run ends (or stops to wait) once its scores have landed; nothing else waits for them
            error = self.failure or self._blocked_error()
            self.persist.run_status(RunStatus.FAILED, EventType.RUN_FAILED, error=error, finished=True)
            return RunStatus.FAILED
        if self.plan.finished and not self.waits.waiting:
            if self.changed_since_render:  # confirm with one fresh render that nothing new mounts
                self.needs_render = True
                return Step.REPLAN
            if self.scores.outstanding:
                return Step.NEXT
            self.persist.run_status(RunStatus.FINISHED, EventType.RUN_FINISHED, finished=True)
            return RunStatus.FINISHED
        if self.waits.waiting and wake_at_ms is None and not self.plan.ready and not self.plan.ready_loops:
            return Step.NEXT if self.scores.outstanding else self._settle_waiting() or Step.NEXT
        if wake_at_ms is None and not self.plan.ready and not self.plan.ready_loops and not self.scores.outstanding:
            error = {"type": "Stalled", "code": "TASK_FAILED", "message": "nothing can run and nothing is running; the plan is stuck"}
            self.persist.run_status(RunStatus.FAILED, EventType.RUN_FAILED, error=error, finished=True)
            return RunStatus.FAILED
        return Step.NEXT

    def _settle_waiting(self) -> str | None:
        """Only waits are left: record the waiting status; exit (the default) or keep waiting.
        The status, its ``RunWaiting`` event and ``wake_at_ms`` commit together (fenced by the
        lease): a crash can never leave a waiting run without the time it must be woken at."""
        status = self.waits.run_status() or RunStatus.WAITING_EVENT
        if status != self.waiting_status:
            self.waiting_status = status
            self.persist.run_status(
                RunStatus(status), EventType.RUN_WAITING, waiting_for=self.waits.summary(), wake_at_ms=self.waits.next_deadline()
            )
        return None if self.stay_alive else status

    def _resume_from_waiting(self) -> None:
        if self.waiting_status is not None:
            self.waiting_status = None
            self.persist.run_status(RunStatus.RUNNING, EventType.RUN_WAIT_ENDED)  # clears wake_at_ms in the same commit

    # -- ① render, ② plan ----------------------------------------------------------------

    def _render_or_fail(self) -> None:
        """Render; a render error after the first render fails the run like a task failure does:
        nothing new starts, in-flight attempts finish and are recorded, then the run is failed
        with the error (which names the id). The first render's errors propagate."""
        try:
            self._render()
        except RenderError as err:
            if self.plan is None:
                raise
            self.failure = {"type": type(err).__name__, **err.to_dict()}
            self.needs_render = False

    def _render(self) -> None:
        for _ in range(3):
            self.state.unresolved.clear()
            ctx = Ctx(
                input=self.input_value, run_id=self.run_id, reader=self.state, carried=self.carried, continued_from=self.continued_from,
            )
            rendered = render(self.workflow, ctx, self.state.loop_state)
            new_models = {t: m for t, m in rendered.models.items() if self.state.models.get(t) is not m}
            self.state.models.update(rendered.models)
            if not self.state.unresolved or not new_models:
                break
        if self.state.unresolved:
            raise RenderError(
                f"cannot read the output of {', '.join(sorted(self.state.unresolved))}: its model is not known to this workflow",
                hint="define or import the output model in the workflow file",
            )
        self.persist.commit_render(rendered.root, rendered.tasks)
        by_key = {d.key: d for d in rendered.tasks}
        for running in self.running.values():  # running tasks keep their slot in the new plan's groups
            fresh = by_key.get(running.desc.key)
            if fresh is not None:
                running.desc = fresh
                for group in fresh.groups:
                    group.in_flight += 1
        self.rendered = rendered
        self.cache.note_render(rendered, self.state)
        self.plan = Plan(rendered.root, self.state.status_of)
        self.scores.check_missing(rendered.tasks)  # scores a previous process died before recording
        self.needs_render = False
        self.changed_since_render = False
        for desc in self.plan.waiting:
            self.waits.adopt(desc)
        if self.plan.waiting:
            self._apply_waits(self.waits.poll())  # a decision, answer or signal may have arrived while no process ran the run

    def _advance_loops(self) -> bool:
        """Loops whose pass finished (or whose ``until`` holds) move on. Returns whether one did."""
        assert self.plan is not None
        advanced = False
        while self.plan.ready_loops and self.failure is None:
            loop = self.plan.ready_loops.pop()
            if loop.done or loop.loop_id is None:
                continue
            if loop.until:
                self.persist.set_loop(loop.loop_id, loop.iteration, True)
            elif loop.iteration + 1 >= loop.max_iterations:
                if loop.on_max_reached == "fail":
                    self.failure = {
                        "type": "LoopMaxReached", "code": str(ErrorCode.LOOP_MAX_REACHED),
                        "message": f"loop {loop.loop_id!r} reached max_iterations={loop.max_iterations} without its until condition",
                    }
                    return True
                self.persist.set_loop(loop.loop_id, loop.iteration, True)
            elif loop.continue_every and (loop.iteration + 1) % loop.continue_every == 0 and not self.running:
                # hand the loop over to a fresh run: its next pass, and its newest outputs for feedback
                carry = [
                    (t.node_id, t.iteration, t.table) for t in subtree_tasks(loop) if self.state.status_of(t.key) == NodeStatus.FINISHED
                ]
                self._continue_as_new(None, loops={loop.loop_id: loop.iteration + 1}, carry=carry)
                return True
            else:
                self.persist.set_loop(loop.loop_id, loop.iteration + 1, False)
            loop.done = True
            advanced = self.needs_render = True
        return advanced

    # -- ③ schedule, ④ execute -----------------------------------------------------------

    async def _start_ready(self) -> int | None:
        """Start every ready task the limits allow. Static tasks complete inline. Returns the
        next retry wake-up (epoch ms) if some ready task is backing off."""
        assert self.plan is not None
        plan, state = self.plan, self.state
        yield_at = time.monotonic() + YIELD_EVERY
        while True:
            free = self.max_concurrency - len(self.running)
            batch, wake = take_startable(
                plan, status_of=state.status_of, retry_at_of=state.retry_at_of, free_slots=max(free, 1) if free > 0 else 0, now_ms=now_ms(),
            )
            if not batch:
                return wake
            if self.snapshots is not None:  # the run's first snapshot, before its first task that can change files
                await self._first_snapshot(self.snapshots.first_needed(batch))
            with self.store.batch(self.run_id, owner_id=self.owner.id):
                for desc in batch:
                    if desc.task.skip_if:
                        self.persist.skip(desc)
                        self._release_groups(desc)
                        self._terminal(desc)
                    elif desc.task.wait is not None:  # Approval, HumanTask, Signal, Timer
                        self._release_groups(desc)
                        self._begin_wait(desc)
                    elif desc.task.needs_approval and not self._gate_open(desc):
                        self._release_groups(desc)
                    elif desc.task.cache is not None and self._take_from_cache(desc):
                        continue
                    elif desc.mode == "static":
                        self._complete_static(desc)
                    elif desc.mode == "continue":
                        self._release_groups(desc)
                        self._continue_as_new(desc)
                        return wake
                    else:
                        self._spawn(desc)
            if self.needs_render or self.failure is not None:
                return wake
            if time.monotonic() >= yield_at:
                await asyncio.sleep(0)
                self._maintenance()
                if self.cancel_reason is not None:
                    return wake
                yield_at = time.monotonic() + YIELD_EVERY

    def _complete_static(self, desc: TaskDescriptor) -> None:
        self._release_groups(desc)
        try:
            value = run_static(desc)
        except InvalidOutputError as err:
            attempt = self.state.nodes[desc.key].attempts + 1
            self._failed(desc, attempt, err, static=True)
            return
        if desc.task.cache is None:
            self.persist.finish_static(desc, value)
        else:
            with self.persist.tx() as tx:  # the cache entry commits with the finish
                self.persist.finish_static(desc, value)
                self.cache.remember(tx, desc, value)
        self.scores.task_finished(desc, self.state.nodes[desc.key].attempts, value)
        self._finished(desc)

    def _take_from_cache(self, desc: TaskDescriptor) -> bool:
        """A task with ``cache=`` is ready: finish it from the cache (a hit), or say it must run.
        A failing ``Cache(key=...)`` function fails the task."""
        try:
            hit = self.cache.lookup(desc, self.input_value)
        except RunError as err:
            self._release_groups(desc)
            self._failed(desc, self.state.nodes[desc.key].attempts + 1, err, static=True)
            return True
        if hit is None:
            return False
        self._release_groups(desc)
        self.cache.apply_hit(self.persist, desc, hit)
        self._finished(desc)
        return True

    # -- waits (waits.py decides how a wait ends; these apply the outcome) ---------------------

    def _begin_wait(self, desc: TaskDescriptor) -> None:
        outcome = self.waits.begin(desc)
        if outcome is not None:
            self._apply_wait(outcome)
        elif desc.key in self.waits.waiting and desc.task.wait_async:
            self._terminal(desc)  # an async wait does not hold back what comes after it

    def _gate_open(self, desc: TaskDescriptor) -> bool:
        """A ``needs_approval`` task is ready: whether it may run now (approved)."""
        verdict = self.waits.gate(desc)
        if isinstance(verdict, WaitFailed):
            self._apply_wait(verdict)
        return isinstance(verdict, WaitReopened)

    def _apply_waits(self, outcomes: list[WaitOutcome]) -> None:
        for outcome in outcomes:
            self._apply_wait(outcome)

    def _apply_wait(self, outcome: WaitOutcome) -> None:
        """Apply how a wait ended: one transaction with the outcome's own writes (the consumed
        signal, the fired timer), then the plan moves on."""
        self._resume_from_waiting()
        desc = outcome.desc
        with self.persist.tx() as tx:
            if outcome.writes is not None:
                outcome.writes(tx)
            if isinstance(outcome, WaitFinished):
                self.persist.finish_wait(desc, outcome.value, outcome.event, outcome.payload)
                if outcome.skip_gated is not None:
                    self._skip_gated(desc, outcome.skip_gated)
            elif isinstance(outcome, WaitFailed):
                attempt = self.state.nodes[desc.key].attempts + 1
                self._failed(desc, attempt, outcome.error, static=True)
            elif isinstance(outcome, WaitSkipped):
                self.persist.skip(desc, reason=outcome.reason)
                if outcome.subtree:
                    self._skip_gated(desc, outcome.reason)
            else:
                self.persist.reopen(desc, outcome.event, outcome.payload)
        if isinstance(outcome, WaitFinished):
            self._finished(desc)
        elif isinstance(outcome, WaitSkipped):
            self.changed_since_render = True
            self._terminal(desc)
        elif isinstance(outcome, WaitReopened) and self.plan is not None:
            self.plan.push(desc)  # ready to run (again)

    def _skip_gated(self, desc: TaskDescriptor, reason: str) -> None:
        """Skip the not-yet-run children an Approval gates (inside the caller's transaction)."""
        gate = desc.node.parent if desc.node is not None else None
        if gate is None or gate.kind != "approval":
            return
        for other in subtree_tasks(gate):
            if other is not desc and self.state.status_of(other.key) in (NodeStatus.PENDING, NodeStatus.CANCELLED):
                self.persist.skip(other, reason=reason)

    def _spawn(self, desc: TaskDescriptor) -> None:
        attempt = self.persist.start_attempt(desc)
        # a worktree is created (git, in a thread) by the attempt itself, not here inside the batch
        cwd = self.cwd
        if desc.worktree:  # the worktree code is imported by a run that has a Worktree node
            from .worktrees import worktree_path

            cwd = str(worktree_path(Path(self.cwd), desc.worktree[0]))
        tc = TaskContext(
            run_id=self.run_id, node_id=desc.node_id, iteration=desc.iteration, attempt=attempt,
            last_heartbeat=self.store.last_heartbeat(self.run_id, desc.node_id, desc.iteration) if attempt > 1 else None,
            cwd=cwd,
        )
        coro: Coroutine[Any, Any, BaseModel | ChildRunWaiting]
        memory = self._task_memory(desc) if desc.task.memory is not None else None
        remote = self.remote is not None and self.remote.takes(desc)
        if remote:  # a worker's executor slot runs it (in its own worktree, if any); the outcome comes back here
            coro = self.remote.start(desc, tc)
        elif desc.mode == "agent":
            coro = self._agent_attempt(desc, tc)
        elif desc.mode == "subflow":
            coro = self._subflow_attempt(desc, tc)
        else:
            coro = run_compute(desc, tc)
        if self.snapshots is not None:  # its snapshot_before (taken inside the attempt when it is the first)
            coro = self.snapshots.around(desc, attempt, Path(cwd), coro, alive=tc.heartbeat)
        if desc.worktree and not remote:
            from .worktrees import in_worktree

            coro = in_worktree(Path(self.cwd), desc.worktree, coro, alive=tc.heartbeat)
        if memory is not None:
            coro = memory.remembering(coro)
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda _t: self.wake.set())
        deadline = time.monotonic() + desc.task.timeout if desc.task.timeout else None
        self.running[desc.key] = Running(desc=desc, attempt=attempt, tc=tc, task=task, deadline=deadline, memory=memory)

    def _task_memory(self, desc: TaskDescriptor) -> Any:
        """A task's Recall/Remember, with a ``ctx`` for their functions (smithers.memory loads only for such tasks)."""
        from .memory import TaskMemory

        ctx = Ctx(input=self.input_value, run_id=self.run_id, reader=self.state, carried=self.carried, continued_from=self.continued_from)
        return TaskMemory(self.store, desc, ctx)

    async def _subflow_attempt(self, desc: TaskDescriptor, tc: TaskContext) -> BaseModel | ChildRunWaiting:
        """Run (or resume) the Subflow's child run in this event loop, as a loop of its own."""
        child = open_child(self.store, self.run_id, desc, self.cwd)
        sink = NdjsonSink(run_dir(self.store.home, child.run_id) / "events.ndjson", child.run_id)
        self.store.commit_listeners.append(sink)
        engine = RunLoop(
            store=self.store, run_id=child.run_id, workflow=child.workflow, input_value=child.input_value, owner=child.owner,
            state=child.state, max_concurrency=child.workflow.max_concurrency, cwd=child.cwd, stay_alive=self.stay_alive,
        )
        engine.cache.lookups = self.cache.lookups  # a --no-cache run's child runs look nothing up either
        try:
            status = await engine.run()
        finally:
            self.store.commit_listeners.remove(sink)
            sink.close()
        last_task = engine.rendered.tasks[-1].node_id if engine.rendered is not None and engine.rendered.tasks else None
        return child_outcome(self.store, desc, child, status, last_task)

    def _continue_as_new(
        self, desc: TaskDescriptor | None, *, loops: dict[str, int] | None = None, carry: list[tuple[str, int, str]] | None = None
    ) -> None:
        """Hand over to a fresh run: at a ContinueAsNew node (``desc``), or at a loop's
        continue_as_new_every threshold (``desc`` None; the caller checked nothing is in flight)."""
        if desc is not None and self.running:  # let in-flight work land in this run first
            if self.plan is not None:
                self.plan.push(desc)
            return
        state = (desc.task.meta or {}).get("state") if desc is not None else self.carried
        self.next_run_id = continue_as_new(
            self.store, self.run_id, self.owner.id, carried=state, reason="ContinueAsNew" if desc is not None else "loop",
            loops=loops, carry_nodes=carry, node=desc.key if desc is not None else None,
        )

    async def _agent_attempt(self, desc: TaskDescriptor, tc: TaskContext) -> BaseModel:
        chain = AgentChain.of(desc, self.disabled_agents)

        def write(events: list[tuple[str, dict[str, Any]]]) -> None:
            with self.persist.tx() as tx:
                for event_type, payload in events:
                    tx.event(event_type, node_id=desc.node_id, iteration=desc.iteration, attempt=tc.attempt, **payload)

        running = self.running[desc.key]
        running.info = {}
        events = EventBuffer(write)  # agent events commit in groups; all of them before the outcome
        try:
            recalled = await running.memory.recall_section(events.emit) if running.memory is not None else ""
            return await run_agent_attempt(desc, tc, chain, events.emit, tc.heartbeat, running.info, recalled)
        finally:
            events.close()

    # -- waiting and ⑤ persisting outcomes ------------------------------------------------

    async def _wait(self, wake_at_ms: int | None) -> None:
        now = time.monotonic()
        timeout = max(self.next_maintenance - now, 0.0)
        for running in self.running.values():
            for deadline in (running.deadline, self._heartbeat_deadline(running)):
                if deadline is not None:
                    timeout = min(timeout, max(deadline - now, 0.0))
        for wake in (wake_at_ms, self.waits.next_deadline()):
            if wake is not None:
                timeout = min(timeout, max((wake - now_ms()) / 1000, 0.0))
        if not any(r.task.done() for r in self.running.values()) and self.cancel_reason is None:
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
        self._enforce_deadlines()
        done = [(key, running) for key, running in self.running.items() if running.task.done()]
        if done:
            ended = [(r.desc, r.attempt, r.tc.cwd) for _, r in done if not r.task.cancelled() or r.failed_as is not None]
            taken = await self.snapshots.after(ended) if self.snapshots is not None else []
            with self.store.batch(self.run_id, owner_id=self.owner.id):
                for key, running in done:
                    del self.running[key]
                    self._collect(running)
                if self.snapshots is not None:
                    self.snapshots.record_after(taken)

    def _heartbeat_deadline(self, running: Running) -> float | None:
        limit = running.desc.task.heartbeat_timeout
        return running.tc._heartbeat_at + limit if limit else None

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for running in self.running.values():
            if running.task.done() or running.failed_as is not None:
                continue
            if running.deadline is not None and now >= running.deadline:
                running.failed_as = TaskTimeoutError(
                    f"task {running.desc.node_id!r} attempt {running.attempt} timed out after {running.desc.task.timeout:g}s"
                )
            else:
                hb = self._heartbeat_deadline(running)
                if hb is not None and now >= hb:
                    running.failed_as = HeartbeatTimeoutError(
                        f"task {running.desc.node_id!r} attempt {running.attempt} sent no heartbeat for "
                        f"{running.desc.task.heartbeat_timeout:g}s"
                    )
            if running.failed_as is not None:
                running.task.cancel()

    def _collect(self, running: Running) -> None:
        desc = running.desc
        self._release_groups(desc)
        task = running.task
        if running.failed_as is not None:
            self._failed(desc, running.attempt, running.failed_as, heartbeat_json=running.tc._heartbeat_json, meta=running.info)
            return
        if task.cancelled():
            return  # cancelled by the run's own cancel path, which records it
        err = task.exception()
        if err is not None and self.remote is not None and self.remote.requeue_if_lost(desc, running.attempt, err):
            assert self.plan is not None
            self.plan.push(desc)  # its worker was lost: the task runs again as a fresh attempt
            return
        if err is None and isinstance(task.result(), ChildRunWaiting):  # a Subflow's child waits: so does this node
            self._resume_from_waiting()
            self.waits.child_waiting(desc, running.attempt, task.result())
        elif err is None:
            if desc.task.cache is None and running.memory is None:
                self.persist.finish_success(desc, running.attempt, task.result(), running.info)
            else:
                with self.persist.tx() as tx:  # a Remember's fact and the cache entry commit with the finish
                    if running.memory is not None:
                        running.memory.write(tx)
                    self.persist.finish_success(desc, running.attempt, task.result(), running.info)
                    if desc.task.cache is not None:
                        self.cache.remember(tx, desc, task.result())
            self.scores.task_finished(desc, running.attempt, task.result())
            self._finished(desc)
        else:
            self._failed(desc, running.attempt, err, heartbeat_json=running.tc._heartbeat_json, meta=running.info)

    def _finished(self, desc: TaskDescriptor) -> None:
        self.changed_since_render = True
        reads = self.rendered.reads if self.rendered is not None else ()
        if desc.node_id in reads or desc.task.id in reads:  # inside nested loops a render reads the logical id
            self.needs_render = True
        self._terminal(desc)

    def _terminal(self, desc: TaskDescriptor) -> None:
        if self.plan is not None and desc.node is not None:
            before = len(self.plan.waiting)
            self.plan.task_terminal(desc)
            for waiting in self.plan.waiting[before:]:  # already waiting in the store (a resume): pick the wait up
                self.waits.adopt(waiting)
                outcome = self.waits.check(waiting)
                if outcome is not None:
                    self._apply_wait(outcome)

    def _failed(
        self, desc: TaskDescriptor, attempt: int, err: BaseException, *, heartbeat_json: str | None = None, static: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> None:
        node = self.state.nodes[desc.key]
        retryable = getattr(err, "retryable", True) and not static
        retry_at = None
        if retryable and node.failures < desc.retries and self.failure is None:
            retry_at = now_ms() + int(desc.retry.delay(node.failures + 1, self.rng) * 1000)
        will_retry = self.persist.finish_failure(
            desc, attempt, err, retry_at_ms=retry_at, heartbeat_json=heartbeat_json, static=static, meta=meta
        )
        self.changed_since_render = True
        if will_retry:
            assert self.plan is not None
            self.plan.push(desc)
        elif desc.task.continue_on_fail:
            self._terminal(desc)
        elif self.failure is None:
            info = error_info(err)
            self.failure = {
                "type": info["type"], "code": info.get("code", str(ErrorCode.TASK_FAILED)),
                "message": f"task {desc.node_id!r} failed: {info['message']}", "node_id": desc.node_id, "iteration": desc.iteration,
            }

    def _release_groups(self, desc: TaskDescriptor) -> None:
        for group in desc.groups:
            group.in_flight = max(group.in_flight - 1, 0)

    def _blocked_error(self) -> dict[str, Any]:
        assert self.plan is not None
        desc = self.plan.blocked_failures[0]
        return {
            "type": "TaskFailed", "code": str(ErrorCode.TASK_FAILED), "message": f"task {desc.node_id!r} failed", "node_id": desc.node_id,
        }

    # -- maintenance, cancellation ---------------------------------------------------------

    def _maintenance(self) -> None:
        now = time.monotonic()
        if now < self.next_maintenance:
            return
        self.next_maintenance = now + MAINTENANCE_EVERY
        ours, cancel_requested = renew_lease(self.store, self.run_id, self.owner)
        if not ours:
            raise LeaseLostError(f"run {self.run_id}: another process took over this run")
        if cancel_requested and self.cancel_reason is None:
            self.cancel_reason = "cancel requested"
        if self.waits.waiting:
            self._apply_waits(self.waits.poll())
        beats = []
        for running in self.running.values():
            tc = running.tc
            if tc._beats != running.beats_flushed:
                running.beats_flushed = tc._beats
                at = now_ms() - int((time.monotonic() - tc._heartbeat_at) * 1000)
                beats.append((running.desc, running.attempt, at, tc._heartbeat_json))
        if beats:
            self.persist.save_heartbeats(beats)

    def _on_signal(self, sig: int, name: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = name
            self.exit_signal = sig
        self.wake.set()

    def request_cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self.wake.set()

    async def _cancel(self, reason: str) -> str:
        self.scores.cancel()
        running = list(self.running.values())
        for r in running:
            r.task.cancel()
        if running:
            await asyncio.wait([r.task for r in running], timeout=2.0)
        self.running.clear()
        self.persist.cancel_attempts([(r.desc, r.attempt) for r in running], reason)
        self.persist.run_status(RunStatus.CANCELLED, EventType.RUN_CANCELLED, finished=True, reason=reason)
        return RunStatus.CANCELLED

    def _abandon_running(self) -> None:
        for r in self.running.values():
            r.task.cancel()
        self.running.clear()




__all__ = ["RunError", "RunLoop"]
