"""What every tool shares: the workspace it is confined to, its context, and the call wrapper
that validates input, caps output and reports ``tool_call_started`` / ``tool_call_finished``.
"""

from __future__ import annotations

import inspect
import json
import os
import time
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

DEFAULT_MAX_OUTPUT_BYTES = 200_000
DEFAULT_TIMEOUT = 60.0


class ToolError(Exception):
    """A tool call failed in a way the model should see and adapt to (a path outside the root,
    no match for an edit, a timeout). Its message is the tool result the model gets."""


@dataclass(frozen=True)
class Workspace:
    """Where tools may act and their limits.

    - ``root``: every path a tool touches must resolve (symlinks followed) inside it;
    - ``max_output_bytes``: a tool result longer than this is cut, with a note saying so;
    - ``allow_network``: ``bash`` runs without network unless this is True (enforced by
      bubblewrap's network namespace; without a usable ``bwrap``, bash is refused);
    - ``timeout``: seconds before ``bash`` / ``grep`` are killed (their whole process group);
    - ``env``: extra environment variables for ``bash``;
    - ``bwrap``: the bubblewrap binary to use (name on PATH or path).
    """

    root: Path
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    allow_network: bool = False
    timeout: float = DEFAULT_TIMEOUT
    env: Mapping[str, str] = field(default_factory=dict)
    bwrap: str = "bwrap"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(os.path.realpath(os.fspath(self.root))))
        if self.max_output_bytes < 1024:
            raise ValueError(f"max_output_bytes must be at least 1024, got {self.max_output_bytes}")
        if self.timeout <= 0:
            raise ValueError(f"the tool timeout must be positive, got {self.timeout}")

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """``path`` (relative to the root, or absolute) as a real path inside the root.

        Symlinks are resolved before the check, so a link pointing outside is refused too."""
        raw = os.fspath(path)
        if not raw or not raw.strip():
            raise ToolError("a path is required")
        candidate = Path(raw) if os.path.isabs(raw) else self.root / raw
        try:
            real = Path(os.path.realpath(candidate, strict=False))
        except (OSError, RuntimeError) as err:
            raise ToolError(f"cannot resolve {raw!r}: {err}") from None
        if real != self.root and self.root not in real.parents:
            shown = f" (it resolves to {real})" if str(real) != str(candidate) else ""
            raise ToolError(
                f"{raw!r} is outside the tool root {self.root}{shown}: tools may only touch files inside the root, "
                "and symlinks are followed before this check"
            )
        return real

    def relative(self, path: Path) -> str:
        """How a path inside the root is shown to the model."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return str(path)
        return str(rel) if str(rel) != "." else "."

    def cap(self, text: str, *, keep: Literal["head", "both"] = "head") -> str:
        """``text`` cut to ``max_output_bytes`` (UTF-8) with a note, keeping the start (or both ends)."""
        data = text.encode("utf-8", errors="replace")
        return cap_bytes(data, len(data), self.max_output_bytes, keep=keep)


MARKER_ROOM = 160  # bytes kept free for the truncation note, so a result never exceeds the limit


def cap_bytes(data: bytes, total: int, limit: int, *, keep: Literal["head", "both"] = "head", tail: bytes = b"") -> str:
    """Cut output of ``total`` bytes to at most ``limit`` bytes, note included: ``data`` is what was
    kept from the start, ``tail`` (for ``keep="both"``) the last bytes."""
    if total <= limit and not tail:
        return data.decode("utf-8", errors="replace")
    room = max(limit - MARKER_ROOM, 16)
    if keep == "head":
        head = data[:room].decode("utf-8", errors="ignore")
        return f"{head}\n[output truncated: {total} bytes in all, showing the first {room}]"
    half = room // 2
    source_tail = tail if tail else data
    head_bytes, end = data[:half], source_tail[len(source_tail) - half:]
    omitted = total - len(head_bytes) - len(end)
    head = head_bytes.decode("utf-8", errors="ignore")
    rest = end.decode("utf-8", errors="ignore")
    return f"{head}\n[output truncated: {total} bytes in all, {omitted} bytes omitted here]\n{rest}"


class ToolRequest(Protocol):
    """What a tool sees of the task that calls it: the agent's request
    (:class:`smithers.agents.AgentRequest` is one). Tools sit below agents, so they name only
    the parts they use: where the task runs, its environment, its identity and its event sink."""

    @property
    def cwd(self) -> str: ...

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def run_id(self) -> str: ...

    @property
    def node_id(self) -> str: ...

    @property
    def iteration(self) -> int: ...

    def emit(self, kind: str, **data: Any) -> None: ...


@dataclass
class ToolContext:
    """What a tool function gets when it declares a parameter annotated ``ToolContext``."""

    workspace: Workspace
    request: ToolRequest | None = None
    call_id: str = ""
    tool_name: str = ""

    @property
    def root(self) -> Path:
        return self.workspace.root

    @property
    def idempotency_key(self) -> str:
        """``run_id:node_id:iteration``: the same across retries and resumes of the task, so a
        side-effecting tool can tell an external system not to do the same thing twice."""
        req = self.request
        if req is None:
            return ""
        return f"{req.run_id}:{req.node_id}:{req.iteration}"

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        return self.workspace.resolve(path)

    def emit(self, kind: str, **data: Any) -> None:
        if self.request is not None:
            self.request.emit(kind, **data)


@dataclass
class ToolOutcome:
    output: str
    is_error: bool
    duration_ms: int
    output_bytes: int


_Inject = Literal["ctx", "idempotency_key"]


class Tool:
    """A tool a model can call: a name, a description, a pydantic input model and a function.

    Make one with :func:`tool`. ``side_effects=True`` marks a tool that changes something outside
    the workspace; such a tool may declare an ``idempotency_key: str`` parameter and gets the
    task's stable key (``run_id:node_id:iteration``) in it.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        description: str,
        input_model: type[BaseModel],
        model_param: str | None,
        inject: Mapping[str, _Inject],
        side_effects: bool = False,
        sequential: bool = False,
    ) -> None:
        self.fn = fn
        self.name = name
        self.description = description
        self.input_model = input_model
        self.model_param = model_param
        self.inject = dict(inject)
        self.side_effects = side_effects
        self.sequential = sequential or side_effects
        self.is_async = inspect.iscoroutinefunction(fn)

    def __repr__(self) -> str:
        return f"<smithers tool {self.name!r}>"

    def json_schema(self) -> dict[str, Any]:
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        return schema

    async def invoke(self, args: Mapping[str, Any] | BaseModel, ctx: ToolContext) -> Any:
        """Validate ``args`` and run the function (sync functions run in a worker thread).
        Raises ToolError, pydantic's ValidationError, or whatever the function raises."""
        model = args if isinstance(args, self.input_model) else self.input_model.model_validate(
            args.model_dump() if isinstance(args, BaseModel) else dict(args)
        )
        kwargs: dict[str, Any] = {}
        if self.model_param is not None:
            kwargs[self.model_param] = model
        else:
            kwargs.update({name: getattr(model, name) for name in type(model).model_fields})
        for param, what in self.inject.items():
            kwargs[param] = ctx if what == "ctx" else ctx.idempotency_key
        if self.is_async:
            return await self.fn(**kwargs)
        import anyio

        return await anyio.to_thread.run_sync(lambda: self.fn(**kwargs))

    async def __call__(
        self, args: Mapping[str, Any] | BaseModel | None = None, *, workspace: Workspace | None = None,
        request: ToolRequest | None = None, call_id: str | None = None, **kwargs: Any,
    ) -> ToolOutcome:
        """Run the tool as a model would: ``await read({"path": "a.txt"}, workspace=Workspace(root))``.
        Never raises for a tool failure: the outcome says ``is_error``."""
        if workspace is None:
            workspace = Workspace(Path(request.cwd) if request is not None else Path.cwd())
        merged: Mapping[str, Any] | BaseModel = {**(args or {}), **kwargs} if not isinstance(args, BaseModel) else args
        ctx = ToolContext(workspace=workspace, request=request, call_id=call_id or f"call_{uuid.uuid4().hex[:16]}", tool_name=self.name)
        return await run_tool(self, merged, ctx)


