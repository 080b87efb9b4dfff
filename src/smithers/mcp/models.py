"""The typed shapes of the MCP tools: every tool answers the envelope
``{ok: true, data}`` or ``{ok: false, error: {code, message, hint}}``, with ``data`` one of the
models below. Models allow extra keys, so a read model that grows a field (``smithers inspect
--json`` does) reaches the agent without a schema change here."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

DataT = TypeVar("DataT", bound=BaseModel)


class Open(BaseModel):
    """A read model: the named fields are always there, others may be."""

    model_config = ConfigDict(extra="allow")


class ToolFailure(BaseModel):
    code: str = Field(description="A stable error code (UNKNOWN_RUN, INVALID_INPUT, INVALID_ARGUMENTS, ...).")
    message: str = Field(description="What went wrong, naming the run, node, file or field.")
    hint: str | None = Field(default=None, description="What to do about it.")


class Envelope(BaseModel, Generic[DataT]):
    """Every tool's result."""

    ok: bool
    data: DataT | None = None
    error: ToolFailure | None = None


# -- workflows and runs ---------------------------------------------------------------------


class WorkflowInfo(Open):
    path: str = Field(description="The workflow file.")
    spec: str = Field(description="What run_workflow takes: path, or path:name when the file has several.")
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = Field(default=None, description="JSON schema of the run's input (null: any object).")


class WorkflowProblem(BaseModel):
    path: str
    code: str
    message: str


class WorkflowList(Open):
    workflows: list[WorkflowInfo]
    problems: list[WorkflowProblem] = Field(default_factory=list, description="Files that failed to import, with why.")


class RunStarted(Open):
    run_id: str
    status: str = Field(description="The run's status once the background process picked it up.")
    pid: int | None = Field(default=None, description="The background process.")
    log: str | None = Field(default=None, description="Its output log.")


class RunSummary(Open):
    run_id: str
    workflow: str | None = None
    status: str


class RunList(Open):
    runs: list[RunSummary]


class RunDetail(Open):
    run_id: str
    workflow: str | None = None
    status: str
    owner_alive: bool = Field(description="Whether a live process is running it right now.")
    nodes: list[dict[str, Any]] = Field(default_factory=list)
    waiting_for: list[dict[str, Any]] | None = None


class WhyAnswer(Open):
    run_id: str
    status: str
    reason: str
    blocked_on: list[dict[str, Any]] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)


class EventPage(Open):
    run_id: str
    events: list[dict[str, Any]]
    next_after_seq: int = Field(description="Pass as after_seq to get the next page.")
    more: bool = Field(description="Whether events after this page exist already.")


class NodeDetail(Open):
    run_id: str
    id: str
    kind: str | None = None
    iterations: list[dict[str, Any]] = Field(default_factory=list)


class Transcript(Open):
    run_id: str
    node_id: str | None = None
    events: list[dict[str, Any]]
    next_after_seq: int
    more: bool


class Inbox(Open):
    items: list[dict[str, Any]]


class Decision(Open):
    run_id: str
    node_id: str
    iteration: int
    approved: bool
    resumed: bool = Field(description="Whether a background process was started to continue the run.")


class SignalSent(Open):
    run_id: str
    signal: str
    seq: int
    duplicate: bool
    resumed: bool


class HumanAnswered(Open):
    request_id: str
    run_id: str
    node_id: str
    status: str
    resumed: bool


class CancelResult(Open):
    run_id: str
    status: str = Field(description="cancelled, or cancelling while the owner is still stopping.")


class ForkResult(Open):
    run_id: str = Field(description="The new run.")
    forked_from: str
    frame_no: int
    status: str = Field(description="queued, or the status once the background process picked it up (run=true).")
    pid: int | None = None
    log: str | None = None


class FileChange(Open):
    path: str
    status: str = Field(description="added, modified or deleted.")
    additions: int
    deletions: int


class DiffResult(Open):
    run_id: str
    node_id: str
    iteration: int
    attempt: int
    files: list[FileChange]
    patch: str


class RevertResult(Open):
    run_id: str
    node_id: str
    iteration: int
    attempt: int
    files: list[str] = Field(description="The paths the revert changed.")
