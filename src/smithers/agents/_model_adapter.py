"""The pydantic-ai side of :class:`~smithers.agents.model.ModelAgent` (imported only when one runs).

One task turn = one ``Agent.iter`` run: nodes are reported as AgentEvents as they happen (text,
thinking, tool_use, tool_result), every tool call goes through smithers' tool wrapper or the
reporting wrapper (``tool_call_started`` / ``tool_call_finished``), and pydantic-ai's errors are
mapped onto AgentConfigError (never retried) or AgentError.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic_ai import Agent, StructuredDict, ToolFailed
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelQuotaExceededError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model, infer_model
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_ai.toolsets.wrapper import WrapperToolset
from pydantic_ai.usage import UsageLimits
from pydantic_core import SchemaValidator, core_schema

from ..errors import AgentConfigError, AgentError
from ..tools._core import Tool, ToolContext, Workspace, render_output, run_tool, tool
from .base import AgentRequest, AgentResult, Usage

if TYPE_CHECKING:
    from pydantic_ai import RunContext

OUTPUT_TOOL_PREFIX = "final_result"
MAX_EVENT_OUTPUT = 16_000  # characters of a tool result copied into a tool_result event
_ANY_ARGS = SchemaValidator(core_schema.dict_schema(keys_schema=core_schema.str_schema(), values_schema=core_schema.any_schema()))


class ModelAgentLike(Protocol):
    """What the adapter reads of a :class:`~smithers.agents.model.ModelAgent` (which imports this
    module when it runs, so this module does not import it back)."""

    @property
    def name(self) -> str: ...
    @property
    def model(self) -> Any: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def api_key(self) -> str | None: ...
    @property
    def tools(self) -> Sequence[Any]: ...
    @property
    def mcp_servers(self) -> Sequence[Any]: ...
    @property
    def instructions(self) -> str | Sequence[str] | None: ...
    @property
    def model_settings(self) -> dict[str, Any] | None: ...
    @property
    def max_output_bytes(self) -> int: ...
    @property
    def allow_network(self) -> bool: ...
    @property
    def tool_timeout(self) -> float: ...
    @property
    def tool_env(self) -> Mapping[str, str]: ...
    @property
    def max_requests(self) -> int | None: ...
    @property
    def retries(self) -> int: ...

    def workspace_root(self, request: AgentRequest) -> Path: ...
    def session_history(self, session_id: str | None) -> list[Any] | None: ...
    def save_session(self, session_id: str, messages: list[Any]) -> None: ...


# -- the model ---------------------------------------------------------------------------------


def _key_env(provider: str) -> str:
    return {"google": "GOOGLE_API_KEY", "google-vertex": "GOOGLE_APPLICATION_CREDENTIALS"}.get(
        provider, provider.split("-")[0].upper() + "_API_KEY"
    )


def build_model(agent: ModelAgentLike) -> Model:
    from pydantic_ai.providers import infer_provider, infer_provider_class

    spec = agent.model
    if isinstance(spec, Model):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise AgentConfigError(f"{agent.name}: model {spec!r} must be 'provider:model' or a pydantic-ai Model",
                               hint="for example 'openai:gpt-5' or 'anthropic:claude-sonnet-4-5'")
    provider_name = spec.split(":", 1)[0]
    try:
        provider_cls = infer_provider_class(provider_name)
    except ValueError:
        raise AgentConfigError(
            f"{agent.name}: unknown model provider {provider_name!r}",
            hint="use a pydantic-ai provider prefix: openai, openai-chat, anthropic, google, groq, mistral, bedrock, ollama, "
                 "openrouter, ... (for any OpenAI-compatible server: 'openai-chat:MODEL' with base_url=...)",
        ) from None
    except ImportError as err:
        raise AgentConfigError(f"{agent.name}: the {provider_name!r} provider needs a package that is not installed: {err}",
                               hint=f'pip install "pydantic-ai-slim[{provider_name}]"') from None

    def provider_factory(name: str) -> Any:
        if agent.base_url is None and agent.api_key is None:
            return infer_provider(name)
        params = inspect.signature(provider_cls.__init__).parameters
        kwargs: dict[str, Any] = {}
        for key, value in (("base_url", agent.base_url), ("api_key", agent.api_key)):
            if value is None:
                continue
            if key not in params:
                raise AgentConfigError(f"{agent.name}: the {name!r} provider does not take {key}=",
                                       hint="configure it through the provider's own environment variables instead")
            kwargs[key] = value
        return provider_cls(**kwargs)

    try:
        return infer_model(spec, provider_factory=provider_factory)
    except UserError as err:
        raise AgentConfigError(
            f"{agent.name}: {err}",
            hint=f"set {_key_env(provider_name)} or pass api_key=... (and base_url=... for a self-hosted endpoint) to ModelAgent",
        ) from None
    except ImportError as err:
        raise AgentConfigError(f"{agent.name}: {err}", hint=f'pip install "pydantic-ai-slim[{provider_name}]"') from None


# -- tools -------------------------------------------------------------------------------------


class SmithersToolset(AbstractToolset[Any]):
    """smithers tools as a pydantic-ai toolset: input validated by the tool's own model, output
    capped, failures returned to the model as failed tool results (ToolFailed)."""

    def __init__(self, tools: list[Tool], workspace: Workspace, request: AgentRequest, max_retries: int) -> None:
        self.tools = {t.name: t for t in tools}
        self.workspace = workspace
        self.request = request
        self.max_retries = max_retries

    @property
    def id(self) -> str | None:
        return "smithers-tools"

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        return {
            name: ToolsetTool(
                toolset=self,
                tool_def=ToolDefinition(
                    name=name, description=t.description, parameters_json_schema=t.json_schema(), sequential=t.sequential,
                ),
                max_retries=self.max_retries,
                args_validator=_ANY_ARGS,
            )
            for name, t in self.tools.items()
        }

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]) -> Any:
        call_id = ctx.tool_call_id or f"call_{uuid.uuid4().hex[:16]}"
        tool_ctx = ToolContext(workspace=self.workspace, request=self.request, call_id=call_id, tool_name=name)
        outcome = await run_tool(self.tools[name], tool_args, tool_ctx)
        if outcome.is_error:
            raise ToolFailed(outcome.output)
        return outcome.output


@dataclass
class ReportingToolset(WrapperToolset[Any]):
    """Reports every call of a wrapped toolset (MCP servers, pydantic-ai toolsets) as
    ``tool_call_started`` / ``tool_call_finished``."""

    request: AgentRequest | None = None

    async def call_tool(self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]) -> Any:
        request = self.request
        call_id = ctx.tool_call_id or f"call_{uuid.uuid4().hex[:16]}"
        if request is not None:
            request.emit("tool_call_started", tool=name, call_id=call_id, input=dict(tool_args))
        loop = asyncio.get_running_loop()
        started = loop.time()
        is_error, size = True, 0
        try:
            result = await super().call_tool(name, tool_args, ctx, tool)
            is_error, size = False, len(render_output(result).encode("utf-8", errors="replace"))
            return result
        except ToolFailed as err:
            size = len(err.message.encode("utf-8", errors="replace"))
            raise
        finally:
            if request is not None:
                request.emit("tool_call_finished", tool=name, call_id=call_id, duration_ms=int((loop.time() - started) * 1000),
                             output_bytes=size, is_error=is_error)


def _is_pydantic_ai(value: Any) -> bool:
    return type(value).__module__.split(".")[0] in ("pydantic_ai", "fastmcp", "mcp")


def mcp_toolset(spec: Any, cwd: str) -> AbstractToolset[Any]:
    from fastmcp.client.transports import StdioTransport
    from pydantic_ai.mcp import MCPToolset

    if isinstance(spec, AbstractToolset):
        return spec
    if isinstance(spec, str):
        return MCPToolset(spec, tool_error_behavior="failed")
    if isinstance(spec, Mapping):
        if "url" in spec:
            return MCPToolset(str(spec["url"]), headers=dict(spec.get("headers") or {}) or None, tool_error_behavior="failed")
        if "command" in spec:
            transport = StdioTransport(
                str(spec["command"]), [str(a) for a in spec.get("args") or []], env=dict(spec["env"]) if spec.get("env") else None,
                cwd=str(spec.get("cwd") or cwd), keep_alive=False,
            )
            return MCPToolset(transport, tool_error_behavior="failed")
        raise AgentConfigError(f"MCP server {dict(spec)!r} needs a 'url' or a 'command'",
                               hint='{"url": "http://host/mcp"} or {"command": "python", "args": ["server.py"]}')
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(a, str) for a in spec):
        return MCPToolset(StdioTransport(spec[0], list(spec[1:]), cwd=cwd, keep_alive=False), tool_error_behavior="failed")
    try:
        return MCPToolset(spec, tool_error_behavior="failed")
    except Exception as err:  # whatever MCPToolset rejects is a configuration problem
        raise AgentConfigError(f"cannot use {spec!r} as an MCP server: {err}",
                               hint="pass a URL, a {'command': ...} dict, a command list or an MCPToolset") from None


def build_toolsets(agent: ModelAgentLike, request: AgentRequest, workspace: Workspace) -> list[AbstractToolset[Any]]:
    ours: list[Tool] = []
    others: list[AbstractToolset[Any]] = []
    loose: list[Any] = []
    for item in agent.tools:
        if isinstance(item, Tool):
            ours.append(item)
        elif isinstance(item, AbstractToolset):
            others.append(item)
        elif _is_pydantic_ai(item):  # a pydantic_ai.Tool
            loose.append(item)
        elif callable(item):
            ours.append(tool(item))
        else:
            raise AgentConfigError(
                f"{agent.name}: {item!r} is not a tool", hint="pass smithers.tools tools, @tool functions or pydantic-ai toolsets",
            )
    names = [t.name for t in ours]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AgentConfigError(f"{agent.name}: two tools are named {', '.join(map(repr, duplicates))}", hint="give each tool a unique name")
    toolsets: list[AbstractToolset[Any]] = []
    if ours:
        toolsets.append(SmithersToolset(ours, workspace, request, max_retries=agent.retries))
    if loose:
        others.append(FunctionToolset(loose))
    cwd = str(workspace.root)
    others.extend(mcp_toolset(spec, cwd) for spec in agent.mcp_servers)
    toolsets.extend(ReportingToolset(wrapped=ts, request=request) for ts in others)
    return toolsets


# -- structured output -------------------------------------------------------------------------


def output_type_for(schema: Mapping[str, Any] | None) -> Any:
    """The task's JSON schema as a structured output (an output tool), with plain text still
    allowed: smithers extracts JSON from text and asks again if there is none."""
    if not schema or schema.get("type") != "object":
        return str
    try:
        return [StructuredDict(copy.deepcopy(dict(schema))), str]
    except Exception:  # e.g. recursive $defs: the prompt carries the schema, the reply is parsed
        return str


# -- events ------------------------------------------------------------------------------------


class Reporter:
    def __init__(self, request: AgentRequest) -> None:
        self.request = request
        self.texts: list[str] = []
        self.reported_results: set[str] = set()

    def node(self, node: Any) -> None:
        if Agent.is_call_tools_node(node):
            self.response(node.model_response)
        elif Agent.is_model_request_node(node):
            self.tool_results(node.request)

    def response(self, response: ModelResponse) -> None:
        for part in response.parts:
            if isinstance(part, TextPart):
                if part.content.strip():
                    self.texts.append(part.content)
                    self.request.emit("text", text=part.content)
            elif isinstance(part, ThinkingPart):
                if part.content:
                    self.request.emit("thinking", text=part.content)
            elif isinstance(part, ToolCallPart) and not part.tool_name.startswith(OUTPUT_TOOL_PREFIX):
                try:
                    args: Any = part.args_as_dict()
                except Exception:  # malformed JSON arguments are reported as they came
                    args = {"raw": part.args}
                self.request.emit("tool_use", id=part.tool_call_id, name=part.tool_name, input=args)

    def tool_results(self, request: ModelRequest) -> None:
        for part in request.parts:
            if isinstance(part, (ToolReturnPart, RetryPromptPart)):
                name = part.tool_name
                if name is None or name.startswith(OUTPUT_TOOL_PREFIX) or part.tool_call_id in self.reported_results:
                    continue
                self.reported_results.add(part.tool_call_id)
                if isinstance(part, ToolReturnPart):
                    output, is_error = part.model_response_str(), part.outcome != "success"
                else:
                    output, is_error = part.model_response(), True
                self.request.emit("tool_result", id=part.tool_call_id, output=output[:MAX_EVENT_OUTPUT], is_error=is_error)

    def finish(self, messages: list[Any]) -> None:
        for message in messages:
            if isinstance(message, ModelRequest):
                self.tool_results(message)


# -- errors ------------------------------------------------------------------------------------


def map_error(agent: ModelAgentLike, err: BaseException) -> Exception:
    name = agent.name
    status = getattr(err, "status_code", None)
    details: dict[str, Any] = {"error": type(err).__name__}
    if status is not None:
        details["status_code"] = status
    body = getattr(err, "body", None)
    if body is not None:
        details["body"] = body if isinstance(body, (dict, list, str)) else str(body)
    key_hint = f"check the API key: set {_key_env(agent.provider or 'openai')} or pass api_key=... to ModelAgent"
    if isinstance(err, ModelAuthenticationError) or status in (401, 403):
        return AgentConfigError(f"{name}: the model provider refused the credentials (HTTP {status}): {err}", hint=key_hint,
                                details=details)
    if isinstance(err, ModelNotFoundError) or status == 404:
        return AgentConfigError(f"{name}: unknown model or wrong endpoint (HTTP {status}): {err}",
                                hint="check the model name ('provider:model') and base_url", details=details)
    if isinstance(err, ModelQuotaExceededError):
        return AgentConfigError(f"{name}: the account's quota or credits are used up: {err}", hint="check billing with the provider",
                                details=details)
    if isinstance(err, ModelHTTPError | ModelAPIError):
        return AgentError(f"{name}: the model API failed{f' (HTTP {status})' if status else ''}: {err}", details=details)
    if isinstance(err, UsageLimitExceeded):
        return AgentError(f"{name}: {err} (raise max_requests= on the ModelAgent if the task needs more turns)", details=details)
    if isinstance(err, UnexpectedModelBehavior):
        return AgentError(f"{name}: unexpected model behaviour: {err}", details=details)
    if isinstance(err, UserError):
        return AgentConfigError(f"{name}: {err}", details=details)
    if isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
        return map_error(agent, err.exceptions[0])
    return AgentError(f"{name} failed: {type(err).__name__}: {err}", details=details)


# -- the run -----------------------------------------------------------------------------------


def _cost(messages: list[Any]) -> float | None:
    total = 0.0
    for message in messages:
        if isinstance(message, ModelResponse):
            try:
                total += float(message.cost().total_price)
            except Exception:  # unknown model or price: no cost rather than a failed task
                return None
    return total


async def run(agent: ModelAgentLike, request: AgentRequest) -> AgentResult:
    model = build_model(agent)
    workspace = Workspace(
        agent.workspace_root(request), max_output_bytes=agent.max_output_bytes, allow_network=agent.allow_network,
        timeout=agent.tool_timeout, env=agent.tool_env,
    )
    if not workspace.root.is_dir():
        raise AgentConfigError(f"{agent.name}: the tool root {workspace.root} is not a directory", hint="pass root= an existing directory")
    toolsets = build_toolsets(agent, request, workspace)
    history = agent.session_history(request.resume_session_id)
    session_id = request.resume_session_id or str(uuid.uuid4())
    # the user's settings go to pydantic-ai as given (provider-specific keys included); it reads the keys it knows
    settings = cast("ModelSettings | None", agent.model_settings)
    pa_agent = Agent(
        model, output_type=output_type_for(request.output_schema), instructions=agent.instructions, toolsets=toolsets,
        model_settings=settings, retries=agent.retries, name=agent.name.replace(":", "_"),
    )
    reporter = Reporter(request)
    limits = UsageLimits(request_limit=agent.max_requests)
    deadline = asyncio.timeout(request.timeout)
    try:
        async with deadline, pa_agent, pa_agent.iter(request.prompt, message_history=history, usage_limits=limits) as agent_run:
            async for node in agent_run:
                reporter.node(node)
        result = agent_run.result
    except TimeoutError as err:
        if deadline.expired():
            raise AgentError(f"{agent.name} timed out after {request.timeout:g}s") from None
        raise map_error(agent, err) from err
    except AgentError:
        raise
    except Exception as err:
        raise map_error(agent, err) from err
    if result is None:  # the run ended without a result (should not happen without an exception)
        raise AgentError(f"{agent.name}: the model run ended without a result")
    new_messages = result.new_messages()
    reporter.finish(new_messages)
    agent.save_session(session_id, result.all_messages())
    usage = result.usage
    cost = _cost(new_messages)
    output = result.output
    model_name = next((m.model_name for m in reversed(new_messages) if isinstance(m, ModelResponse) and m.model_name), None)
    if isinstance(output, str):
        text, structured = output, None
    else:
        structured = dict(output) if isinstance(output, Mapping) else output
        text = "\n\n".join(reporter.texts) or json.dumps(structured, default=str)
    return AgentResult(
        text=text,
        output=structured,
        usage=Usage(
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens, cost_usd=cost,
        ).to_dict(),
        session_id=session_id,
        model=model_name or (agent.model if isinstance(agent.model, str) else agent.name),
    )
