"""Run, node and attempt statuses and event types: the one list of each.

They are ``StrEnum`` members, so they compare equal to the plain strings stored in the
database and printed in JSON (``RunStatus.FINISHED == "finished"``). Everything that names a
status or an event type — the engine, the store, metrics, tracing, the CLI, the API (which
hands the lists to the dashboard) — imports it from here. This module imports nothing from
smithers: it sits at the bottom of the layers, beside :mod:`smithers.errors`.

>>> RunStatus("waiting-event") in WAITING_RUN_STATUSES
True
>>> EventType.NODE_FINISHED
<EventType.NODE_FINISHED: 'NodeFinished'>
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_APPROVAL = "waiting-approval"
    WAITING_EVENT = "waiting-event"
    WAITING_TIMER = "waiting-timer"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CONTINUED = "continued"


class NodeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    WAITING_APPROVAL = "waiting-approval"
    WAITING_EVENT = "waiting-event"
    WAITING_TIMER = "waiting-timer"


class AttemptStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CACHED = "cached"
    ABANDONED = "abandoned"
    SUSPENDED = "suspended"  # a Subflow attempt whose child run waits: the parent's next resume continues it


class EventType(StrEnum):
    # runs
    RUN_STARTED = "RunStarted"
    RUN_FINISHED = "RunFinished"
    RUN_FAILED = "RunFailed"
    RUN_CANCELLED = "RunCancelled"
    RUN_CANCEL_REQUESTED = "RunCancelRequested"
    RUN_WAITING = "RunWaiting"
    RUN_WAIT_ENDED = "RunWaitEnded"
    RUN_CONTINUED_AS_NEW = "RunContinuedAsNew"
    RUN_AUTO_RESUMED = "RunAutoResumed"
    RUN_AUTO_RESUME_FAILED = "RunAutoResumeFailed"
    RUN_AUTO_RESUME_SKIPPED = "RunAutoResumeSkipped"
    WORKFLOW_RELOADED = "WorkflowReloaded"  # `--hot`: the run goes on with the edited workflow
    WORKFLOW_RELOAD_FAILED = "WorkflowReloadFailed"  # `--hot`: the edit did not import or render; the old code goes on
    RUN_QUEUED = "RunQueued"  # created, not driven yet (a cron schedule fired; see smithers.cron)
    # nodes and attempts
    NODE_PENDING = "NodePending"
    NODE_STARTED = "NodeStarted"
    NODE_FINISHED = "NodeFinished"
    NODE_FAILED = "NodeFailed"
    NODE_RETRYING = "NodeRetrying"
    NODE_SKIPPED = "NodeSkipped"
    NODE_CANCELLED = "NodeCancelled"
    NODE_WAITING = "NodeWaiting"
    ATTEMPT_ABANDONED = "AttemptAbandoned"
    ATTEMPT_SUSPENDED = "AttemptSuspended"  # a Subflow attempt whose child run waits
    FRAME_COMMITTED = "FrameCommitted"
    LOOP_ITERATION = "LoopIteration"
    LOOP_FINISHED = "LoopFinished"
    # agents
    AGENT_EVENT = "AgentEvent"
    AGENT_TURN = "AgentTurn"
    AGENT_REPLY = "AgentReply"
    TOKEN_USAGE_REPORTED = "TokenUsageReported"
    TOOL_CALL_STARTED = "ToolCallStarted"
    TOOL_CALL_FINISHED = "ToolCallFinished"
    # people and clocks
    APPROVAL_REQUESTED = "ApprovalRequested"
    APPROVAL_DECIDED = "ApprovalDecided"
    APPROVAL_GRANTED = "ApprovalGranted"
    APPROVAL_DENIED = "ApprovalDenied"
    HUMAN_REQUESTED = "HumanRequested"
    HUMAN_ANSWER_RECEIVED = "HumanAnswerReceived"
    HUMAN_ANSWER_REJECTED = "HumanAnswerRejected"
    HUMAN_ANSWERED = "HumanAnswered"
    SIGNAL_SENT = "SignalSent"
    SIGNAL_AWAITED = "SignalAwaited"
    SIGNAL_RECEIVED = "SignalReceived"
    TIMER_CREATED = "TimerCreated"
    TIMER_FIRED = "TimerFired"
    # time travel: files
    SNAPSHOT_FAILED = "SnapshotFailed"
    REVERT_FINISHED = "RevertFinished"


WAITING_RUN_STATUSES = frozenset({RunStatus.WAITING_APPROVAL, RunStatus.WAITING_EVENT, RunStatus.WAITING_TIMER})
ENDED_RUN_STATUSES = frozenset({RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CONTINUED})
WAITING_NODE_STATUSES = frozenset({NodeStatus.WAITING_APPROVAL, NodeStatus.WAITING_EVENT, NodeStatus.WAITING_TIMER})
TERMINAL_NODE_STATUSES = frozenset({NodeStatus.FINISHED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED})
ENDED_ATTEMPT_STATUSES = frozenset(set(AttemptStatus) - {AttemptStatus.RUNNING})

__all__ = [
    "ENDED_ATTEMPT_STATUSES",
    "ENDED_RUN_STATUSES",
    "TERMINAL_NODE_STATUSES",
    "WAITING_NODE_STATUSES",
    "WAITING_RUN_STATUSES",
    "AttemptStatus",
    "EventType",
    "NodeStatus",
    "RunStatus",
]
