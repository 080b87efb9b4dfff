"""The error hierarchy: one base, stable codes, split by who is at fault.

Every error carries a stable ``code`` (never reused), a ``message`` that names the
file, id or field at fault, and a ``hint`` that says what to do next. The CLI maps
:class:`UserError` to exit code 4; :class:`RunError` is recorded on the attempt or run.

>>> try:
...     raise RenderError("duplicate task id 'greet'", hint="give each task a unique id")
... except SmithersError as err:
...     str(err.code)
'RENDER_ERROR'
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable error codes. Add new ones; never change or reuse an existing value."""

    INVALID_INPUT = "INVALID_INPUT"
    WORKFLOW_LOAD = "WORKFLOW_LOAD"
    RENDER_ERROR = "RENDER_ERROR"
    UNKNOWN_RUN = "UNKNOWN_RUN"
    UNKNOWN_NODE = "UNKNOWN_NODE"
    RUN_EXISTS = "RUN_EXISTS"
    RUN_OWNED = "RUN_OWNED"
    INPUT_CHANGED = "INPUT_CHANGED"
    SOURCE_CHANGED = "SOURCE_CHANGED"
    USAGE = "USAGE"
    SCHEMA_CONFLICT = "SCHEMA_CONFLICT"
    MISSING_OUTPUT = "MISSING_OUTPUT"
    TASK_FAILED = "TASK_FAILED"
    TASK_TIMEOUT = "TASK_TIMEOUT"
    HEARTBEAT_TIMEOUT = "HEARTBEAT_TIMEOUT"
    INVALID_OUTPUT = "INVALID_OUTPUT"
    LOOP_MAX_REACHED = "LOOP_MAX_REACHED"
    LEASE_LOST = "LEASE_LOST"
    STORAGE = "STORAGE"
    AGENT_ERROR = "AGENT_ERROR"
    AGENT_CONFIG = "AGENT_CONFIG"
    UNKNOWN_SCHEDULE = "UNKNOWN_SCHEDULE"
    INVALID_SCHEDULE = "INVALID_SCHEDULE"
    CASSETTE_MISMATCH = "CASSETTE_MISMATCH"
    CASSETTE_FILE = "CASSETTE_FILE"
    MEMORY_NAMESPACE = "MEMORY_NAMESPACE"
    UNKNOWN_MEMORY_KEY = "UNKNOWN_MEMORY_KEY"
    SNAPSHOT = "SNAPSHOT"
    UNSAVED_CHANGES = "UNSAVED_CHANGES"
    NO_SNAPSHOT = "NO_SNAPSHOT"
    UNKNOWN_FRAME = "UNKNOWN_FRAME"
    CONFIRMATION_REQUIRED = "CONFIRMATION_REQUIRED"
    DB_COPY = "DB_COPY"


class SmithersError(Exception):
    """Base of every error smithers raises on purpose."""

    code: ErrorCode = ErrorCode.TASK_FAILED

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "hint": self.hint, "details": self.details}

    def to_record(self, *, with_traceback: bool = False) -> dict[str, Any]:
        """The error as stored on an attempt, a node or a run (see :func:`error_record`)."""
        return error_record(self, with_traceback=with_traceback)


def error_record(err: BaseException, *, with_traceback: bool = False) -> dict[str, Any]:
    """The one serialised form of a failure (``error_json`` of attempts, nodes and runs, and the
    ``error`` of failure events): ``type``, ``code``, ``message``, ``retryable``, plus ``hint``,
    ``details`` and ``traceback`` when there are any.

    >>> error_record(RunError("task 'x' failed", retryable=False))["code"]
    'TASK_FAILED'
    """
    smithers = err if isinstance(err, SmithersError) else None
    record: dict[str, Any] = {
        "type": type(err).__name__,
        "code": str(smithers.code) if smithers is not None else str(ErrorCode.TASK_FAILED),
        "message": smithers.message if smithers is not None else str(err),
    }
    if smithers is not None and smithers.hint:
        record["hint"] = smithers.hint
    if smithers is not None and smithers.details:
        record["details"] = smithers.details
    record["retryable"] = bool(getattr(err, "retryable", True))
    if with_traceback:
        import traceback  # only when a failure is recorded: keeps `import smithers` light

        record["traceback"] = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return record


