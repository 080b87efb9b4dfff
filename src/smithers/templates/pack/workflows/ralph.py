# smithers-source: seeded
# smithers-display-name: Ralph
"""Ralph: the same instruction, pass after pass, each pass told what the last one did. Bounded by
`max_iterations` (default: no bound — stop it with `smithers cancel RUN`).

Run it:  smithers workflow run ralph --prompt "keep fixing the failing tests" --input '{"max_iterations": 10}'
"""

from pydantic import BaseModel

from smithers import Ctx, Loop, Task, workflow
from smithers.pack import Project

project = Project.of(__file__)
UNBOUNDED = 1_000_000_000  # "until cancelled"


class RalphInput(BaseModel):
    prompt: str = "Continue working on the current task."
    max_iterations: int | None = None


class RalphPass(BaseModel):
    summary: str


@workflow(input=RalphInput, cwd="../..")  # tasks work in the repository root
def ralph(ctx: Ctx) -> Loop:
    last: RalphPass | None = ctx.output("ralph")  # the newest finished pass
    prompt = ctx.input.prompt + (f"\n\n---\nWhat the previous pass did:\n{last.summary}" if last else "")
    return Loop(
        Task("ralph", output=RalphPass, agent=project.tier("smart"), prompt=prompt, timeout="60m", heartbeat_timeout="10m", retries=2),
        id="ralph:loop",
        max_iterations=ctx.input.max_iterations or UNBOUNDED,
    )
