"""Scorers: how good was a task's output? (The public face is :mod:`smithers.scorers`.)

A scorer is attached to a task (``Task(..., scorers=[...])``) and runs after the task
finished, off the critical path: it never delays what comes next and never fails the run. It
gets a :class:`ScoreInput` and returns a :class:`Score` (a value in [0, 1], a reason, meta), a
bare number or a bool; it may be sync (run in a thread) or async.

>>> @scorer
... def short(inp: ScoreInput) -> Score:
...     return Score(1.0 if len(inp.output.summary) < 200 else 0.5, reason="length")
>>> Task("analyze", output=Analysis, agent=analyst, prompt="...", scorers=[short, latency(target="30s")])  # doctest: +SKIP

``sampling`` (on every scorer) is a ratio: 0.25 scores about one attempt in four. Whether an
attempt is sampled is a hash of (run, node, iteration, attempt, scorer), so a resume agrees
with the process that ran the task.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from ..errors import RenderError
from .policies import Duration, parse_duration


@dataclass(frozen=True)
class Score:
    """What a scorer says: ``value`` in [0, 1] (1 is best), an optional ``reason`` and ``meta``."""

    value: float
    reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreInput:
    """What a scorer sees about one finished attempt.

    ``input`` is the run's input; ``output`` the validated output (an instance of ``model``);
    ``duration`` the attempt's wall time in seconds; ``usage`` the tokens (and cost) its agent
    reported (empty for compute and static tasks); ``expected`` the eval case's expected value
    (None outside ``smithers eval``); ``meta`` the attempt's record (agent, turns, model, ...).
    """

    run_id: str
    node: str
    iteration: int
    attempt: int
    input: Any
    output: Any
    model: type[BaseModel] | None = None
    prompt: str | None = None
    duration: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    expected: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


ScoreResult = Score | float | int | bool


@runtime_checkable
class Scorer(Protocol):
    """Anything with a ``name``, a ``sampling`` ratio and ``score(inp)`` (sync or async)."""

    name: str
    sampling: float

    def score(self, inp: ScoreInput) -> ScoreResult | Awaitable[ScoreResult]: ...


def _check_sampling(sampling: float, name: str) -> float:
    if isinstance(sampling, bool) or not isinstance(sampling, (int, float)) or not 0.0 <= sampling <= 1.0:
        raise RenderError(f"scorer {name!r}: sampling must be a ratio between 0 and 1, got {sampling!r}")
    return float(sampling)


class FunctionScorer:
    """A scorer made from a function of a :class:`ScoreInput` (see :func:`scorer`)."""

    def __init__(
        self, fn: Callable[[ScoreInput], Any], *, name: str | None = None, sampling: float = 1.0, timeout: Duration | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.sampling = _check_sampling(sampling, self.name)
        self.is_async = inspect.iscoroutinefunction(fn)
        try:
            self.timeout = parse_duration(timeout, field=f"scorer {self.name!r} timeout")  # None: the default (600 s)
        except ValueError as err:
            raise RenderError(str(err)) from None

    def score(self, inp: ScoreInput) -> Any:
        return self.fn(inp)

    def __call__(self, inp: ScoreInput) -> Any:  # still callable as the function it wraps
        return self.fn(inp)

    def __repr__(self) -> str:
        return f"scorer({self.name!r})"


def scorer(
    fn: Callable[[ScoreInput], Any] | None = None, *, name: str | None = None, sampling: float = 1.0, timeout: Duration | None = None,
) -> Any:
    """Make a scorer of a function of a :class:`ScoreInput`; bare or with arguments. ``timeout``
    (default 600 s): a slower score is recorded as a ``ScorerTimeout`` error.

    >>> @scorer(name="non-empty", sampling=0.5)
    ... async def non_empty(inp):
    ...     return Score(1.0 if inp.output.summary else 0.0)
    """
    if fn is None:
        return lambda f: FunctionScorer(f, name=name, sampling=sampling, timeout=timeout)
    return FunctionScorer(fn, name=name, sampling=sampling, timeout=timeout)


def as_scorer(obj: Any, *, owner: str) -> Scorer:
    """A scorer object as is; a plain function becomes a :class:`FunctionScorer`. (Duck-typed,
    not ``isinstance(obj, Scorer)``: a render builds every Task again, and a protocol check is slow.)"""
    if isinstance(obj, FunctionScorer):
        return obj
    name = getattr(obj, "name", None)
    if isinstance(name, str) and callable(getattr(obj, "score", None)) and hasattr(obj, "sampling"):
        _check_sampling(obj.sampling, name)
        return obj  # type: ignore[no-any-return]
    if callable(obj):
        return FunctionScorer(obj)
    raise RenderError(
        f"{owner}: scorers must be scorer objects or functions of a ScoreInput, got {type(obj).__name__}",
        hint="decorate a function with @smithers.scorers.scorer, or use schema_adherence(), latency(), llm_judge()",
    )


def scorers_of(items: Any, *, owner: str) -> tuple[Scorer, ...]:
    """Validate ``Task(scorers=...)``: a list of scorers with distinct names."""
    if items is None:
        return ()
    if not isinstance(items, (list, tuple)):
        items = [items]
    out = tuple(as_scorer(item, owner=owner) for item in items)
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RenderError(f"{owner}: two scorers are named {', '.join(map(repr, dupes))}", hint="give one of them name=...")
    return out


def is_sampled(ratio: float, *key: Any) -> bool:
    """Whether the attempt named by ``key`` (run, node, iteration, attempt, scorer) is scored:
    a hash, not a random draw, so every process decides the same."""
    if ratio >= 1.0:
        return True
    if ratio <= 0.0:
        return False
    digest = hashlib.sha256("\x00".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < ratio


def to_score(result: Any, *, name: str) -> Score:
    """A scorer's return value as a :class:`Score`; a value outside [0, 1] is an error."""
    if isinstance(result, Score):
        score = result
    elif isinstance(result, (bool, int, float)):
        score = Score(float(result))
    else:
        raise TypeError(f"scorer {name!r} returned {type(result).__name__}; return a Score, a number or a bool")
    value = float(score.value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"scorer {name!r} returned value {value!r}, outside [0, 1]")
    if not isinstance(score.meta, dict):
        raise TypeError(f"scorer {name!r}: Score.meta must be a dict, got {type(score.meta).__name__}")
    return Score(value, score.reason, score.meta)


