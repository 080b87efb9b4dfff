# smithers-source: seeded
# smithers-display-name: Implement
"""Implement: make the change you describe, validated by this repository's real test command and
reviewed, round after round until the tests pass and that round's reviewers approve (3 rounds at most).

Run it:  smithers workflow run implement --prompt "add a --verbose flag to the CLI"

Tune it: the prompt is .smithers/prompts/implement.md; the agents are the `smart` tier of
.smithers/agents.py (it implements; every agent of the tier reviews, in parallel); the test
command is `test` in .smithers/config.toml (or --input '{"test_command": "..."}').
"""

from pydantic import BaseModel

from smithers import Ctx, Loop, workflow
from smithers.components import ValidationLoop
from smithers.errors import RenderError
from smithers.pack import Project

project = Project.of(__file__)


class ImplementInput(BaseModel):
    prompt: str
    max_iterations: int = 3
    test_command: str | None = None


@workflow(input=ImplementInput, cwd="../..")  # tasks work in the repository root
def implement(ctx: Ctx) -> Loop:
    commands = project.commands()
    test_command = ctx.input.test_command or commands.get("test")
    if not test_command:
        raise RenderError(
            f"no test command: implement validates every pass with your tests, and {project.dir / 'config.toml'} sets none",
            hint='set `test = "..."` under [commands] there, or pass --input \'{"test_command": "..."}\'',
        )
    smart = project.tier("smart")
    return ValidationLoop(
        ctx,
        "impl",
        prompt=project.prompt("implement", request=ctx.input.prompt, test_command=test_command, lint_command=commands.get("lint", "")),
        review_prompt=ctx.input.prompt,
        implement=smart,
        review=smart,
        test_command=test_command,
        max_iterations=ctx.input.max_iterations,
    )
