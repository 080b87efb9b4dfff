"""Scorers at run time: after a task finished, off the critical path, durable.

When a task with ``scorers=`` finishes, the loop hands its output to :class:`ScoreJobs`, which
starts one asyncio job per (sampled) scorer and returns at once: the next tasks are scheduled
without waiting. Each job builds a :class:`~smithers.authoring.scoring.ScoreInput`, runs the
scorer (a sync scorer in a thread, so it cannot stall the loop) and records the outcome — the
score, or the scorer's exception as ``error`` — as one ``_smithers_scores`` row with its
``ScoreRecorded`` event, in one fenced transaction. A scorer never fails the run.

The run loop does not end the run (finished, failed, or stopping to wait) while jobs are
outstanding: that is the only place it waits for them, after every task is done, so scoring
costs the run's wall time at most the slowest scorer of its last tasks. A cancel (or a lost
lease) drops the outstanding jobs; they are recomputed later.

Durability: the first time a render mounts a node with scorers, :meth:`ScoreJobs.check_missing`
looks up that node's finished attempts (every iteration) and starts a job for each sampled
(attempt, scorer) without a row. So a process killed after the task committed but before its
score did computes the score on resume; a score is recorded at most once (the row's key).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import LeaseLostError
from ..states import EventType
from ..storage.store import Store
from .state import RunState
from .tree import TaskDescriptor

if TYPE_CHECKING:  # the scorer API loads when a task has scorers (start-up of `up`)
    from ..authoring.scoring import Score, ScoreInput, Scorer

    Outcome = tuple[ScoreInput, str, Score | None, dict[str, Any] | None, int]  # (input, scorer name, score, error, latency_ms)

log = logging.getLogger("smithers.scores")
DEFAULT_SCORER_TIMEOUT = 600.0  # seconds; a scorer's own ``timeout`` attribute overrides it


async def _call(scorer: Scorer, inp: ScoreInput) -> Any:
    from ..authoring.scoring import FunctionScorer

    fn = scorer.fn if isinstance(scorer, FunctionScorer) else scorer.score
    result: Any
    if inspect.iscoroutinefunction(fn):
        result = await scorer.score(inp)  # type: ignore[misc]  # an async scorer returns an awaitable
    else:  # a sync scorer runs in a thread: it cannot stall the loop
        result = await asyncio.to_thread(scorer.score, inp)
    if inspect.isawaitable(result):
        result = await result
    return result


async def compute_score(scorer: Scorer, inp: ScoreInput) -> tuple[Score | None, dict[str, Any] | None, int]:
    """Run one scorer: ``(score, None, latency_ms)`` or ``(None, error, latency_ms)``. A scorer
    that takes longer than its ``timeout`` (default 600 s) is recorded as a ``ScorerTimeout`` error:
    a hung scorer must not hold the run's end forever."""
    from ..authoring.scoring import to_score

    started = time.perf_counter()
    timeout = getattr(scorer, "timeout", None) or DEFAULT_SCORER_TIMEOUT
    try:
        result = await asyncio.wait_for(_call(scorer, inp), timeout)
        score, error = to_score(result, name=scorer.name), None
    except TimeoutError:
        score, error = None, {"type": "ScorerTimeout", "message": f"scorer {scorer.name!r} took longer than {timeout:g}s"}
    except Exception as err:  # a scorer is user code: its failure is recorded on the score, never the run's
        import traceback

        score = None
        error = {
            "type": type(err).__name__, "message": str(err) or type(err).__name__,
            "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__))[-8000:],
        }
    return score, error, int((time.perf_counter() - started) * 1000)



def record_scores(store: Store, run_id: str, owner_id: str | None, outcomes: list[Outcome]) -> int:
    """Score rows, each with its ``ScoreRecorded`` event, in one transaction (fenced by
    ``owner_id`` when given). A score the attempt already has is skipped. Returns how many were new."""
    inserted = 0
    with store.tx(run_id, owner_id=owner_id) as tx:
        for inp, name, score, error, latency_ms in outcomes:
            if not tx.record_score(
                inp.node, inp.iteration, inp.attempt, name, value=score.value if score else None,
                reason=score.reason if score else None, meta=score.meta if score else None, error=error, latency_ms=latency_ms,
            ):
                continue
            inserted += 1
            payload: dict[str, Any] = {"scorer": name, "value": score.value if score else None, "latency_ms": latency_ms}
            if error is not None:
                payload["error"] = {"type": error["type"], "message": error["message"][:500]}
            tx.event(EventType.SCORE_RECORDED, node_id=inp.node, iteration=inp.iteration, attempt=inp.attempt, **payload)
    return inserted


def record_score(
    store: Store, run_id: str, owner_id: str | None, inp: ScoreInput, scorer_name: str, score: Score | None,
    error: dict[str, Any] | None, latency_ms: int,
) -> bool:
    """One score row and its event (see :func:`record_scores`). False when it already existed."""
    return record_scores(store, run_id, owner_id, [(inp, scorer_name, score, error, latency_ms)]) == 1


def attempt_input(
    store: Store, run_id: str, desc: TaskDescriptor | None, record: dict[str, Any], *, node_id: str, input_value: Any, output: Any,
    expected: Any, model: Any = None,
) -> ScoreInput:
    """The :class:`ScoreInput` of one finished attempt (``record``: a row of ``finished_attempts``)."""
    from ..authoring.scoring import ScoreInput

    started, finished = record.get("started_at_ms"), record.get("finished_at_ms")
    duration = (finished - started) / 1000 if isinstance(started, int) and isinstance(finished, int) else 0.0
    same_iteration = desc is not None and desc.iteration == record["iteration"]
    return ScoreInput(
        run_id=run_id, node=node_id, iteration=record["iteration"], attempt=record["attempt"], input=input_value, output=output,
        model=model or (desc.model if desc is not None else None), prompt=desc.task.prompt if same_iteration and desc else None,
        duration=max(duration, 0.0),
        # only agents report usage; a compute or static task skips the lookup
        usage=store.usage_of(run_id, node_id, record["iteration"], record["attempt"]) if desc is None or desc.mode == "agent" else {},
        expected=expected, meta=dict(record.get("meta") or {}),
    )


