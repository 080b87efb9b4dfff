"""The tools of ``smithers mcp`` (DESIGN §10.5), each a few lines over the verbs the CLI and the
HTTP API call (:mod:`smithers.ops`, :mod:`smithers.queries`, :mod:`smithers.decisions`), so an
agent sees exactly what ``smithers inspect --json`` and ``GET /v1/runs/ID`` show.

Every method returns its data model or raises :class:`~smithers.errors.SmithersError`; the server
(:mod:`smithers.mcp.server`) wraps both in the ``{ok, data | error}`` envelope. Methods run in the
SDK's worker threads, so each opens its own store connection.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, PydanticUserError

from ..errors import ErrorCode, SmithersError, UserError
from .models import (
    CancelResult,
    Decision,
    EventPage,
    HumanAnswered,
    Inbox,
    NodeDetail,
    RunDetail,
    RunList,
    RunStarted,
    SignalSent,
    Transcript,
    WhyAnswer,
    WorkflowInfo,
    WorkflowList,
    WorkflowProblem,
)
from .timetravel import TimeTravelTools

if TYPE_CHECKING:
    from ..storage.store import Store

RunId = Annotated[str, Field(description="The run id (see list_runs).", min_length=1)]
NodeId = Annotated[str, Field(description="The node (task) id.", min_length=1)]
Iteration = Annotated[int | None, Field(default=None, ge=0, description="The node's iteration, inside loops.")]
By = Annotated[str | None, Field(default=None, description="Who decided (recorded with the decision).")]
WaitingNode = Annotated[str | None, Field(default=None, description="The waiting node (needed when several wait).")]
AfterSeq = Annotated[int, Field(default=0, ge=0, description="Only events after this seq (0: from the start).")]
Limit = Annotated[int, Field(default=100, ge=1, le=1000, description="At most this many events.")]

TRANSCRIPT_PREFIXES = ("AgentTurn", "AgentReply", "AgentEvent", "ToolCall", "TokenUsageReported")
WORKFLOW_DIR = Path(".smithers") / "workflows"
_ENDED = ("finished", "failed", "cancelled", "continued")


class Refusal(UserError):
    """A request the state of the run refuses, with the same code the HTTP API answers
    (``RUN_NOT_ACTIVE``: cancel an ended run; ``RUN_NOT_RESUMABLE``: resume a finished one)."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code  # type: ignore[assignment]  # the HTTP API's codes, not (yet) ErrorCode members


