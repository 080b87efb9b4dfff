"""``ValidationLoop``: implement → validate with the repository's real test command → parallel
review, again until the tests pass **and** this round's reviewers approve.

Each round ``n`` of loop ``<p>:loop`` runs, in order:

1. ``<p>:implement`` — an agent task (the ``implement`` chain) given the request plus the
   previous round's verdict feedback (failing test output, reviewers' issues);
2. ``<p>:validate`` — a compute task running ``test_command`` in the task's working directory
   (the worktree inside a ``Worktree``): ``{passed, exit_code, output_tail}``;
3. ``<p>:review:0..k`` — :func:`~smithers.components.review.Review` over the ``review`` agents,
   told what was implemented and how validation went;
4. ``<p>:verdict`` — a static task judging **this round only** (:func:`judge_round`): done when
   validation passed and at least one reviewer answered and every reviewer that answered approved.

The loop ends when the newest verdict is done, or after ``max_iterations`` rounds (the run still
finishes; the last verdict says it was not done — ``on_max_reached="fail"`` fails instead).
Unlike the original pack, validation failures reach the next implement pass, and approvals from an
earlier round never count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..authoring.context import Ctx, TaskContext
from ..authoring.nodes import Loop, Task
from ..authoring.nodes import Sequence as Steps
from ..authoring.policies import Duration
from .review import Review, ReviewResult

OUTPUT_TAIL = 6000  # characters of test output kept (the end, where failures are summarised)


class ImplementResult(BaseModel):
    summary: str
    files_changed: list[str] = Field(default_factory=list)


class ValidationResult(BaseModel):
    passed: bool
    command: str | None = None
    exit_code: int | None = None
    output_tail: str = ""
    note: str = ""


class ValidationVerdict(BaseModel):
    done: bool
    round: int
    validation_passed: bool
    approvals: int
    rejections: int
    silent_reviewers: list[int] = Field(default_factory=list)  # reviewers whose task failed this round
    feedback: str = ""  # what the next implement pass is told


def run_check(command: str | None, *, timeout: float = 1800.0) -> Any:
    """A compute function running ``command`` through the shell in the task's cwd; a missing
    command is recorded as not validated (``passed`` false, with a note saying how to set it)."""

    def check(tc: TaskContext) -> dict[str, Any]:
        if not command:
            return {"passed": False, "command": None, "note": "no test command: set [commands] test in .smithers/config.toml"}
        proc = subprocess.Popen(
            command, shell=True, cwd=tc.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so a timeout kills the whole test run
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                out, _ = proc.communicate(timeout=5.0)
                break
            except subprocess.TimeoutExpired:
                tc.heartbeat()  # a long test suite is alive, not hung
                if time.monotonic() > deadline:
                    os.killpg(proc.pid, signal.SIGKILL)
                    out, _ = proc.communicate()
                    text = out.decode("utf-8", "replace")[-OUTPUT_TAIL:]
                    return {"passed": False, "command": command, "exit_code": None, "output_tail": text,
                            "note": f"timed out after {timeout:.0f}s"}
        text = out.decode("utf-8", "replace")
        return {"passed": proc.returncode == 0, "command": command, "exit_code": proc.returncode, "output_tail": text[-OUTPUT_TAIL:]}

    return check


def judge_round(round_: int, validation: ValidationResult | None, reviews: Sequence[ReviewResult | None]) -> ValidationVerdict:
    """The verdict of one round from that round's rows only.

    >>> judge_round(0, ValidationResult(passed=True), [ReviewResult(approved=True), None]).done
    True
    >>> judge_round(1, ValidationResult(passed=False, output_tail="1 failed"), [ReviewResult(approved=True)]).done
    False
    """
    passed = validation is not None and validation.passed
    answered = [r for r in reviews if r is not None]
    approvals = sum(1 for r in answered if r.approved)
    rejections = len(answered) - approvals
    lines: list[str] = []
    if validation is None:
        lines.append("Validation did not run.")
    elif not validation.passed:
        lines.append(f"Validation FAILED: `{validation.command}` exited {validation.exit_code}. {validation.note}".rstrip())
        if validation.output_tail:
            lines.append("Its output (end):\n```\n" + validation.output_tail.strip() + "\n```")
    for index, review in enumerate(reviews):
        if review is not None and not review.approved:
            lines.append(f"Reviewer {index + 1} rejected: {review.feedback}".rstrip())
            lines += [f"- [{i.severity}] {i.title}: {i.description}" + (f" ({i.file})" if i.file else "") for i in review.issues]
    return ValidationVerdict(
        done=passed and bool(answered) and rejections == 0, round=round_, validation_passed=passed, approvals=approvals,
        rejections=rejections, silent_reviewers=[i for i, r in enumerate(reviews) if r is None], feedback="\n".join(lines),
    )


def ValidationLoop(
    ctx: Ctx,
    id_prefix: str,
    *,
    prompt: str,
    implement: Any,
    review: Sequence[Any],
    test_command: str | None,
    max_iterations: int = 3,
    on_max_reached: Literal["return-last", "fail"] = "return-last",
    review_prompt: str | None = None,
    timeout: Duration = "30m",
    heartbeat_timeout: Duration = "10m",
    retries: int = 2,
    test_timeout: float = 1800.0,
) -> Loop:
    """The loop described in the module docstring. ``implement`` is an agent or a fallback chain;
    ``review`` the reviewer agents (one parallel reviewer each); ``test_command`` the shell
    command that must exit 0 (e.g. ``Project.of(__file__).commands().get("test")``)."""
    p = id_prefix
    loop_id = f"{p}:loop"
    round_ = ctx.iteration(loop_id)
    previous: ValidationVerdict | None = ctx.output(f"{p}:verdict")  # newest finished verdict: the last round's
    request = prompt
    if previous is not None and not previous.done and previous.feedback:
        request += (f"\n\n---\nYour previous attempt (round {previous.round + 1}) was not accepted. Fix this first:\n"
                    f"{previous.feedback}")
    implemented: ImplementResult | None = ctx.output(f"{p}:implement", iteration=round_)
    validation: ValidationResult | None = ctx.output(f"{p}:validate", iteration=round_)
    reviewers = list(review)
    reviews: list[ReviewResult | None] = [ctx.output(f"{p}:review:{i}", iteration=round_) for i in range(len(reviewers))]
    status = "not run" if validation is None else ("PASSED" if validation.passed else "FAILED")
    what = review_prompt or prompt
    review_request = (
        f"The request:\n{what}\n\nThe implementer says: {implemented.summary if implemented else '(no summary)'}\n"
        f"Files changed: {', '.join(implemented.files_changed) if implemented and implemented.files_changed else '(not listed)'}\n"
        f"Validation `{validation.command if validation else test_command}`: {status}"
    )
    return Loop(
        Steps(
            Task(f"{p}:implement", output=ImplementResult, agent=implement, prompt=request, retries=retries, timeout=timeout,
                 heartbeat_timeout=heartbeat_timeout, label="implement"),
            Task(f"{p}:validate", output=ValidationResult, run=run_check(test_command, timeout=test_timeout), retries=1,
                 timeout=test_timeout + 60, label="validate"),
            Review(f"{p}:review", prompt=review_request, agents=reviewers, timeout=timeout, heartbeat_timeout=heartbeat_timeout),
            Task(f"{p}:verdict", output=ValidationVerdict, value=judge_round(round_, validation, reviews).model_dump(), label="verdict"),
        ),
        id=loop_id,
        until=previous is not None and previous.done,
        max_iterations=max_iterations,
        on_max_reached=on_max_reached,
    )