class ScoreJobs:
    """The scoring jobs of one run loop."""

    def __init__(self, store: Store, run_id: str, owner_id: str, state: RunState, input_value: Any, wake: Callable[[], None]) -> None:
        self.store = store
        self.run_id = run_id
        self.owner_id = owner_id
        self.state = state
        self.input_value = input_value
        self.wake = wake
        self.jobs: set[asyncio.Task[None]] = set()
        self.started: set[tuple[str, int, int, str]] = set()  # (node, iteration, attempt, scorer) started by this process
        self.checked: set[str] = set()  # node ids whose missing scores were looked for
        self._expected: tuple[Any] | None = None
        self._inputs: dict[tuple[str, int, int], ScoreInput] = {}  # per attempt, shared by its scorers
        self._pending: list[Outcome] = []  # computed, not yet written: written together, one commit per burst
        self._flush_due = False

    @property
    def outstanding(self) -> bool:
        return bool(self.jobs or self._pending)

    @property
    def expected(self) -> Any:
        """The eval case's expected value (None for a run that is not an eval case); read once."""
        if self._expected is None:
            tag = self.store.eval_run(self.run_id)
            self._expected = (tag["expected"] if tag else None,)
        return self._expected[0]

    def task_finished(self, desc: TaskDescriptor, attempt: int, value: Any) -> None:
        """A task's output just committed: score it (returns at once)."""
        for scorer in desc.task.scorers:
            self._start(desc, desc.node_id, desc.iteration, attempt, value, scorer)

    def check_missing(self, tasks: list[TaskDescriptor]) -> None:
        """Start the jobs for scores that finished attempts of these nodes should have but lack
        (a previous process died first). Each node id is looked up once per process."""
        for desc in tasks:
            if not desc.task.scorers or desc.node_id in self.checked:
                continue
            self.checked.add(desc.node_id)
            if not self.state.finished_iters.get(desc.node_id):
                continue  # nothing of it finished before this process: task_finished scores what finishes now
            have = self.store.score_keys(self.run_id, desc.node_id)
            for record in self.store.finished_attempts(self.run_id, desc.node_id):
                for scorer in desc.task.scorers:
                    if (record["iteration"], record["attempt"], scorer.name) in have:
                        continue
                    value = self.state.output(desc.node_id, record["iteration"])
                    if value is not None:
                        self._start(desc, desc.node_id, record["iteration"], record["attempt"], value, scorer)

    def _start(self, desc: TaskDescriptor, node_id: str, iteration: int, attempt: int, value: Any, scorer: Scorer) -> None:
        from ..authoring.scoring import is_sampled

        key = (node_id, iteration, attempt, scorer.name)
        if key in self.started or not is_sampled(scorer.sampling, self.run_id, *key):
            return
        self.started.add(key)
        job = asyncio.ensure_future(self._score(desc, node_id, iteration, attempt, value, scorer))
        self.jobs.add(job)
        job.add_done_callback(self._done)

    def _input(self, desc: TaskDescriptor, node_id: str, iteration: int, attempt: int, value: Any) -> ScoreInput:
        inp = self._inputs.get((node_id, iteration, attempt))
        if inp is None:
            records = [r for r in self.store.finished_attempts(self.run_id, node_id, iteration) if r["attempt"] == attempt]
            record = records[0] if records else {"iteration": iteration, "attempt": attempt}
            inp = self._inputs[(node_id, iteration, attempt)] = attempt_input(
                self.store, self.run_id, desc, record, node_id=node_id, input_value=self.input_value, output=value, expected=self.expected,
            )
        return inp

    async def _score(self, desc: TaskDescriptor, node_id: str, iteration: int, attempt: int, value: Any, scorer: Scorer) -> None:
        inp = self._input(desc, node_id, iteration, attempt, value)
        score, error, latency_ms = await compute_score(scorer, inp)
        self._pending.append((inp, scorer.name, score, error, latency_ms))
        if not self._flush_due:  # the scores that land in this turn of the event loop share one commit
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        outcomes, self._pending = self._pending, []
        if not outcomes:
            return
        try:
            record_scores(self.store, self.run_id, self.owner_id, outcomes)
        except LeaseLostError:
            pass  # another process owns the run now: its resume computes these scores
        except Exception as err:  # a broken store fails the run elsewhere; scoring only reports it
            log.warning("could not record %d score(s) in run %s: %s", len(outcomes), self.run_id, err)
        finally:
            for inp, *_ in outcomes:
                self._inputs.pop((inp.node, inp.iteration, inp.attempt), None)
            self.wake()

    def _done(self, job: asyncio.Task[None]) -> None:
        self.jobs.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.warning("could not record a score in run %s: %s", self.run_id, job.exception())
        self.wake()

    def cancel(self) -> None:
        """Drop the outstanding jobs and unwritten scores (a cancel or a lost lease): they are
        recomputed on resume."""
        for job in list(self.jobs):
            job.cancel()
        self._pending.clear()


__all__ = ["ScoreJobs", "attempt_input", "compute_score", "record_score", "record_scores"]