class UserError(SmithersError):
    """The user's input, workflow file or command is wrong. CLI exit code 4."""

    code = ErrorCode.USAGE


class InputError(UserError):
    code = ErrorCode.INVALID_INPUT


class WorkflowLoadError(UserError):
    code = ErrorCode.WORKFLOW_LOAD


class RenderError(UserError):
    code = ErrorCode.RENDER_ERROR


class UnknownRunError(UserError):
    code = ErrorCode.UNKNOWN_RUN


class UnknownNodeError(UserError):
    code = ErrorCode.UNKNOWN_NODE


class RunOwnedError(UserError):
    code = ErrorCode.RUN_OWNED


class UnknownScheduleError(UserError):
    """No cron schedule with that id (``smithers cron list`` shows them)."""

    code = ErrorCode.UNKNOWN_SCHEDULE


class ScheduleError(UserError):
    """A cron pattern or time zone that cannot be used."""

    code = ErrorCode.INVALID_SCHEDULE


class MemoryNamespaceError(UserError):
    """A memory namespace is not one of ``workflow:ID``, ``agent:NAME``, ``user:ID``, ``global``."""

    code = ErrorCode.MEMORY_NAMESPACE


class UnknownMemoryKeyError(UserError):
    """No live fact has that key in that namespace."""

    code = ErrorCode.UNKNOWN_MEMORY_KEY


class UnsavedChangesError(UserError):
    """The working tree has changes that no snapshot of the run holds; a restore would lose them."""

    code = ErrorCode.UNSAVED_CHANGES


class NoSnapshotError(UserError):
    """The attempt, run or commit asked for has no snapshot (snapshots off, pruned, or never taken)."""

    code = ErrorCode.NO_SNAPSHOT


class SchemaConflictError(RenderError):
    code = ErrorCode.SCHEMA_CONFLICT


class MissingOutputError(RenderError):
    code = ErrorCode.MISSING_OUTPUT


class RunError(SmithersError):
    """Something failed while a run was executing; recorded on the attempt or run."""

    code = ErrorCode.TASK_FAILED

    def __init__(self, message: str, *, retryable: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retryable = retryable


class TaskTimeoutError(RunError):
    code = ErrorCode.TASK_TIMEOUT


class HeartbeatTimeoutError(RunError):
    code = ErrorCode.HEARTBEAT_TIMEOUT


class InvalidOutputError(RunError):
    code = ErrorCode.INVALID_OUTPUT


class AgentError(RunError):
    """An agent failed in a way a retry may fix (a crash, a timeout, a 5xx)."""

    code = ErrorCode.AGENT_ERROR


class AgentConfigError(AgentError):
    """An agent cannot work as configured (binary missing, 401/403, unknown model): never
    retried with the same agent; a fallback chain skips it for the rest of the run."""

    code = ErrorCode.AGENT_CONFIG

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs["retryable"] = False
        super().__init__(message, **kwargs)


class CassetteMismatchError(AgentError):
    """A replayed agent call does not match the cassette (its prompt drifted from the
    recording, or the cassette has no such call). Never retried: a retry asks the same."""

    code = ErrorCode.CASSETTE_MISMATCH

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs["retryable"] = False
        super().__init__(message, **kwargs)


class CassetteFileError(UserError):
    """A cassette file that cannot be read, or ``--record`` together with ``--replay``."""

    code = ErrorCode.CASSETTE_FILE


class StorageError(SmithersError):
    code = ErrorCode.STORAGE


class LeaseLostError(StorageError):
    """Another process took over this run; this process must stop writing to it."""

    code = ErrorCode.LEASE_LOST


class DbCopyError(UserError):
    """``smithers db copy`` must not go ahead: the destination already holds data, or the two
    databases' schemas do not fit. Nothing was written."""

    code = ErrorCode.DB_COPY
