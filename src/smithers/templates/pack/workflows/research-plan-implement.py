# smithers-source: seeded
# smithers-display-name: Research Plan Implement
"""Research, plan, implement: research the request (`smart_tool`), plan it (`smart`), then
implement the plan in a ValidationLoop (prefix `impl`) validated by the repository's tests.
With `tdd: true` the plan lists the tests first and the implementer writes them first.

Run it:  smithers workflow run research-plan-implement --prompt "cache the parsed config"
Tune it: .smithers/prompts/research.md, plan.md, implement.md.
"""

from pydantic import BaseModel

from smithers import Ctx, Sequence, Task, workflow
from smithers.components import ValidationLoop
from smithers.errors import RenderError
from smithers.pack import Project

project = Project.of(__file__)


class RpiInput(BaseModel):
    prompt: str
    tdd: bool = False
    max_iterations: int = 3
    test_command: str | None = None


class ResearchResult(BaseModel):
    summary: str
    key_findings: list[str]


class PlanResult(BaseModel):
    summary: str
    steps: list[str]


TDD = "Test first: write the failing tests for each step before the code that makes them pass."


@workflow(input=RpiInput, cwd="../..")  # tasks work in the repository root
def research_plan_implement(ctx: Ctx) -> Sequence:
    commands = project.commands()
    test_command = ctx.input.test_command or commands.get("test")
    if not test_command:
        raise RenderError(f"no test command in {project.dir / 'config.toml'}", hint='set `test = "..."` under [commands] there')
    request = ctx.input.prompt + (f"\n\n{TDD}" if ctx.input.tdd else "")
    found: ResearchResult | None = ctx.output("research")
    planned: PlanResult | None = ctx.output("plan")
    return Sequence(
        Task("research", output=ResearchResult, agent=project.tier("smart_tool"),
             prompt=project.prompt("research", request=request), timeout="45m", heartbeat_timeout="10m", retries=2),
        found and Task("plan", output=PlanResult, agent=project.tier("smart"), prompt=project.prompt(
            "plan", request=f"{request}\n\n---\nResearch: {found.summary}\n" + "\n".join(f"- {k}" for k in found.key_findings),
        ), timeout="45m", heartbeat_timeout="10m", retries=2),
        found and planned and ValidationLoop(
            ctx, "impl",
            prompt=project.prompt(
                "implement", test_command=test_command, lint_command=commands.get("lint", ""),
                request=f"{request}\n\n---\nResearch: {found.summary}\n\n---\nThe plan: {planned.summary}\n"
                        + "\n".join(f"{n}. {step}" for n, step in enumerate(planned.steps, 1)),
            ),
            review_prompt=ctx.input.prompt, implement=project.tier("smart"), review=project.tier("smart"),
            test_command=test_command, max_iterations=ctx.input.max_iterations,
        ),
    )