class SmithersTools(TimeTravelTools):
    """The tools over one database; ``root`` is the project (where ``.smithers/workflows`` lives,
    and the working directory of the runs started here)."""

    def __init__(self, db: str, root: Path) -> None:
        self.db = db  # the database's target: a SQLite path or a postgresql:// URL
        self.root = root
        self._load_lock = threading.Lock()  # workflow imports touch sys.modules and sys.path

    def _continue_if_unowned(self, run_id: str) -> bool:
        """After a decision: a waiting run nobody runs is resumed in the background at once."""
        from ..background import continue_if_unowned

        with self.store() as store:
            return continue_if_unowned(store, run_id, cwd=self.root)

    @contextmanager
    def store(self) -> Iterator[Store]:
        from ..storage.store import Store

        store = Store.open(self.db)
        try:
            yield store
        finally:
            store.close()

    # -- workflows -----------------------------------------------------------------------

    def list_workflows(
        self, paths: Annotated[list[str] | None, Field(default=None, description="Files or folders to look in as well.")] = None,
    ) -> WorkflowList:
        """The workflow files of the project (.smithers/workflows/*.py) and of any path given, with each
        workflow's name, description and input schema. Start one with run_workflow(spec)."""
        from ..authoring.loader import load_workflow

        files: list[Path] = []
        for place in [self.root / WORKFLOW_DIR, *(self._path(p) for p in paths or [])]:
            found = sorted(place.glob("*.py")) if place.is_dir() else [place] if place.suffix == ".py" else []
            files += [f for f in found if f not in files and not f.name.startswith("_")]
        workflows, problems = [], []
        for file in files:
            try:
                names = _workflow_names(file)
                with self._load_lock:
                    loaded = [load_workflow(f"{file}:{name}" if len(names) > 1 else str(file)) for name in names or [""]]
            except SmithersError as err:
                problems.append(WorkflowProblem(path=str(file), code=str(err.code), message=err.message))
                continue
            for item in loaded:
                model = item.workflow.input_model
                try:
                    schema = model.model_json_schema() if model is not None else None
                except PydanticUserError as err:  # e.g. a field of a type JSON schema cannot describe
                    problems.append(WorkflowProblem(path=str(file), code="INPUT_SCHEMA", message=f"{item.spec}: {err}"))
                    schema = None
                workflows.append(WorkflowInfo(
                    path=str(file), spec=item.spec, name=item.workflow.name,
                    description=(item.workflow.fn.__doc__ or "").strip() or None, input_schema=schema,
                ))
        return WorkflowList(workflows=workflows, problems=problems)

    def run_workflow(
        self,
        spec: Annotated[str, Field(description="Workflow file (relative to the project) or file.py:name.", min_length=1)],
        input: Annotated[
            dict[str, Any] | None, Field(default=None, description="The run's input; validated against the workflow's input model.")
        ] = None,
        run_id: Annotated[
            str | None, Field(default=None, min_length=1, max_length=256, description="Use this run id (default: a new one).")
        ] = None,
        max_concurrency: Annotated[int | None, Field(default=None, ge=1, description="Tasks running at once.")] = None,
    ) -> RunStarted:
        """Start a run in the background and return its id at once (like `smithers up --detach`). The
        workflow and input are checked first; then watch it with get_run, explain_run and get_run_events."""
        import json

        from .. import ops
        from ..authoring.loader import load_workflow
        from ..background import spawn, wait_started

        resolved = self._spec(spec)
        with self.store() as store:
            if run_id is not None and store.get_run(run_id) is not None:
                raise UserError(
                    f"run {run_id!r} already exists", code=ErrorCode.RUN_EXISTS, hint=f"continue it with resume_run({run_id!r})",
                )
            with self._load_lock:
                loaded = load_workflow(resolved)
                input_value, _ = loaded.workflow.validate_input(input)
                ops.check_first_render(loaded, input_value, store)
        run_id = run_id or ops.new_run_id()
        args = ["up", resolved, "--run-id", run_id]
        if input is not None:
            args += ["--input", json.dumps(input)]
        if max_concurrency:
            args += ["--max-concurrency", str(max_concurrency)]
        with self.store() as store:
            child, log = spawn(args, store=store, run_id=run_id, cwd=self.root)
            status = wait_started(child, log, store, run_id)
        return RunStarted(run_id=run_id, status=status, pid=child.pid, log=str(log))

    # -- reading runs ----------------------------------------------------------------------

    def list_runs(
        self,
        status: Annotated[
            str | None, Field(default=None, description="Only runs with this status (running, waiting-approval, failed, ...).")
        ] = None,
        limit: Annotated[int, Field(default=20, ge=1, le=1000)] = 20,
    ) -> RunList:
        """Runs, newest first, with their status (like `smithers ps --json`)."""
        from .. import queries

        with self.store() as store:
            return RunList(runs=queries.list_runs(store, status=status, limit=limit))

    def get_run(self, run_id: RunId) -> RunDetail:
        """One run: status, input, error, and every node iteration with attempts and output (like
        `smithers inspect --json`), whether a live process runs it (owner_alive), and while it
        waits, what it waits for and how to answer (the same fields as GET /v1/runs/ID)."""
        from .. import decisions, queries
        from ..storage.lease import owner_alive

        with self.store() as store:
            detail = queries.run_detail(store, run_id)
            run = store.get_run(run_id) or {}
            detail.update(
                updated_at_ms=run.get("updated_at_ms"), finished_at_ms=run.get("finished_at_ms"), owner_alive=owner_alive(run),
                parent_run_id=run.get("parent_run_id"), continued_from=run.get("continued_from"),
            )
            if str(detail["status"]).startswith("waiting"):
                detail["waiting_for"] = decisions.waiting_for(store, run_id)
            return RunDetail(**detail)

    def explain_run(self, run_id: RunId) -> WhyAnswer:
        """Why the run is where it is: what blocks it and the commands that unblock it (`smithers why`)."""
        from .. import queries

        with self.store() as store:
            return WhyAnswer(**queries.why(store, run_id))

    def get_run_events(
        self,
        run_id: RunId,
        after_seq: AfterSeq = 0,
        limit: Limit = 100,
        type: Annotated[str | None, Field(default=None, description="An event type (NodeFinished) or prefix (Node).")] = None,
        node_id: Annotated[str | None, Field(default=None, description="Only this node's events.")] = None,
    ) -> EventPage:
        """The run's events in order, a page at a time: call again with after_seq=next_after_seq."""
        from .. import queries

        with self.store() as store:
            found = queries.events(store, run_id, type=type, node_id=node_id, after_seq=after_seq, limit=limit + 1)
        page = found[:limit]
        return EventPage(run_id=run_id, events=page, next_after_seq=page[-1]["seq"] if page else after_seq, more=len(found) > limit)

    def get_node(self, run_id: RunId, node_id: NodeId) -> NodeDetail:
        """One node with all its iterations, full attempts (errors with tracebacks) and outputs (`smithers node --json`)."""
        from .. import queries

        with self.store() as store:
            return NodeDetail(**queries.node_detail(store, run_id, node_id))

    def get_chat_transcript(
        self,
        run_id: RunId,
        node_id: Annotated[str | None, Field(default=None, description="Only this node.")] = None,
        after_seq: AfterSeq = 0,
        limit: Limit = 100,
    ) -> Transcript:
        """What the agents said in a run: prompts, replies, tool calls, token usage (`smithers chat --json`), paged like get_run_events."""
        from .. import queries

        with self.store() as store:
            if node_id is not None:
                queries.node_detail(store, run_id, node_id)  # an unknown node is UNKNOWN_NODE, not an empty page
            found: list[dict[str, Any]] = []
            seq = after_seq
            while len(found) <= limit:
                batch = queries.events(store, run_id, node_id=node_id, after_seq=seq, limit=500)
                if not batch:
                    break
                seq = batch[-1]["seq"]
                found += [e for e in batch if str(e["type"]).startswith(TRANSCRIPT_PREFIXES)]
        page = found[:limit]
        return Transcript(
            run_id=run_id, node_id=node_id, events=page, next_after_seq=page[-1]["seq"] if page else seq, more=len(found) > limit,
        )

    def list_pending(self, run_id: Annotated[str | None, Field(default=None, description="Only this run's items.")] = None) -> Inbox:
        """Every pending approval, human task and awaited signal, each with how to answer it (`smithers inbox`)."""
        from .. import decisions, ops

        with self.store() as store:
            if run_id is not None:
                ops.get_run(store, run_id)
            items = decisions.inbox(store)
        return Inbox(items=[i for i in items if run_id is None or i["run_id"] == run_id])

    # -- answering waits -------------------------------------------------------------------

    def approve(
        self,
        run_id: RunId,
        node_id: WaitingNode = None,
        iteration: Iteration = None,
        note: Annotated[str | None, Field(default=None)] = None,
        by: By = None,
        select: Annotated[str | None, Field(default=None, description="For mode 'select': the chosen option key.")] = None,
        rank: Annotated[list[str] | None, Field(default=None, description="For mode 'rank': every option key, in order.")] = None,
    ) -> Decision:
        """Approve what the run waits for; a run nobody is running is continued in the background."""
        return self._decide(run_id, True, node_id, iteration, note, by, select, rank)

    def deny(
        self,
        run_id: RunId,
        node_id: WaitingNode = None,
        iteration: Iteration = None,
        note: Annotated[str | None, Field(default=None)] = None,
        by: By = None,
    ) -> Decision:
        """Deny what the run waits for (the node's on_deny policy applies: fail, skip or continue)."""
        return self._decide(run_id, False, node_id, iteration, note, by, None, None)

    def _decide(
        self, run_id: str, approved: bool, node_id: str | None, iteration: int | None, note: str | None, by: str | None,
        select: str | None, rank: list[str] | None,
    ) -> Decision:
        from .. import decisions
        with self.store() as store:
            if node_id is not None:
                decisions.check_node(store, run_id, node_id)
            result = decisions.decide(
                store, run_id, approved=approved, node_id=node_id, iteration=iteration, note=note, by=by, select=select, rank=rank,
            )
        return Decision(**result, resumed=self._continue_if_unowned(run_id))

    def send_signal(
        self,
        run_id: RunId,
        name: Annotated[str, Field(description="The signal's name (the Signal node's id).", min_length=1)],
        data: Annotated[Any, Field(default=None, description="The payload; checked against the wait's schema (default {}).")] = None,
        correlation_id: Annotated[str | None, Field(default=None)] = None,
        by: By = None,
    ) -> SignalSent:
        """Send a signal to a run; kept until a matching Signal node takes it, duplicates count once."""
        from .. import decisions
        with self.store() as store:
            result = decisions.send_signal(store, run_id, name, {} if data is None else data, correlation_id=correlation_id, by=by)
        return SignalSent(**result, resumed=self._continue_if_unowned(run_id))

    def answer_human(
        self,
        request_id: Annotated[str, Field(description="The human request id (see list_pending).", min_length=1)],
        value: Annotated[Any, Field(description="The answer; must validate against the human task's schema.")],
        by: By = None,
    ) -> HumanAnswered:
        """Answer a human task; an answer that does not validate is refused and the request stays open."""
        from .. import decisions
        with self.store() as store:
            result = decisions.answer_human(store, request_id, value, by=by)
        return HumanAnswered(**result, resumed=self._continue_if_unowned(result["run_id"]))

    # -- changing runs ---------------------------------------------------------------------

    def cancel_run(self, run_id: RunId) -> CancelResult:
        """Cancel an active run; its owner stops within a second and marks in-flight attempts cancelled."""
        from .. import ops

        with self.store() as store:
            run = ops.get_run(store, run_id)
            if run["status"] in _ENDED:
                raise Refusal("RUN_NOT_ACTIVE", f"run {run_id} is {run['status']}; only an active run can be cancelled")
            status = ops.request_cancel(store, run_id)
            if status == "cancelling":
                status = ops.wait_for_status(store, run_id, set(_ENDED), timeout=5.0)
                if status not in _ENDED:
                    status = "cancelling"
        return CancelResult(run_id=run_id, status=status)

    def resume_run(
        self,
        run_id: RunId,
        allow_source_change: Annotated[bool, Field(default=False, description="Resume even if the workflow file changed.")] = False,
        max_concurrency: Annotated[int | None, Field(default=None, ge=1)] = None,
    ) -> RunStarted:
        """Continue a failed, cancelled, crashed or waiting run in the background (`smithers resume`); returns at once."""
        from .. import ops

        with self.store() as store:
            run = ops.get_run(store, run_id)
            if run["status"] in ("finished", "continued"):
                raise Refusal("RUN_NOT_RESUMABLE", f"run {run_id} is {run['status']}; there is nothing to resume",
                              hint="start a new run with run_workflow")
            ops.ensure_not_owned(store, run_id)
        options = ["--allow-source-change"] if allow_source_change else []
        if max_concurrency:
            options += ["--max-concurrency", str(max_concurrency)]
        status, pid, log = self._spawn_resume(run_id, *options)
        return RunStarted(run_id=run_id, status=status, pid=pid, log=log)

    def _spawn_resume(self, run_id: str, *options: str) -> tuple[str, int, str]:
        """`smithers resume RUN` in the background; (its status once it picked the run up, pid, log)."""
        from ..background import spawn, wait_started

        with self.store() as store:
            child, log = spawn(["resume", run_id, *options], store=store, run_id=run_id, cwd=self.root)
            status = wait_started(child, log, store, run_id)
        return status, child.pid, str(log)

    # -- helpers ---------------------------------------------------------------------------

    def _path(self, given: str) -> Path:
        path = Path(given).expanduser()
        return (path if path.is_absolute() else self.root / path).resolve()

    def _spec(self, spec: str) -> str:
        from ..authoring.loader import split_spec

        path, name = split_spec(spec)
        resolved = self._path(str(path))
        return f"{resolved}:{name}" if name else str(resolved)


def _workflow_names(file: Path) -> list[str]:
    """The ``@workflow`` functions of a file, found without running it (a file may hold several)."""
    from ..errors import WorkflowLoadError

    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except SyntaxError as err:
        raise WorkflowLoadError(f"{file}:{err.lineno}: syntax error: {err.msg}") from None
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                named = (isinstance(target, ast.Name) and target.id == "workflow") or (
                    isinstance(target, ast.Attribute) and target.attr == "workflow"
                )
                if named:
                    names.append(_declared_name(deco) or node.name)
    return names


def _declared_name(deco: ast.expr) -> str | None:
    if isinstance(deco, ast.Call):
        for kw in deco.keywords:
            if kw.arg == "name" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                return kw.value.value
    return None
