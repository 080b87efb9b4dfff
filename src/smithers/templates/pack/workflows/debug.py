# smithers-source: seeded
# smithers-display-name: Debug
"""Debug: reproduce the reported bug with a failing test, then fix it; validated by the
repository's tests and reviewed, round after round (ValidationLoop, prefix `debug`).

Run it:  smithers workflow run debug --prompt "saving twice loses the first edit"
Tune it: .smithers/prompts/debug.md; `test` in .smithers/config.toml; the `smart` tier.
"""

from pydantic import BaseModel

from smithers import Ctx, Loop, workflow
from smithers.components import ValidationLoop
from smithers.errors import RenderError
from smithers.pack import Project

project = Project.of(__file__)


class DebugInput(BaseModel):
    prompt: str = "Reproduce and fix the reported bug."
    max_iterations: int = 3
    test_command: str | None = None


@workflow(input=DebugInput, cwd="../..")  # tasks work in the repository root
def debug(ctx: Ctx) -> Loop:
    test_command = ctx.input.test_command or project.commands().get("test")
    if not test_command:
        raise RenderError(f"no test command in {project.dir / 'config.toml'}", hint='set `test = "..."` under [commands] there')
    smart = project.tier("smart")
    return ValidationLoop(
        ctx, "debug", prompt=project.prompt("debug", request=ctx.input.prompt, test_command=test_command),
        review_prompt=ctx.input.prompt, implement=smart, review=smart, test_command=test_command,
        max_iterations=ctx.input.max_iterations,
    )
