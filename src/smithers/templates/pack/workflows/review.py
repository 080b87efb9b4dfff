# smithers-source: seeded
# smithers-display-name: Review
"""Review: every agent of the `smart` tier reviews the current changes, in parallel.

Run it:  smithers workflow run review --prompt "focus on error handling"

Each reviewer's verdict is a row of the `review_result` table (approved, feedback, issues);
`smithers inspect RUN` shows them. Tune it in .smithers/prompts/review.md.
"""

from pydantic import BaseModel

from smithers import Ctx, Parallel, workflow
from smithers.components import Review
from smithers.pack import Project

project = Project.of(__file__)


class ReviewInput(BaseModel):
    prompt: str = "Review the current repository changes."


@workflow(input=ReviewInput, cwd="../..")  # tasks work in the repository root
def review(ctx: Ctx) -> Parallel:
    return Review("review", prompt=project.prompt("review", request=ctx.input.prompt), agents=project.tier("smart"))
