"""The routes: each a few lines over :mod:`smithers.queries`, :mod:`smithers.ops` and
:mod:`smithers.decisions`, so the API shows exactly what the CLI shows.

``public`` routes need no token (health, the state lists of ``/v1/meta``, the dashboard's sign-in and its page); every route of
``router`` needs it when the server has one. Plain ``def`` routes run in FastAPI's thread pool,
each thread with its own SQLite connection (:meth:`Service.store`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel, Field

from .. import decisions, ops, queries
from ..errors import ErrorCode, UserError
from ..states import (
    ENDED_ATTEMPT_STATUSES,
    ENDED_RUN_STATUSES,
    TERMINAL_NODE_STATUSES,
    WAITING_NODE_STATUSES,
    WAITING_RUN_STATUSES,
    AttemptStatus,
    EventType,
    NodeStatus,
    RunStatus,
)
from .errors import ApiError
from .service import COOKIE_NAME, STATIC_CACHE_CONTROL, STATIC_DIR, Service, service_of

Svc = Annotated[Service, Depends(service_of)]

public = APIRouter()
router = APIRouter()

TRANSCRIPT_TYPES = (EventType.AGENT_TURN, EventType.AGENT_REPLY, EventType.AGENT_EVENT, EventType.TOKEN_USAGE_REPORTED)


# -- bodies ------------------------------------------------------------------------------------


class SessionBody(BaseModel):
    token: str


class StartRunBody(BaseModel):
    workflow: str = Field(description="Workflow file under the server's root (relative to it), or file.py:name.")
    input: dict[str, Any] | None = Field(default=None, description="The run's input (validated against the workflow's model).")
    run_id: str | None = Field(default=None, description="Use this run id (409 if it exists).")
    max_concurrency: int | None = Field(default=None, ge=1)


class ResumeBody(BaseModel):
    allow_source_change: bool = False
    max_concurrency: int | None = Field(default=None, ge=1)


class DecideBody(BaseModel):
    note: str | None = None
    by: str | None = None
    iteration: int | None = None
    select: str | None = Field(default=None, description="The chosen option key (mode 'select').")
    rank: list[str] | None = Field(default=None, description="Every option key in order (mode 'rank').")


class SignalBody(BaseModel):
    data: Any = Field(default_factory=dict, description="The payload; checked against the wait's schema.")
    correlation_id: str | None = None
    by: str | None = None


class AnswerBody(BaseModel):
    value: Any = Field(description="The answer; must validate against the human task's schema.")
    by: str | None = None


# -- public ------------------------------------------------------------------------------------


@public.get("/health", tags=["server"])
def health() -> dict[str, Any]:
    """Liveness (no auth)."""
    from .. import __version__

    return {"status": "ok", "version": __version__}


@public.get("/v1/session", tags=["session"])
def session_state(request: Request, service: Svc) -> dict[str, Any]:
    """Whether a token is required and whether this request carries a valid one (no auth)."""
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
    signed_in = service.token_ok(bearer) or service.token_ok(request.cookies.get(COOKIE_NAME))
    return {"auth_required": bool(service.token), "authenticated": signed_in}


@public.post("/v1/session", tags=["session"])
def sign_in(body: SessionBody, response: Response, service: Svc) -> dict[str, Any]:
    """Sign in (the dashboard): a valid token sets the ``smithers_token`` cookie (HttpOnly, SameSite=Strict)."""
    if not service.token:
        return {"auth_required": False, "authenticated": True}
    if not service.token_ok(body.token):
        raise ApiError(401, "UNAUTHORIZED", "wrong token")
    response.set_cookie(COOKIE_NAME, body.token, httponly=True, samesite="strict", path="/")
    return {"auth_required": True, "authenticated": True}


@public.delete("/v1/session", tags=["session"])
def sign_out(response: Response) -> dict[str, Any]:
    """Sign out: clears the cookie."""
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return {"authenticated": False}


@public.get("/v1/meta", tags=["server"])
def meta() -> dict[str, Any]:
    """The status lists and event types of :mod:`smithers.states` (no auth: they are the same for
    every server of this version). The dashboard takes its filters, colours and "is this run
    over?" checks from here instead of keeping its own copy."""
    from .. import __version__

    return {"version": __version__, **states_meta()}


