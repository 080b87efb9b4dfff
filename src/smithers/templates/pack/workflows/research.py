# smithers-source: seeded
# smithers-display-name: Research
"""Research: gather what is needed before changing anything (the code involved, prior art,
dependency docs), written to the `research_result` table.

Run it:  smithers workflow run research --prompt "how do we retry HTTP calls today?"
Tune it: .smithers/prompts/research.md; the `smart_tool` tier of .smithers/agents.py.
"""

from pydantic import BaseModel

from smithers import Ctx, Task, workflow
from smithers.pack import Project

project = Project.of(__file__)


class ResearchInput(BaseModel):
    prompt: str


class ResearchResult(BaseModel):
    summary: str
    key_findings: list[str]


@workflow(input=ResearchInput, cwd="../..")  # tasks work in the repository root
def research(ctx: Ctx) -> Task:
    return Task(
        "research", output=ResearchResult, agent=project.tier("smart_tool"),
        prompt=project.prompt("research", request=ctx.input.prompt), timeout="45m", heartbeat_timeout="10m", retries=2,
    )
