"""The nodes a workflow returns: Task (the only executable node) and the containers.

Containers take children that may be nodes, lists/tuples of nodes (flattened) or
``None``/``False`` (dropped), so fan-out is a comprehension and conditional mounting is
``earlier and Task(...)``.

>>> Sequence(Task("a", output=Out, value={"n": 1}), None, [Task(f"b{i}", output=Out, value={"n": i}) for i in range(2)])
... # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ..errors import RenderError
from .policies import Duration, Retry, parse_duration

if TYPE_CHECKING:
    from .cache import Cache
    from .memory import Memory
    from .scoring import Scorer
    from .waits import WaitSpec

Child = Any  # Node | list | tuple | None | False

# how a Task produces its output: the three a Task is built with, then the nodes that wait, run a
# child run or continue as new (Approval, HumanTask, Signal, Timer, Subflow, ContinueAsNew set theirs)
TaskMode = Literal["static", "compute", "agent", "approval", "human", "signal", "timer", "subflow", "continue"]


def flatten(children: Iterable[Child], owner: str) -> tuple[Node, ...]:
    """Flatten nested lists/tuples and drop ``None``/``False``; anything else that is not a node is an error."""
    out: list[Node] = []
    stack = [iter(children)]
    while stack:
        for child in stack[-1]:
            if child is None or child is False:
                continue
            if isinstance(child, Node):
                out.append(child)
            elif isinstance(child, (list, tuple)):
                stack.append(iter(child))
                break
            else:
                raise RenderError(
                    f"{owner} got a child of type {type(child).__name__} ({child!r:.60}); "
                    "children must be nodes, lists of nodes, or None/False",
                    hint="return Task/Sequence/Parallel/... objects from components",
                )
        else:
            stack.pop()
    return tuple(out)


class Node:
    """Base of every node in a workflow tree."""

    __slots__ = ()
    kind: str = "node"


class Task(Node):
    """The only executable node. Exactly one of ``value=`` (static), ``run=`` (compute) or
    ``agent=`` + ``prompt=`` (agent).

    >>> class Greeting(BaseModel):
    ...     message: str
    >>> Task("greet", output=Greeting, value={"message": "hi"}).mode
    'static'
    """

    __slots__ = (
        "agent", "cache", "continue_on_fail", "heartbeat_timeout", "id", "label", "memory", "meta", "mode", "needs_approval", "output",
        "prompt", "retries", "retry", "run", "scorers", "skip_if", "timeout", "value", "wait", "wait_async",
    )
    kind = "task"

    def __init__(
        self,
        id: str,
        *,
        output: type[BaseModel],
        value: Any = None,
        run: Callable[..., Any] | None = None,
        agent: Any = None,
        prompt: str | None = None,
        retries: int | None = None,
        retry: Retry | None = None,
        timeout: Duration | None = None,
        heartbeat_timeout: Duration | None = None,
        skip_if: bool = False,
        continue_on_fail: bool = False,
        needs_approval: bool = False,
        label: str | None = None,
        meta: dict[str, Any] | None = None,
        memory: Memory | None = None,
        cache: bool | Cache | None = None,
        scorers: Any = None,
    ) -> None:
        self.needs_approval = bool(needs_approval)
        self.wait_async = False
        self.wait: WaitSpec | None = None  # set by the nodes that wait (Approval, HumanTask, Signal, Timer): what for
        if not isinstance(id, str) or not id:
            raise RenderError(f"a Task needs a non-empty string id, got {id!r}", hint='Task("analyze", output=...)')
        if "@" in id or "::" in id:
            raise RenderError(f"task id {id!r} may not contain '@' or '::' (reserved for loop scopes)")
        if not (isinstance(output, type) and issubclass(output, BaseModel)):
            raise RenderError(
                f"task {id!r} has no output model (got {output!r})",
                hint="pass output=SomeModel, a pydantic BaseModel subclass",
            )
        modes = [name for name, given in (("value", value is not None), ("run", run is not None), ("agent", agent is not None)) if given]
        if len(modes) != 1:
            what = "none" if not modes else " and ".join(modes)
            raise RenderError(
                f"task {id!r} must have exactly one of value=, run= or agent=; it has {what}",
                hint="a task is static (value=), compute (run=) or agent (agent= with prompt=)",
            )
        if agent is not None and prompt is None:
            raise RenderError(f"agent task {id!r} needs prompt=")
        if run is not None and not callable(run):
            raise RenderError(f"task {id!r}: run= must be callable, got {type(run).__name__}")
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise RenderError(f"task {id!r}: retries must be a non-negative int, got {retries!r}")
        try:
            self.timeout = parse_duration(timeout, field=f"task {id!r} timeout")
            self.heartbeat_timeout = parse_duration(heartbeat_timeout, field=f"task {id!r} heartbeat_timeout")
        except ValueError as err:
            raise RenderError(str(err)) from None
        self.id = id
        self.output = output
        self.value = value
        self.run = run
        self.agent = agent
        self.prompt = prompt
        mode_of: dict[str, TaskMode] = {"value": "static", "run": "compute", "agent": "agent"}
        self.mode: TaskMode = mode_of[modes[0]]
        self.retries = retries
        self.retry = retry
        self.skip_if = bool(skip_if)
        self.continue_on_fail = bool(continue_on_fail)
        self.label = label
        self.meta = meta
        self.memory: Memory | None = None
        if memory is not None:  # Recall/Remember (smithers.memory): the checks load only for tasks that use it
            from .memory import check_task_memory

            self.memory = check_task_memory(id, self.mode, memory)
        # cache= and scorers= load their modules only for tasks that use them (start-up of `up`)
        self.cache: Cache | None = None
        if cache is not None and cache is not False:  # reuse the output across runs (smithers.authoring.cache)
            from .cache import as_cache

            self.cache = as_cache(cache, id)
        self.scorers: tuple[Scorer, ...] = ()
        if scorers is not None:  # run after the task finished (engine/scoring.py)
            from .scoring import scorers_of

            self.scorers = scorers_of(scorers, owner=f"task {id!r}")

    def __repr__(self) -> str:
        return f"Task({self.id!r}, {self.mode})"


class Sequence(Node):
    """Run children one after another; child n starts when child n-1 is terminal."""

    __slots__ = ("children",)
    kind = "sequence"

    def __init__(self, *children: Child) -> None:
        self.children = flatten(children, "Sequence")


class Parallel(Node):
    """Run children concurrently, at most ``max_concurrency`` of its tasks at a time (None: unbounded)."""

    __slots__ = ("children", "max_concurrency")
    kind = "parallel"

    def __init__(self, *children: Child, max_concurrency: int | None = None) -> None:
        if max_concurrency is not None and (not isinstance(max_concurrency, int) or max_concurrency < 1):
            raise RenderError(f"Parallel max_concurrency must be a positive int or None, got {max_concurrency!r}")
        self.children = flatten(children, "Parallel")
        self.max_concurrency = max_concurrency


class Branch(Node):
    """Mount ``then`` when ``condition`` is truthy, else ``else_`` (which may be None)."""

    __slots__ = ("children", "condition")
    kind = "branch"

    def __init__(self, condition: Any, then: Child, else_: Child = None) -> None:
        self.condition = bool(condition)
        self.children = flatten([then if self.condition else else_], "Branch")


class Loop(Node):
    """Run children (as a sequence) again at iteration + 1 until ``until`` holds or
    ``max_iterations`` passes have run. ``until`` is evaluated at render, so it can read the
    previous pass's outputs through ``ctx.output``.
    """

    __slots__ = ("children", "continue_as_new_every", "id", "max_iterations", "on_max_reached", "until")
    kind = "loop"

    def __init__(
        self,
        *children: Child,
        id: str | None = None,
        until: Any = False,
        max_iterations: int = 5,
        on_max_reached: Literal["return-last", "fail"] = "return-last",
        continue_as_new_every: int | None = None,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise RenderError("a Loop needs an id (Loop(..., id='review-loop')): its iterations are stored under it")
        if "@" in id or "::" in id:
            raise RenderError(f"loop id {id!r} may not contain '@' or '::'")
        if not isinstance(max_iterations, int) or max_iterations < 1:
            raise RenderError(f"loop {id!r}: max_iterations must be a positive int, got {max_iterations!r}")
        if on_max_reached not in ("return-last", "fail"):
            raise RenderError(f"loop {id!r}: on_max_reached must be 'return-last' or 'fail', got {on_max_reached!r}")
        self.id = id
        self.children = flatten(children, f"Loop {id!r}")
        self.until = bool(until)
        self.max_iterations = max_iterations
        self.on_max_reached = on_max_reached
        if continue_as_new_every is not None and (not isinstance(continue_as_new_every, int) or continue_as_new_every < 1):
            raise RenderError(f"loop {id!r}: continue_as_new_every must be a positive int, got {continue_as_new_every!r}")
        self.continue_as_new_every = continue_as_new_every