def states_meta() -> dict[str, list[str]]:
    """Every list in declaration order (sets too), so clients can show them as they are."""

    def ordered(members: Any, subset: Any = None) -> list[str]:
        return [str(m) for m in members if subset is None or m in subset]

    return {
        "run_statuses": ordered(RunStatus),
        "waiting_run_statuses": ordered(RunStatus, WAITING_RUN_STATUSES),
        "ended_run_statuses": ordered(RunStatus, ENDED_RUN_STATUSES),
        "node_statuses": ordered(NodeStatus),
        "waiting_node_statuses": ordered(NodeStatus, WAITING_NODE_STATUSES),
        "terminal_node_statuses": ordered(NodeStatus, TERMINAL_NODE_STATUSES),
        "attempt_statuses": ordered(AttemptStatus),
        "ended_attempt_statuses": ordered(AttemptStatus, ENDED_ATTEMPT_STATUSES),
        "event_types": ordered(EventType),
    }


@public.get("/", include_in_schema=False)
def index() -> Any:
    page = STATIC_DIR / "index.html"
    if page.is_file():
        return FileResponse(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": STATIC_CACHE_CONTROL})
    return {"name": "smithers", "api": "/v1/runs", "openapi": "/openapi.json"}


# -- server ------------------------------------------------------------------------------------


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/metrics", tags=["server"], responses={200: {"content": {"text/plain": {}}}, 503: {"description": "metrics not available"}})
def metrics(service: Svc) -> Response:
    """Prometheus metrics of the store."""
    try:
        from ..observability.metrics import render_metrics
    except ImportError as err:
        raise ApiError(503, "METRICS_UNAVAILABLE", f"metrics are not available in this installation ({err})") from None
    body, content_type = render_metrics(service.store())
    return Response(body, media_type=content_type)


# -- runs --------------------------------------------------------------------------------------


@router.get("/v1/runs", tags=["runs"])
def list_runs(
    service: Svc,
    status: Annotated[str | None, Query(description="Only runs with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Runs, newest first: ``{runs: [{run_id, workflow, status, created_at_ms, updated_at_ms, triggered_by}], total, limit, offset}``."""
    store = service.store()
    runs = queries.list_runs(store, status=status, limit=offset + limit)[offset:]
    total = store.count_runs(status)
    return {"runs": runs, "total": total, "limit": limit, "offset": offset}


@router.post("/v1/runs", tags=["runs"], status_code=201)
def start_run(body: StartRunBody, service: Svc) -> dict[str, Any]:
    """Start a run in a background process: the workflow and input are checked here first
    (400 with the message), a workflow outside the root is 403, an existing ``run_id`` 409."""
    from ..authoring.loader import load_workflow

    store = service.store()
    spec = _workflow_spec(service, body.workflow)
    if body.run_id is not None:
        if not body.run_id.strip() or len(body.run_id) > 256:
            raise UserError("run_id must be 1 to 256 characters")
        if store.get_run(body.run_id) is not None:
            raise UserError(f"run {body.run_id!r} already exists", code=ErrorCode.RUN_EXISTS,
                            hint=f"resume it with POST /v1/runs/{body.run_id}/resume")
    with service.load_lock:
        loaded = load_workflow(spec)
        input_value, _ = loaded.workflow.validate_input(body.input)
        ops.check_first_render(loaded, input_value, store)
    run_id = body.run_id or ops.new_run_id()
    args = ["up", spec, "--run-id", run_id]
    if body.input is not None:
        args += ["--input", json.dumps(body.input)]
    if body.max_concurrency:
        args += ["--max-concurrency", str(body.max_concurrency)]
    child, log_path = service.spawn(args, run_id)
    return {"run_id": run_id, "status": service.wait_started(child, log_path, run_id)}


def _workflow_spec(service: Service, workflow: str) -> str:
    from ..authoring.loader import split_spec

    path, name = split_spec(workflow)
    resolved = (path if path.is_absolute() else service.root / path).resolve()
    if not resolved.is_relative_to(service.root):
        raise ApiError(403, "FORBIDDEN_PATH", f"workflow {workflow!r} is outside the server's root", details={"root": str(service.root)})
    return f"{resolved}:{name}" if name else str(resolved)


@router.get("/v1/runs/{run_id}", tags=["runs"])
def get_run(run_id: str, service: Svc) -> dict[str, Any]:
    """The run with every node iteration, its attempts and output (``smithers inspect --json``),
    plus ``updated_at_ms, finished_at_ms, owner_alive, frames, parent_run_id, continued_from``
    and, while it waits, ``waiting_for``."""
    from ..storage.lease import owner_alive

    store = service.store()
    detail = queries.run_detail(store, run_id)
    run = store.get_run(run_id) or {}
    detail.update(
        updated_at_ms=run.get("updated_at_ms"), finished_at_ms=run.get("finished_at_ms"), owner_alive=owner_alive(run),
        frames=store.frame_count(run_id), parent_run_id=run.get("parent_run_id"), continued_from=run.get("continued_from"),
    )
    if detail["status"].startswith("waiting"):
        detail["waiting_for"] = decisions.waiting_for(store, run_id)
    return detail


@router.get("/v1/runs/{run_id}/why", tags=["runs"])
def why(run_id: str, service: Svc) -> dict[str, Any]:
    """What the run is blocked on (``smithers why --json``)."""
    return queries.why(service.store(), run_id)


@router.post("/v1/runs/{run_id}/resume", tags=["runs"], status_code=202)
def resume_run(run_id: str, service: Svc, body: ResumeBody | None = None) -> dict[str, Any]:
    """Continue a run in a background ``smithers resume`` (409 while a live process runs it)."""
    from ..storage.lease import owner_alive

    body = body or ResumeBody()
    run = queries.get_run(service.store(), run_id)
    if run["status"] in ("finished", "continued"):
        raise ApiError(409, "RUN_NOT_RESUMABLE", f"run {run_id} is {run['status']}; there is nothing to resume")
    if owner_alive(run):
        raise ApiError(409, str(ErrorCode.RUN_OWNED), f"run {run_id} is being run by pid {run['owner_pid']} on {run['owner_host']}")
    args = ["resume", run_id]
    if body.allow_source_change:
        args.append("--allow-source-change")
    if body.max_concurrency:
        args += ["--max-concurrency", str(body.max_concurrency)]
    child, log_path = service.spawn(args, run_id)
    return {"run_id": run_id, "status": service.wait_started(child, log_path, run_id)}


@router.post("/v1/runs/{run_id}/cancel", tags=["runs"], responses={202: {"description": "the owner is still stopping"}})
def cancel_run(run_id: str, service: Svc, response: Response) -> dict[str, Any]:
    """Cancel an active run (409 when it already ended). A live owner stops within a second."""
    store = service.store()
    run = queries.get_run(store, run_id)
    if run["status"] in queries.TERMINAL_STATUSES:
        raise ApiError(409, "RUN_NOT_ACTIVE", f"run {run_id} is {run['status']}; only an active run can be cancelled")
    status = ops.request_cancel(store, run_id)
    if status == "cancelling":
        status = ops.wait_for_status(store, run_id, set(queries.TERMINAL_STATUSES), timeout=5.0)
        if status not in queries.TERMINAL_STATUSES:
            status = "cancelling"
            response.status_code = 202
    return {"run_id": run_id, "status": status}


@router.get(
    "/v1/runs/{run_id}/events", tags=["runs"], response_class=Response,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "Server-Sent Events: `id: <seq>`, `event: <type>`, `data: <event JSON>`; "
                                    "a final `event: end` when the run is terminal"}},
)
async def run_events(
    run_id: str,
    request: Request,
    service: Svc,
    after_seq: Annotated[int, Query(ge=0, description="Send only events after this seq.")] = 0,
    last_event_id: Annotated[str | None, Header(description="Resume after this seq (sent by EventSource on reconnect).")] = None,
) -> EventSourceResponse:
    """The run's events as they happen, resumable; closes once the run is terminal."""
    from .sse import event_stream

    await anyio.to_thread.run_sync(lambda: queries.get_run(service.store(), run_id))
    start = after_seq
    if last_event_id:
        try:
            start = max(start, int(last_event_id))
        except ValueError:
            raise ApiError(400, "INVALID_REQUEST", f"Last-Event-ID must be an event seq, got {last_event_id!r}") from None
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventSourceResponse(event_stream(service, request, run_id, start), headers=headers)


@router.get("/v1/runs/{run_id}/nodes/{node_id}", tags=["runs"])
def get_node(run_id: str, node_id: str, service: Svc) -> dict[str, Any]:
    """One node with every iteration, full attempts, output (``smithers node --json``) and its
    agent ``transcript`` (AgentTurn, AgentReply, AgentEvent, ToolCall*, TokenUsageReported events)."""
    store = service.store()
    detail = queries.node_detail(store, run_id, node_id)
    detail["transcript"] = [
        e for e in store.events(run_id, node_id=node_id) if e["type"] in TRANSCRIPT_TYPES or e["type"].startswith("ToolCall")
    ]
    return detail


@router.get("/v1/runs/{run_id}/nodes/{node_id}/diff", tags=["runs"])
def get_node_diff(
    run_id: str, node_id: str, service: Svc,
    iteration: Annotated[int | None, Query(ge=0, description="The node's iteration (default: its newest).")] = None,
    attempt: Annotated[int | None, Query(ge=1, description="The attempt (default: the newest).")] = None,
    stat: Annotated[bool, Query(description="Leave the patch out (files and +/- counts only).")] = False,
) -> dict[str, Any]:
    """What one attempt changed in the working tree (``smithers diff --json``): ``{run_id, node_id,
    iteration, attempt, before, after, folder, files: [{path, status, additions, deletions}], patch}``."""
    from .. import undo

    result = undo.diff(service.store(), run_id, node_id, iteration, attempt)
    if stat:
        result.pop("patch")
    return result


@router.get("/v1/runs/{run_id}/frames", tags=["runs"])
def get_frames(
    run_id: str, service: Svc, frame: Annotated[int | None, Query(ge=0, description="Rebuild this frame's plan tree.")] = None,
) -> dict[str, Any]:
    """The run's frames (``{run_id, frames: [{frame, keyframe, event_seq, created_at_ms}]}``), or with
    ``?frame=N`` that frame rebuilt: ``{run_id, workflow, frame, frames, event_seq, tree, statuses}``."""
    store = service.store()
    queries.get_run(store, run_id)
    if frame is None:
        rows = store.frame_summaries(run_id)
        return {"run_id": run_id, "frames": [
            {"frame": r["frame_no"], "keyframe": bool(r["is_keyframe"]), "event_seq": r["event_seq"], "created_at_ms": r["created_at_ms"]}
            for r in rows
        ]}
    count = store.frame_count(run_id)
    if frame >= count:
        raise ApiError(404, "UNKNOWN_FRAME", f"run {run_id} has {count} frame(s); frame {frame} does not exist")
    plan = queries.frame_plan(store, run_id, frame)
    statuses = plan.pop("statuses")
    entries = plan.pop("entries")
    return {
        **plan,
        "tree": queries.plan_tree(entries, statuses),
        "statuses": [{"node_id": n, "iteration": i, "status": s} for (n, i), s in statuses.items()],
    }


# -- people in the loop ------------------------------------------------------------------------


@router.get("/v1/inbox", tags=["decisions"])
def get_inbox(service: Svc, run_id: Annotated[str | None, Query(description="Only this run's items.")] = None) -> dict[str, Any]:
    """Every pending approval, human task and awaited signal: ``{items: [...]}`` (``smithers inbox --json``)."""
    items = decisions.inbox(service.store())
    return {"items": [i for i in items if run_id is None or i["run_id"] == run_id]}


def _decide(service: Service, run_id: str, node_id: str, body: DecideBody | None, approved: bool) -> dict[str, Any]:
    body = body or DecideBody()
    store = service.store()
    queries.get_run(store, run_id)
    decisions.check_node(store, run_id, node_id)
    if not store.count_requested_approvals(run_id, node_id, body.iteration):
        raise ApiError(409, "NOT_WAITING", f"run {run_id}: node {node_id!r} is not waiting for an approval")
    result = decisions.decide(
        store, run_id, approved=approved, node_id=node_id, iteration=body.iteration, note=body.note, by=body.by,
        select=body.select, rank=body.rank,
    )
    result["resumed"] = service.continue_if_unowned(run_id)
    return result


@router.post("/v1/runs/{run_id}/nodes/{node_id}/approve", tags=["decisions"])
def approve(run_id: str, node_id: str, service: Svc, body: DecideBody | None = None) -> dict[str, Any]:
    """Approve the node's pending approval; a run nobody runs is continued in the background
    (``resumed: true``)."""
    return _decide(service, run_id, node_id, body, approved=True)


@router.post("/v1/runs/{run_id}/nodes/{node_id}/deny", tags=["decisions"])
def deny(run_id: str, node_id: str, service: Svc, body: DecideBody | None = None) -> dict[str, Any]:
    """Deny the node's pending approval (its ``on_deny`` policy applies)."""
    return _decide(service, run_id, node_id, body, approved=False)


@router.post("/v1/runs/{run_id}/signals/{name}", tags=["decisions"])
def signal(run_id: str, name: str, service: Svc, body: SignalBody | None = None) -> dict[str, Any]:
    """Send a signal: ``{run_id, signal, seq, duplicate, resumed}``."""
    body = body or SignalBody()
    store = service.store()
    queries.get_run(store, run_id)
    result = decisions.send_signal(store, run_id, name, body.data, correlation_id=body.correlation_id, by=body.by)
    result["resumed"] = service.continue_if_unowned(run_id)
    return result


@router.post("/v1/human/{request_id}/answer", tags=["decisions"])
def answer(request_id: str, body: AnswerBody, service: Svc) -> dict[str, Any]:
    """Answer a human task: ``{request_id, run_id, node_id, status, resumed}``."""
    store = service.store()
    status = store.human_request_status(request_id)
    if status is None:
        raise ApiError(404, "UNKNOWN_REQUEST", f"no human request {request_id!r}")
    if status != "pending":
        raise ApiError(409, "ALREADY_ANSWERED", f"human request {request_id} is already {status}")
    result = decisions.answer_human(store, request_id, body.value, by=body.by)
    result["resumed"] = service.continue_if_unowned(result["run_id"])
    return result
