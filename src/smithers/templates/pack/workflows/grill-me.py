# smithers-source: seeded
# smithers-display-name: Grill Me
"""Grill me: an agent interviews you about a plan, one question at a time (with its recommended
answer), until you share a complete understanding. Each question waits for you:

    smithers inbox                                   # the open question and its request id
    smithers human answer hr-... --value '{"answer": "..."}'
    smithers resume RUN                              # or keep `smithers supervise` running

Run it:  smithers workflow run grill-me --prompt "move billing to Stripe"
Tune it: .smithers/prompts/grill.md; `max_questions` in the input.
"""

from pydantic import BaseModel

from smithers import Ctx, Loop, workflow
from smithers.components import GrillMe
from smithers.pack import Project

project = Project.of(__file__)


class GrillInput(BaseModel):
    prompt: str
    max_questions: int = 20


@workflow(input=GrillInput, cwd="../..")  # tasks work in the repository root
def grill_me(ctx: Ctx) -> Loop:
    return GrillMe(ctx, "grill-me", context=ctx.input.prompt, agents=project.tier("smart"), max_questions=ctx.input.max_questions,
                   instructions=project.prompt("grill"))
