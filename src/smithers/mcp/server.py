"""``smithers mcp``: the tools of :class:`~smithers.mcp.tools.SmithersTools` served over stdio on
the official MCP SDK (``mcp.server.MCPServer``).

Every tool answers the envelope of :mod:`smithers.mcp.models` as structured content (and the
same JSON as text, for clients that read only text): ``{ok: true, data}``, or ``{ok: false, error:
{code, message, hint}}`` with ``isError`` set. Errors are results: a smithers error keeps its stable
code (UNKNOWN_RUN, INVALID_INPUT, ...), arguments that do not match the input schema are
``INVALID_ARGUMENTS``, and anything unexpected is ``INTERNAL`` — the server never answers a tool call
with a protocol error.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from ..errors import SmithersError
from .models import Envelope, ToolFailure
from .tools import SmithersTools

log = logging.getLogger("smithers.mcp")

SERVER_NAME = "smithers"
INSTRUCTIONS = (
    "smithers runs durable AI-agent workflows. list_workflows finds workflow files; run_workflow starts one in "
    "the background and returns its run id at once; get_run, explain_run and get_run_events (paged with after_seq) "
    "watch it; list_pending shows approvals, human tasks and signals a run waits for, answered with approve, deny, "
    "answer_human and send_signal; cancel_run and resume_run change a run; get_diff shows what an attempt changed "
    "in the files, revert_attempt puts them back and fork_run starts again from an earlier frame. Every tool returns {ok, data} or "
    "{ok: false, error: {code, message, hint}}."
)

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
# (tool, annotations): read tools change nothing; deny and cancel_run end work, so they are destructive
TOOLS: tuple[tuple[str, ToolAnnotations], ...] = (
    ("list_workflows", READ),
    ("run_workflow", ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)),
    ("list_runs", READ),
    ("get_run", READ),
    ("explain_run", READ),
    ("get_run_events", READ),
    ("get_node", READ),
    ("get_chat_transcript", READ),
    ("list_pending", READ),
    ("approve", ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)),
    ("deny", ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)),
    ("send_signal", ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True)),
    ("answer_human", ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)),
    ("cancel_run", ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)),
    ("resume_run", ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)),
    # time travel (DESIGN §10.3): a fork leaves its parent alone; a revert overwrites working-tree files
    ("fork_run", ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)),
    ("revert_attempt", ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)),
    ("get_diff", READ),
)


def failure(code: str, message: str, hint: str | None = None) -> CallToolResult:
    """An ``{ok: false, error}`` result (``isError`` set, so clients that only read text know too)."""
    body = Envelope[BaseModel](ok=False, error=ToolFailure(code=code, message=message, hint=hint)).model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body))], structured_content=body, is_error=True)


def success(data: BaseModel) -> CallToolResult:
    body = {"ok": True, "data": data.model_dump(mode="json"), "error": None}
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body))], structured_content=body)


def enveloped(method: Any) -> Any:
    """Wrap a tool method: its data becomes ``{ok: true, data}``, a raised error ``{ok: false, error}``;
    the published output schema is ``Envelope[<the method's return model>]``."""
    signature = inspect.signature(method, eval_str=True)
    data_model = signature.return_annotation

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return success(method(*args, **kwargs))
        except SmithersError as err:
            return failure(str(err.code), err.message, err.hint)
        except Exception as err:  # a tool never answers with a protocol error; the log keeps the traceback
            log.exception("tool %s failed", method.__name__)
            return failure("INTERNAL", f"{type(err).__name__}: {err}", "this is a bug in smithers; the server's stderr has the traceback")

    # attr-defined: typeshed's functions have no __signature__ (inspect reads it); valid-type: the
    # Envelope is parametrised with a model known only at run time, which mypy cannot check
    call.__signature__ = signature.replace(return_annotation=Annotated[CallToolResult, Envelope[data_model]])  # type: ignore[attr-defined, valid-type]
    return call


class SmithersMCPServer(MCPServer[Any]):
    """MCPServer whose argument-validation failures are envelopes too (``INVALID_ARGUMENTS``)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        if self._tool_manager.get_tool(name) is None:
            return failure("UNKNOWN_TOOL", f"no tool {name!r}", f"the tools are: {', '.join(t for t, _ in TOOLS)}")
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as err:
            cause = err.__cause__
            if isinstance(cause, ValidationError):
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in cause.errors())
                return failure("INVALID_ARGUMENTS", f"{name}: {problems}", "see the tool's input schema")
            raise


def build_server(db: str, root: Path) -> SmithersMCPServer:
    """The server over one database (``db``: a SQLite path or a ``postgresql://`` URL), with ``root`` as the project."""
    from .. import __version__

    server = SmithersMCPServer(SERVER_NAME, version=__version__, instructions=INSTRUCTIONS)
    tools = SmithersTools(db, root)
    for name, tool_annotations in TOOLS:
        method = getattr(tools, name)
        server.add_tool(enveloped(method), name=name, description=inspect.getdoc(method), annotations=tool_annotations)
    return server


def serve_stdio(db: str, root: Path) -> None:
    """Serve until the client closes stdin."""
    logging.basicConfig(level=logging.WARNING, format="smithers mcp: %(levelname)s %(message)s")  # stderr: stdout is the protocol
    build_server(db, root).run("stdio")