# -- built-ins -----------------------------------------------------------------------------------


class SchemaAdherence:
    """1.0 when the output validates and the agent's first reply already did; ``1/turns`` when
    JSON-only or repair turns were needed; 0.0 when the output no longer validates."""

    def __init__(self, *, name: str = "schema_adherence", sampling: float = 1.0) -> None:
        self.name = name
        self.sampling = _check_sampling(sampling, name)

    def score(self, inp: ScoreInput) -> Score:
        model = inp.model or (type(inp.output) if isinstance(inp.output, BaseModel) else None)
        if model is not None:
            data = inp.output.model_dump(mode="json") if isinstance(inp.output, BaseModel) else inp.output
            try:
                model.model_validate(data)
            except ValidationError as err:
                return Score(0.0, reason=f"output does not match {model.__name__}: {err.error_count()} error(s)")
        turns = inp.meta.get("turns")
        if not isinstance(turns, int) or turns <= 1:
            return Score(1.0, reason="valid on the first reply")
        return Score(1.0 / turns, reason=f"valid after {turns} turns (JSON-only or repair turns)", meta={"turns": turns})


def schema_adherence(*, name: str = "schema_adherence", sampling: float = 1.0) -> SchemaAdherence:
    """How readily the output matched its model (see :class:`SchemaAdherence`)."""
    return SchemaAdherence(name=name, sampling=sampling)


class Latency:
    """1.0 at or under ``target``; ``target / duration`` above it."""

    def __init__(self, target: Duration, *, name: str = "latency", sampling: float = 1.0) -> None:
        try:
            parsed = parse_duration(target, field=f"scorer {name!r} target")
        except ValueError as err:
            raise RenderError(str(err)) from None
        if not parsed:
            raise RenderError(f"scorer {name!r}: target must be a positive duration, got {target!r}")
        self.target = parsed
        self.name = name
        self.sampling = _check_sampling(sampling, name)

    def score(self, inp: ScoreInput) -> Score:
        duration = max(inp.duration, 0.0)
        value = 1.0 if duration <= self.target else self.target / duration
        return Score(value, reason=f"{duration:.3g}s against a {self.target:g}s target", meta={"duration_s": duration})


def latency(target: Duration = "30s", *, name: str = "latency", sampling: float = 1.0) -> Latency:
    """Score the attempt's wall time against ``target`` (seconds or ``"30s"``, ``"2m"``)."""
    return Latency(target, name=name, sampling=sampling)


__all__ = [
    "FunctionScorer", "Latency", "SchemaAdherence", "Score", "ScoreInput", "Scorer", "as_scorer", "is_sampled", "latency",
    "schema_adherence", "scorer", "scorers_of", "to_score",
]