def render_output(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _errors_text(err: ValidationError) -> str:
    parts = []
    for item in err.errors(include_url=False):
        loc = ".".join(str(p) for p in item.get("loc", ())) or "(input)"
        parts.append(f"{loc}: {item.get('msg')}")
    return "; ".join(parts)


async def run_tool(tool: Tool, args: Mapping[str, Any] | BaseModel, ctx: ToolContext) -> ToolOutcome:
    """One tool call with its two events; failures become an error result, never an exception
    (except cancellation, which is reported and re-raised)."""
    shown_input = args.model_dump(mode="json") if isinstance(args, BaseModel) else dict(args)
    ctx.emit("tool_call_started", tool=tool.name, call_id=ctx.call_id, input=shown_input)
    started = time.monotonic()
    is_error = True
    output = ""
    try:
        output = render_output(await tool.invoke(args, ctx))
        is_error = False
    except ToolError as err:
        output = f"error: {err}"
    except ValidationError as err:
        output = f"error: invalid arguments for {tool.name}: {_errors_text(err)}"
    except BaseException as err:
        if not isinstance(err, Exception):  # cancellation, KeyboardInterrupt: report, then re-raise
            output = f"error: the {tool.name} call was cancelled"
            _finish(ctx, tool, started, output, True)
            raise
        output = f"error: {tool.name} raised {type(err).__name__}: {err}"
    output = ctx.workspace.cap(output)
    return _finish(ctx, tool, started, output, is_error)


def _finish(ctx: ToolContext, tool: Tool, started: float, output: str, is_error: bool) -> ToolOutcome:
    duration_ms = int((time.monotonic() - started) * 1000)
    size = len(output.encode("utf-8", errors="replace"))
    ctx.emit("tool_call_finished", tool=tool.name, call_id=ctx.call_id, duration_ms=duration_ms, output_bytes=size, is_error=is_error)
    return ToolOutcome(output=output, is_error=is_error, duration_ms=duration_ms, output_bytes=size)


# -- the @tool decorator ----------------------------------------------------------------------


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _make_tool(
    fn: Callable[..., Any], *, name: str | None, description: str | None, side_effects: bool, sequential: bool,
    localns: Mapping[str, Any] | None = None,
) -> Tool:
    tool_name = name or fn.__name__
    if not tool_name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"tool name {tool_name!r} must be letters, digits, '_' or '-'")
    try:  # the defining scope's locals resolve string annotations of classes defined in a function
        hints = typing.get_type_hints(fn, localns=dict(localns or {}), include_extras=True)
    except Exception as err:  # NameError, TypeError...: reported at definition time
        raise ValueError(f"tool {tool_name!r}: cannot resolve its parameter annotations ({err})") from None
    signature = inspect.signature(fn)
    inject: dict[str, _Inject] = {}
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ValueError(f"tool {tool_name!r}: *args / **kwargs parameters are not supported; declare each input")
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext or (param.name == "ctx" and param.name not in hints):
            inject[param.name] = "ctx"
            continue
        if param.name == "idempotency_key":
            if not side_effects:
                raise ValueError(
                    f"tool {tool_name!r} takes an idempotency_key but is not marked side_effects=True; use @tool(side_effects=True)"
                )
            inject[param.name] = "idempotency_key"
            continue
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    model_param: str | None = None
    if len(fields) == 1:
        (only, (annotation, default)), = fields.items()
        if _is_model(annotation):
            model_param, input_model = only, annotation
    if model_param is None:
        config = ConfigDict(extra="forbid")
        input_model = create_model(f"{tool_name}_input", __config__=config, **fields)
    doc = inspect.getdoc(fn) or ""
    return Tool(
        fn, name=tool_name, description=(description or doc or tool_name).strip(), input_model=input_model,
        model_param=model_param, inject=inject, side_effects=side_effects, sequential=sequential,
    )


