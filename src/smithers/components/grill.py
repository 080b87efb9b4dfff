"""``GrillMe``: an agent interviews a person about a plan, one question at a time, each with its
recommended answer; the person answers through a durable ``HumanTask`` (``smithers human answer``
or the dashboard; the run waits meanwhile, no process needs to stay up). Every question sees the
whole transcript so far; the loop ends when the agent says the shared understanding is complete
(``resolved``) or after ``max_questions``.

Each round of loop ``<p>:loop``: ``<p>:question`` (agent, :class:`GrillQuestion`), then, unless
resolved, ``<p>:answer`` (:class:`GrillAnswer`, from a person).

>>> GrillMe(ctx, "grill", context="Move billing to Stripe", agents=smart)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..authoring.context import Ctx
from ..authoring.human import HumanTask
from ..authoring.nodes import Loop, Task
from ..authoring.policies import Duration

INTERVIEW = """Interview me relentlessly about the plan below until we share a complete understanding of it.
Ask ONE question at a time, the most important open one, with the answer you recommend and why.
If the repository can answer a question, read the code instead of asking. Walk down each branch of
the design (edge cases, failure modes, what is out of scope) before moving on.
When nothing important is left open, set resolved=true and write the shared understanding."""


class GrillQuestion(BaseModel):
    question: str = ""
    recommended_answer: str | None = None
    resolved: bool = False
    shared_understanding: str | None = None


class GrillAnswer(BaseModel):
    answer: str


def transcript(ctx: Ctx, id_prefix: str) -> list[tuple[str, str]]:
    """The (question, answer) pairs answered so far, oldest first."""
    questions: list[GrillQuestion] = ctx.outputs(f"{id_prefix}:question")
    answers: list[GrillAnswer] = ctx.outputs(f"{id_prefix}:answer")
    return [(q.question, a.answer) for q, a in zip(questions, answers, strict=False)]


def GrillMe(  # a component reads like the nodes it returns
    ctx: Ctx,
    id_prefix: str,
    *,
    context: str,
    agents: Any,
    max_questions: int = 20,
    instructions: str = INTERVIEW,
    timeout: Duration = "20m",
    heartbeat_timeout: Duration = "10m",
    retries: int = 2,
) -> Loop:
    p = id_prefix
    loop_id = f"{p}:loop"
    round_ = ctx.iteration(loop_id)
    asked: GrillQuestion | None = ctx.output(f"{p}:question", iteration=round_)
    latest: GrillQuestion | None = ctx.output(f"{p}:question")
    so_far = transcript(ctx, p)
    history = "\n\n".join(f"Q{n}: {q}\nA{n}: {a}" for n, (q, a) in enumerate(so_far, 1)) or "(no questions yet)"
    prompt = f"{instructions}\n\n## The plan\n\n{context}\n\n## The interview so far\n\n{history}"
    ask = asked is not None and not asked.resolved
    return Loop(
        Task(f"{p}:question", output=GrillQuestion, agent=agents, prompt=prompt, timeout=timeout, heartbeat_timeout=heartbeat_timeout,
             retries=retries, label="question"),
        ask and asked is not None and HumanTask(
            f"{p}:answer", output=GrillAnswer, label="your answer",
            prompt=asked.question + (f"\n\nRecommended answer: {asked.recommended_answer}" if asked.recommended_answer else ""),
        ),
        id=loop_id,
        until=latest is not None and latest.resolved,
        max_iterations=max_questions,
    )
