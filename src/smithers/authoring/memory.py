"""Memory on a task: what to recall into an agent's prompt and where to remember its output.

>>> Task("plan", output=Plan, agent=claude, prompt="Plan the release",
...      memory=Memory(recall=Recall("workflow:release", "release checklist pitfalls", k=3),
...                    remember=Remember("workflow:release", "last-plan")))   # doctest: +SKIP

These are plain descriptions (no database): the engine (:mod:`smithers.engine.memory`) does the
recall before the agent's first turn and writes the remembered fact in the transaction that
finishes the task. The facts API itself is :mod:`smithers.memory`.

A namespace, a query and a key may each be a string or a function of ``ctx`` (the workflow's
``ctx``: ``ctx.input``, ``ctx.output(id)``, ``ctx.run_id``), called when the task runs; a key
may also be a function of ``(ctx, output)`` (the validated output), e.g. to key facts by a
field of the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MemoryNamespaceError, RenderError, UserError
from .policies import Duration, parse_duration

NAMESPACE_KINDS = ("workflow", "agent", "user")
_NAMESPACE = re.compile(r"(workflow|agent|user):([A-Za-z0-9._@/+-][A-Za-z0-9._@/+:-]{0,199})")  # fullmatch

Embedder = Callable[[str], Sequence[float]]
"""An embedding function: text in, a vector of floats out (any length, the same every call)."""

Text = str | Callable[..., str]
"""A string, or a function of ``ctx`` (a key: also of ``(ctx, output)``) returning one."""


def check_namespace(namespace: Any) -> str:
    """``namespace`` itself if it is ``global``, ``workflow:ID``, ``agent:NAME`` or ``user:ID``
    (ID: letters, digits and ``. _ - @ / + :``, at most 200), else :class:`MemoryNamespaceError`
    naming it.

    >>> check_namespace("agent:reviewer")
    'agent:reviewer'
    """
    if isinstance(namespace, str) and (namespace == "global" or _NAMESPACE.fullmatch(namespace)):
        return namespace
    raise MemoryNamespaceError(
        f"{namespace!r} is not a memory namespace",
        hint="use 'global', 'workflow:ID', 'agent:NAME' or 'user:ID' (ID: letters, digits and . _ - @ / + :)",
        details={"namespace": namespace},
    )


def check_key(key: Any) -> str:
    """A fact key: a non-empty string of at most 500 characters without control characters."""
    if not isinstance(key, str) or not key or len(key) > 500 or any(ord(c) < 32 for c in key):
        raise UserError(
            f"{key!r} is not a memory key", hint="use a non-empty string of at most 500 printable characters",
            details={"key": key},
        )
    return key


def embedder_name(embed: Embedder) -> str:
    """What identifies an embedding function's vectors: its ``name`` attribute, else its
    qualified name. Vectors stored under another name are recomputed, never compared."""
    name = getattr(embed, "name", None)
    if isinstance(name, str) and name:
        return name
    return f"{getattr(embed, '__module__', '?')}.{getattr(embed, '__qualname__', type(embed).__qualname__)}"


def _check_text(value: Any, what: str) -> None:
    if not (isinstance(value, str) and value) and not callable(value):
        raise RenderError(f"{what} must be a non-empty string or a function of ctx, got {value!r:.60}")


def _check_namespace_spec(namespace: Any, what: str) -> None:
    if callable(namespace):
        return
    try:
        check_namespace(namespace)
    except MemoryNamespaceError as err:
        raise RenderError(f"{what}: {err.message}", hint=err.hint) from None


@dataclass(frozen=True, slots=True)
class Recall:
    """Before the agent's first turn, put the ``k`` facts of ``namespace`` that best match
    ``query`` into its prompt (a delimited ``<memory>`` section; nothing when none match).

    >>> Recall("agent:reviewer", "style rules for python", k=3).k
    3
    """

    namespace: Text
    query: Text
    k: int = 5

    def __post_init__(self) -> None:
        _check_namespace_spec(self.namespace, "Recall namespace")
        _check_text(self.query, "Recall query")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or not 1 <= self.k <= 100:
            raise RenderError(f"Recall k must be an int from 1 to 100, got {self.k!r}")


@dataclass(frozen=True, slots=True)
class Remember:
    """Store the task's validated output (its JSON) as the fact ``key`` of ``namespace``,
    replacing an earlier value, for ``ttl`` (None: until forgotten). Written in the same
    transaction as the task's finish.

    >>> Remember("workflow:nightly", "last-summary", ttl="30d").ttl
    '30d'
    """

    namespace: Text
    key: Text
    ttl: Duration | None = None

    def __post_init__(self) -> None:
        _check_namespace_spec(self.namespace, "Remember namespace")
        _check_text(self.key, "Remember key")
        if not callable(self.key):
            try:
                check_key(self.key)
            except UserError as err:
                raise RenderError(f"Remember key: {err.message}", hint=err.hint) from None
        try:
            parse_duration(self.ttl, field="Remember ttl")
        except ValueError as err:
            raise RenderError(str(err)) from None


@dataclass(frozen=True, slots=True)
class Memory:
    """A task's memory: ``recall`` (agent tasks) and/or ``remember`` (agent and compute tasks).
    ``embed``: an embedding function; recall then ranks by cosine similarity instead of BM25
    (see :mod:`smithers.memory`).

    >>> Memory(remember=Remember("global", "greeting")).recall is None
    True
    """

    recall: Recall | None = None
    remember: Remember | None = None
    embed: Embedder | None = None

    def __post_init__(self) -> None:
        if self.recall is None and self.remember is None:
            raise RenderError("Memory needs recall=Recall(...), remember=Remember(...) or both")
        if self.recall is not None and not isinstance(self.recall, Recall):
            raise RenderError(f"Memory recall= must be a Recall(...), got {self.recall!r:.60}")
        if self.remember is not None and not isinstance(self.remember, Remember):
            raise RenderError(f"Memory remember= must be a Remember(...), got {self.remember!r:.60}")
        if self.embed is not None and not callable(self.embed):
            raise RenderError(f"Memory embed= must be a function of text returning a vector, got {self.embed!r:.60}")


def check_task_memory(task_id: str, mode: str, memory: Any) -> Memory | None:
    """Validate ``Task(..., memory=...)`` for a task of ``mode``: a RenderError naming the task."""
    if memory is None:
        return None
    if not isinstance(memory, Memory):
        raise RenderError(f"task {task_id!r}: memory= must be a Memory(...), got {memory!r:.60}",
                          hint="memory=Memory(recall=Recall(ns, query), remember=Remember(ns, key))")
    if mode == "static":
        raise RenderError(f"task {task_id!r}: memory= needs an agent or compute task (a static value is known already)",
                          hint="write the fact with smithers.memory.open().set(...), or make the task run=lambda: {...}")
    if memory.recall is not None and mode != "agent":
        raise RenderError(f"task {task_id!r}: Recall puts facts into an agent's prompt; this is a {mode} task",
                          hint="a compute task can read facts with smithers.memory.open().recall(...)")
    return memory


__all__ = ["Embedder", "Memory", "Recall", "Remember", "check_key", "check_namespace", "check_task_memory", "embedder_name"]
