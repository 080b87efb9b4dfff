# smithers-source: seeded
# smithers-display-name: Plan
"""Plan: a practical implementation plan for a request, written to the `plan_result` table.

Run it:  smithers workflow run plan --prompt "support Windows paths"
Tune it: .smithers/prompts/plan.md; the `smart` tier of .smithers/agents.py.
"""

from pydantic import BaseModel

from smithers import Ctx, Task, workflow
from smithers.pack import Project

project = Project.of(__file__)


class PlanInput(BaseModel):
    prompt: str


class PlanResult(BaseModel):
    summary: str
    steps: list[str]


@workflow(input=PlanInput, cwd="../..")  # tasks work in the repository root
def plan(ctx: Ctx) -> Task:
    return Task(
        "plan", output=PlanResult, agent=project.tier("smart"), prompt=project.prompt("plan", request=ctx.input.prompt),
        timeout="30m", heartbeat_timeout="10m", retries=2,
    )
