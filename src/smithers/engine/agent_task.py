"""④ Execute an agent attempt: pick the agent (fallback chains), prompt it with the output
schema, extract and validate the JSON, and run follow-up turns until it validates.

The ladder, per attempt (none of these turns consumes a retry):

1. the task's prompt plus the output model's JSON schema;
2. if nothing in the reply parses as JSON: one follow-up turn asking for only the JSON;
3. if the JSON fails validation: up to 3 repair turns quoting the validation errors.

Still invalid after that, the attempt fails with the errors recorded, and the retry policy
decides. Follow-up turns continue the agent's session when it reports one; otherwise the
follow-up prompt carries the earlier exchange itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..authoring.context import TaskContext
from ..errors import AgentConfigError, AgentError, ErrorCode, InvalidOutputError
from .outputs import extract_json, schema_instruction, validate_output
from .tree import TaskDescriptor

if TYPE_CHECKING:
    from ..agents.base import AgentEvent, AgentResult

MAX_REPAIR_TURNS = 3
MAX_RECORDED_TEXT = 64_000

Emit = Callable[[str, dict[str, Any]], None]  # (run event type, payload)


@dataclass
class AgentChain:
    """The agents of one task. ``disabled`` holds the ids of agent objects that failed with a
    configuration error; it is shared by every chain of the run, so such an agent is skipped
    for the rest of the run wherever it appears."""

    agents: list[Any]
    disabled: set[int] = field(default_factory=set)

    @classmethod
    def of(cls, desc: TaskDescriptor, disabled: set[int]) -> AgentChain:
        agent = desc.task.agent
        agents = list(agent) if isinstance(agent, (list, tuple)) else [agent]
        agents = [_named(a) if isinstance(a, str) else a for a in agents]
        if not agents:
            raise AgentConfigError(f"task {desc.node_id!r}: the agent list is empty", hint="pass agent=SomeAgent() or a non-empty list")
        for index, candidate in enumerate(agents):
            if not callable(getattr(candidate, "run", None)):
                raise AgentConfigError(
                    f"task {desc.node_id!r}: agent #{index} ({candidate!r:.80}) is not an agent: it has no async run(request)",
                    hint="use an agent from smithers.agents or any object with `async def run(self, request)`",
                )
        return cls(agents, disabled)

    def pick(self, attempt: int) -> int | None:
        """Attempt n uses entry min(n, len) - 1, or the next entry that is still enabled."""
        preferred = min(attempt, len(self.agents)) - 1
        order = [preferred, *range(preferred + 1, len(self.agents)), *range(preferred)]
        return next((i for i in order if id(self.agents[i]) not in self.disabled), None)

    def disable(self, index: int) -> None:
        self.disabled.add(id(self.agents[index]))

    @property
    def has_enabled(self) -> bool:
        return any(id(agent) not in self.disabled for agent in self.agents)


_NAMED: dict[str, Any] = {}


def _named(name: str) -> Any:
    """One agent object per name for the process, so a name disabled by a config error stays off."""
    from ..agents import resolve

    if name not in _NAMED:
        _NAMED[name] = resolve(name)
    return _NAMED[name]


_SCHEMAS: dict[type[BaseModel], tuple[dict[str, Any], str]] = {}


def _schema_of(model: type[BaseModel]) -> tuple[dict[str, Any], str]:
    """The output model's JSON schema and the prompt's schema instruction, built once per model
    class (pydantic builds a JSON schema anew on every call: ~2 ms each, twice per agent task)."""
    cached = _SCHEMAS.get(model)
    if cached is None:
        cached = _SCHEMAS[model] = (model.model_json_schema(), schema_instruction(model))
    return cached


def _errors_text(err: InvalidOutputError) -> str:
    errors = err.details.get("errors") or []
    lines = [f"- {'.'.join(str(p) for p in e.get('loc', ())) or '(root)'}: {e.get('msg')}" for e in errors]
    return "\n".join(lines) or err.message


async def run_agent_attempt(
    desc: TaskDescriptor, tc: TaskContext, chain: AgentChain, emit: Emit, heartbeat: Callable[[], None], info: dict[str, Any]
) -> BaseModel:
    """One attempt: returns the validated output. ``info`` (agent, turns, session, model) is
    filled in as the attempt goes, for the attempt's record whether it succeeds or not."""
    from ..agents.base import AgentRequest, agent_name  # only a run with agent tasks imports the agents
    from ..agents.cassette import active_cassette

    index = chain.pick(tc.attempt)
    if index is None:
        raise AgentConfigError(
            f"task {desc.node_id!r}: every agent in its chain is disabled by a configuration error",
            hint="fix the agents' setup (see `smithers agents`) and resume",
        )
    agent = chain.agents[index]
    name = agent_name(agent)
    schema, instruction = _schema_of(desc.model)
    info.update(agent=name, agent_index=index, turns=0, session_id=None, model=None)
    cassette = active_cassette()  # `--record`/`--replay`: every call goes through the cassette

    def on_event(event: AgentEvent) -> None:
        heartbeat()
        if event.kind == "tool_call_started":
            emit("ToolCallStarted", dict(event.data))
        elif event.kind == "tool_call_finished":
            emit("ToolCallFinished", dict(event.data))
        else:
            emit("AgentEvent", {"agent": name, "kind": event.kind, "data": event.data})

    base_prompt = (desc.task.prompt or "") + instruction
    prompt, kind = base_prompt, "prompt"
    session: str | None = None
    transcript = ""  # for agents without sessions, follow-ups carry the exchange themselves
    json_only_asked = False
    repairs = 0
    while True:
        info["turns"] += 1
        turn = info["turns"]
        sent = prompt if session is not None or turn == 1 else f"{transcript}\n\n{prompt}"
        emit("AgentTurn", {"agent": name, "turn": turn, "kind": kind, "prompt": sent[:MAX_RECORDED_TEXT]})
        request = AgentRequest(
            prompt=sent, output_schema=schema, cwd=tc.cwd, timeout=desc.task.timeout, on_event=on_event, resume_session_id=session,
            run_id=tc.run_id, node_id=desc.node_id, iteration=desc.iteration, attempt=tc.attempt, turn=turn,
        )
        try:
            result: AgentResult = await (agent.run(request) if cassette is None else cassette.call(agent, name, request))
        except AgentConfigError as err:
            chain.disable(index)
            if chain.has_enabled:  # another agent in the chain takes the retry; this one is off for the run
                raise AgentError(
                    f"{err.message} ({name} is skipped for the rest of this run)", retryable=True, code=ErrorCode.AGENT_CONFIG,
                    hint=err.hint, details={**err.details, "agent": name},
                ) from None
            raise
        except AgentError:
            raise
        except Exception as err:  # an agent is user code; its failure is the attempt's
            raise AgentError(f"agent {name} raised {type(err).__name__}: {err}") from err
        heartbeat()
        session = result.session_id or session
        info["session_id"], info["model"] = session, result.model or info["model"]
        if result.usage:
            emit("TokenUsageReported", {"agent": name, "model": result.model, "turn": turn, **result.usage})
        transcript = f"{transcript}\n\n[you were asked]\n{sent if turn == 1 else prompt}\n\n[you replied]\n{result.text}".strip()
        value = result.output
        if value is None:
            try:
                value = extract_json(result.text)
            except ValueError:
                emit("AgentReply", {"agent": name, "turn": turn, "text": result.text[:MAX_RECORDED_TEXT], "outcome": "no-json"})
                if json_only_asked:
                    raise InvalidOutputError(
                        f"task {desc.node_id!r}: {name} did not reply with JSON, even when asked for only the JSON",
                        retryable=True, details={"reply": result.text[-2000:]},
                    ) from None
                json_only_asked = True
                prompt, kind = ("Reply with only the JSON object for your answer, matching the schema given earlier, and nothing else:\n"
                                + json.dumps(schema)), "json-only"
                continue
        try:
            output = validate_output(desc.model, value, node_id=desc.node_id, retryable=True)
        except InvalidOutputError as err:
            emit("AgentReply", {
                "agent": name, "turn": turn, "text": result.text[:MAX_RECORDED_TEXT], "outcome": "invalid", "errors": _errors_text(err),
            })
            if repairs >= MAX_REPAIR_TURNS:
                raise InvalidOutputError(
                    f"{err.message} (after {MAX_REPAIR_TURNS} repair turns)", retryable=True, details=err.details
                ) from None
            repairs += 1
            prompt, kind = (
                f"Your JSON does not match the required schema:\n{_errors_text(err)}\n\n"
                "Reply with only the corrected JSON object.", "repair",
            )
            continue
        emit("AgentReply", {"agent": name, "turn": turn, "text": result.text[:MAX_RECORDED_TEXT], "outcome": "valid"})
        return output
