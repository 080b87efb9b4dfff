"""smithers: a durable runtime for long-running AI coding-agent workflows.

>>> from pydantic import BaseModel
>>> from smithers import workflow, Task, Sequence
>>> class Greeting(BaseModel):
...     message: str
>>> @workflow
... def hello(ctx):
...     return Sequence(Task("greet", output=Greeting, value={"message": "hello"}))
"""

from .agents.base import AgentEvent, AgentRequest, AgentResult
from .authoring.context import Ctx, TaskContext
from .authoring.nodes import Branch, Loop, Parallel, Sequence, Task
from .authoring.policies import Retry
from .authoring.workflow import Workflow, workflow
from .errors import ErrorCode, RenderError, RunError, SmithersError, UserError

__version__ = "0.1.0"

__all__ = [
    "AgentEvent", "AgentRequest", "AgentResult", "Branch", "Ctx", "ErrorCode", "Loop", "Parallel", "RenderError", "Retry",
    "RunError", "Sequence", "SmithersError", "Task", "TaskContext", "UserError", "Workflow", "workflow",
]
