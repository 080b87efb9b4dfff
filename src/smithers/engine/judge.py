"""``llm_judge``: any smithers agent scores an output against a rubric.

The judge is asked once with the rubric, the run's input, the task's prompt, the output (and
the eval case's expected value when there is one) and the JSON schema of :class:`Verdict`; its
reply is parsed like a task's (structured output, whole text, fenced JSON, last object) and
validated. A reply that does not validate gets one repair turn; still invalid, the score is
recorded as an error (the run is never affected).

>>> judge = llm_judge("clarity", agent=ClaudeCode(model="haiku"),
...                   instructions="1.0 when a newcomer could act on the summary alone")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..authoring.scoring import Score, ScoreInput, _check_sampling
from ..errors import AgentError
from .outputs import extract_json

MAX_SHOWN = 20_000  # characters of input / output / expected shown to the judge


class Verdict(BaseModel):
    """What a judge must answer."""

    score: float = Field(ge=0.0, le=1.0, description="How well the output meets the rubric: 0.0 (not at all) to 1.0 (fully).")
    reason: str = Field(description="One or two sentences: why this score.")


def _shown(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "\n… (truncated)"


class LlmJudge:
    """A scorer that asks an agent for a :class:`Verdict` (see :func:`llm_judge`)."""

    def __init__(self, name: str, *, agent: Any, instructions: str, sampling: float = 1.0, timeout: float | None = 300.0) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("llm_judge needs a name (it labels the score)")
        if not callable(getattr(agent, "run", None)):
            raise ValueError(f"llm_judge {name!r}: agent= must be a smithers agent (an object with async run(request))")
        if not isinstance(instructions, str) or not instructions.strip():
            raise ValueError(f"llm_judge {name!r}: instructions= must say how to score (the rubric)")
        self.name = name
        self.agent = agent
        self.instructions = instructions
        self.sampling = _check_sampling(sampling, name)
        self.timeout = timeout

    def prompt(self, inp: ScoreInput) -> str:
        parts = [
            "You are judging the output of one step of an automated workflow.",
            f"## Rubric\n{self.instructions.strip()}",
            f"## Workflow input\n{_shown(inp.input)}",
        ]
        if inp.prompt:
            parts.append(f"## The step's instructions\n{_shown(inp.prompt)}")
        parts.append(f"## The step's output\n{_shown(inp.output)}")
        if inp.expected is not None:
            parts.append(f"## Expected (reference answer)\n{_shown(inp.expected)}")
        schema = json.dumps(Verdict.model_json_schema(), indent=2)
        parts.append(
            "Score the output against the rubric. Reply with only a JSON object that validates against this "
            f"JSON schema:\n```json\n{schema}\n```"
        )
        return "\n\n".join(parts)

    async def score(self, inp: ScoreInput) -> Score:
        from ..agents.base import AgentRequest, agent_name  # a run without judges never imports the agents

        name = agent_name(self.agent)
        prompt, session = self.prompt(inp), None
        usage: dict[str, Any] = {}
        for turn in (1, 2):
            request = AgentRequest(
                prompt=prompt, output_schema=Verdict.model_json_schema(), cwd=os.getcwd(), timeout=self.timeout,
                resume_session_id=session, run_id=inp.run_id, node_id=inp.node, iteration=inp.iteration, attempt=inp.attempt, turn=turn,
            )
            result = await self.agent.run(request)
            session = result.session_id or session
            for key, value in (result.usage or {}).items():
                if isinstance(value, (int, float)):
                    usage[key] = usage.get(key, 0) + value
            try:
                raw = result.output if result.output is not None else extract_json(result.text)
                verdict = Verdict.model_validate(raw)
            except (ValueError, ValidationError) as err:
                if turn == 2:
                    raise AgentError(f"judge {self.name!r} ({name}) did not answer with a valid verdict: {err}") from None
                prompt = (
                    f"Your answer was not a valid verdict ({str(err)[:500]}). Reply with only the JSON object "
                    '{"score": <0.0 to 1.0>, "reason": "<why>"}.'
                    + ("" if session else f"\n\n(The task was:)\n{self.prompt(inp)}")
                )
                continue
            return Score(verdict.score, reason=verdict.reason, meta={"judge": name, "model": result.model, "usage": usage, "turns": turn})
        raise AssertionError("unreachable")  # pragma: no cover


def llm_judge(name: str, *, agent: Any, instructions: str, sampling: float = 1.0, timeout: float | None = 300.0) -> LlmJudge:
    """A scorer that has ``agent`` (any smithers agent) grade the output with ``instructions``
    (the rubric) and answer a structured :class:`Verdict` ``{score, reason}``."""
    return LlmJudge(name, agent=agent, instructions=instructions, sampling=sampling, timeout=timeout)


__all__ = ["LlmJudge", "Verdict", "llm_judge"]
