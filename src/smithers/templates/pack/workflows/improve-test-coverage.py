# smithers-source: seeded
# smithers-display-name: Improve Test Coverage
"""Improve test coverage: find the most valuable untested behaviour and test it; the tests must
pass and reviewers approve (ValidationLoop, prefix `improve-test-coverage`).

Run it:  smithers workflow run improve-test-coverage --prompt "focus on the parser"
Tune it: .smithers/prompts/coverage.md; `test` and `coverage` in .smithers/config.toml.
"""

from pydantic import BaseModel

from smithers import Ctx, Loop, workflow
from smithers.components import ValidationLoop
from smithers.errors import RenderError
from smithers.pack import Project

project = Project.of(__file__)


class CoverageInput(BaseModel):
    prompt: str = "Add the highest-impact missing tests."
    max_iterations: int = 3
    test_command: str | None = None


@workflow(input=CoverageInput, cwd="../..")  # tasks work in the repository root
def improve_test_coverage(ctx: Ctx) -> Loop:
    commands = project.commands()
    test_command = ctx.input.test_command or commands.get("test")
    if not test_command:
        raise RenderError(f"no test command in {project.dir / 'config.toml'}", hint='set `test = "..."` under [commands] there')
    smart = project.tier("smart")
    return ValidationLoop(
        ctx, "improve-test-coverage",
        prompt=project.prompt("coverage", request=ctx.input.prompt, test_command=test_command,
                              coverage_command=commands.get("coverage", "")),
        review_prompt=ctx.input.prompt, implement=smart, review=smart, test_command=test_command,
        max_iterations=ctx.input.max_iterations,
    )
