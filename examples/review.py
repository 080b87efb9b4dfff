"""Two-agent review: an analyst reads the code, a fixer proposes the patch.

The analyst is Claude Code; the fixer is a fallback chain — Codex first, Claude Code if Codex
cannot work (attempt n uses entry n; an agent that fails for configuration, e.g. a 401 or a
missing binary, is skipped for the rest of the run).

Needs the CLIs and their credentials (`smithers agents` shows what is set up). Run:

    smithers up examples/review.py --input '{"path": "src/app.py", "concern": "error handling"}'

The test suite runs this file against local fake model servers (tests/test_example_review.py).
"""

from pydantic import BaseModel

from smithers import Sequence, Task, workflow
from smithers.agents import ClaudeCode, Codex


class ReviewInput(BaseModel):
    path: str = "."
    concern: str = "correctness"


class Analysis(BaseModel):
    summary: str
    severity: str
    findings: list[str]


class Fix(BaseModel):
    patch: str
    explanation: str


analyst = ClaudeCode()
fixer = [Codex(), ClaudeCode()]  # a list is a fallback chain


@workflow(input=ReviewInput)
def review(ctx):
    analysis = ctx.output("analyze")  # None until the analyst has finished
    return Sequence(
        Task(
            "analyze",
            output=Analysis,
            agent=analyst,
            prompt=f"Review {ctx.input.path} with a focus on {ctx.input.concern}. Do not edit files.",
        ),
        analysis and Task(
            "fix",
            output=Fix,
            agent=fixer,
            prompt=(
                f"The review of {ctx.input.path} found ({analysis.severity}): {analysis.summary}\n"
                + "\n".join(f"- {finding}" for finding in analysis.findings)
                + "\nPropose a unified diff that fixes these findings."
            ),
        ),
    )