def _caller_locals() -> dict[str, Any]:
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        return dict(caller.f_locals) if caller is not None else {}
    finally:
        del frame


@typing.overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@typing.overload
def tool(
    *, name: str | None = None, description: str | None = None, side_effects: bool = False, sequential: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None, description: str | None = None,
    side_effects: bool = False, sequential: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function (sync or async) a tool for :class:`~smithers.agents.ModelAgent`.

    The input is either one parameter annotated with a pydantic model, or typed parameters
    (turned into a model). The docstring is the description. A parameter annotated
    :class:`ToolContext` receives the call's context (workspace root, request, call id); with
    ``side_effects=True`` a parameter named ``idempotency_key`` receives ``run_id:node_id:iteration``,
    stable across retries and resumes. Side-effecting tools never run concurrently with others.

    >>> from pydantic import BaseModel
    >>> class Ticket(BaseModel):
    ...     title: str
    >>> @tool(side_effects=True)
    ... def open_ticket(ticket: Ticket, idempotency_key: str) -> str:
    ...     '''Open a ticket in the tracker.'''
    ...     return f"opened {ticket.title!r} (key {idempotency_key})"
    >>> open_ticket.name, open_ticket.json_schema()["required"]
    ('open_ticket', ['title'])
    """
    if fn is not None:
        return _make_tool(fn, name=name, description=description, side_effects=side_effects, sequential=sequential,
                          localns=_caller_locals())

    def decorate(inner: Callable[..., Any]) -> Tool:
        return _make_tool(inner, name=name, description=description, side_effects=side_effects, sequential=sequential,
                          localns=_caller_locals())

    return decorate
