"""Conditional mounting: a task exists only once an earlier output says it should.

A lint-and-fix pass over a snippet of code. ``lint`` reports problems; ``fix`` is mounted only
when there are any (``report and report.problems > 0 and Task(...)``), and ``recheck`` only once
``fix`` has produced fixed code. ``ctx.output`` returns ``None`` until a task has finished, and
containers drop ``None``/``False`` children, so this one expression is both the dependency and
the condition. A clean snippet runs ``lint`` alone: ``fix`` and ``recheck`` never appear.

Write the condition as a boolean (``problems > 0``, not ``problems``): only ``None`` and
``False`` are dropped, so a ``0`` or ``""`` child is a render error.

Run it (with problems: lint → fix → recheck):

    smithers up examples/conditional.py --input '{"code": "x = 1   \\n# TODO: remove\\nprint(x)"}'

or (clean: lint only):

    smithers up examples/conditional.py --input '{"code": "print(1)"}'

Then:

    sqlite3 smithers.db 'select node_id, problems from lint_report'
"""

from pydantic import BaseModel

from smithers import Sequence, Task, workflow


class LintInput(BaseModel):
    code: str = "import os   \n# TODO: drop this debug line\nprint(os.getcwd())\n"


class LintReport(BaseModel):
    problems: int
    messages: list[str]


class FixedCode(BaseModel):
    code: str
    changed_lines: int


def lint(code: str) -> LintReport:
    messages = []
    for number, line in enumerate(code.splitlines(), start=1):
        if line != line.rstrip():
            messages.append(f"line {number}: trailing whitespace")
        if "TODO" in line:
            messages.append(f"line {number}: leftover TODO")
    return LintReport(problems=len(messages), messages=messages)


def fix(code: str) -> FixedCode:
    fixed, changed = [], 0
    for line in code.splitlines():
        new = line.rstrip()
        if "TODO" in new:
            new = None
        if new != line:
            changed += 1
        if new is not None:
            fixed.append(new)
    return FixedCode(code="\n".join(fixed) + "\n", changed_lines=changed)


@workflow(input=LintInput)
def lint_and_fix(ctx):
    report = ctx.output("lint")
    fixed = ctx.output("fix")
    return Sequence(
        Task("lint", output=LintReport, run=lambda: lint(ctx.input.code)),
        report and report.problems > 0 and Task("fix", output=FixedCode, run=lambda: fix(ctx.input.code)),
        fixed and Task("recheck", output=LintReport, run=lambda: lint(fixed.code)),
    )
