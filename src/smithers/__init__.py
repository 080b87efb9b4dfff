"""smithers: a durable runtime for long-running AI coding-agent workflows.

>>> from pydantic import BaseModel
>>> from smithers import workflow, Task, Sequence
>>> class Greeting(BaseModel):
...     message: str
>>> @workflow
... def hello(ctx):
...     return Sequence(Task("greet", output=Greeting, value={"message": "hello"}))

The names below are imported lazily, so ``smithers --help`` does not pay for pydantic.
``smithers.__version__`` is the installed distribution's version (package metadata), read on
first use.
"""

from __future__ import annotations

from importlib import import_module

# `typing` is not imported at run time: the `smithers` console script imports this package before
# anything else, and for a command the warm daemon runs, that import is most of what it costs.
TYPE_CHECKING = False  # mypy and pyright read this name as True
if TYPE_CHECKING:
    from typing import Any

_DISTRIBUTION = "smithers-orchestrator"

_EXPORTS = {
    "ContinueAsNew": "smithers.authoring.structure",
    "Subflow": "smithers.authoring.structure",
    "Worktree": "smithers.authoring.structure",
    "Approval": "smithers.authoring.human",
    "ApprovalDecision": "smithers.authoring.human",
    "ApprovalRequest": "smithers.authoring.human",
    "HumanTask": "smithers.authoring.human",
    "Signal": "smithers.authoring.human",
    "Timer": "smithers.authoring.human",
    "TimerFired": "smithers.authoring.human",
    "WaitForEvent": "smithers.authoring.human",
    "AgentEvent": "smithers.agents.base",
    "AgentRequest": "smithers.agents.base",
    "AgentResult": "smithers.agents.base",
    "Branch": "smithers.authoring.nodes",
    "Cache": "smithers.authoring.cache",
    "Ctx": "smithers.authoring.context",
    "ErrorCode": "smithers.errors",
    "Loop": "smithers.authoring.nodes",
    "Parallel": "smithers.authoring.nodes",
    "RenderError": "smithers.errors",
    "Retry": "smithers.authoring.policies",
    "RunError": "smithers.errors",
    "Sequence": "smithers.authoring.nodes",
    "SmithersError": "smithers.errors",
    "Task": "smithers.authoring.nodes",
    "TaskContext": "smithers.authoring.context",
    "UserError": "smithers.errors",
    "Workflow": "smithers.authoring.workflow",
    "workflow": "smithers.authoring.workflow",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _installed_version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'smithers' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def _installed_version() -> str:
    """The version pyproject.toml declares, from the installed distribution's metadata (the one
    source of truth). A source tree on ``PYTHONPATH`` that was never installed has none: say so."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    __version__: str
    from .agents.base import AgentEvent, AgentRequest, AgentResult
    from .authoring.cache import Cache
    from .authoring.context import Ctx, TaskContext
    from .authoring.human import Approval, ApprovalDecision, ApprovalRequest, HumanTask, Signal, Timer, TimerFired, WaitForEvent
    from .authoring.nodes import Branch, Loop, Parallel, Sequence, Task
    from .authoring.policies import Retry
    from .authoring.structure import ContinueAsNew, Subflow, Worktree
    from .authoring.workflow import Workflow, workflow
    from .errors import ErrorCode, RenderError, RunError, SmithersError, UserError
