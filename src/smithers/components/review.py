"""``Review``: the same request put to several reviewers at once, one task per agent.

>>> Review("review", prompt="Review the current changes.", agents=[ClaudeCode(), Codex()])  # doctest: +SKIP

gives ``Parallel(Task("review:0", ...), Task("review:1", ...))``. Each reviewer's task has
``continue_on_fail=True`` (a reviewer that cannot answer does not fail the run; it simply gives
no approval) and bounded retries, a total timeout and a heartbeat timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..authoring.nodes import Parallel, Task
from ..authoring.policies import Duration

REVIEW_INSTRUCTIONS = """You are reviewer {n} of {total}. Be strict: approve only work that is correct, tested and ready to merge.
Read the repository (run `git diff` and `git status` to see the changes) rather than trusting the description.
Set approved=false and list concrete issues (severity, title, file, description) when anything must change;
give your reasons in feedback either way."""


class Issue(BaseModel):
    severity: Literal["critical", "major", "minor", "nit"] = "major"
    title: str
    file: str | None = None
    description: str = ""


class ReviewResult(BaseModel):
    reviewer: str = ""
    approved: bool
    feedback: str = ""
    issues: list[Issue] = Field(default_factory=list)


def Review(
    id_prefix: str,
    *,
    prompt: str,
    agents: Sequence[Any],
    timeout: Duration = "30m",
    heartbeat_timeout: Duration = "10m",
    retries: int = 1,
    max_concurrency: int | None = None,
) -> Parallel:
    """One reviewer task per agent (``<id_prefix>:0`` …), run in parallel, each answering
    :class:`ReviewResult`. ``prompt`` says what to review; the reviewer instructions are added."""
    reviewers = list(agents)
    if not reviewers:
        from ..errors import RenderError

        raise RenderError(f"Review {id_prefix!r} has no reviewer agents", hint="pass agents=[...] with at least one agent")
    return Parallel(
        *(
            Task(
                f"{id_prefix}:{index}",
                output=ReviewResult,
                agent=agent,
                prompt=f"{REVIEW_INSTRUCTIONS.format(n=index + 1, total=len(reviewers))}\n\n{prompt}",
                continue_on_fail=True,
                retries=retries,
                timeout=timeout,
                heartbeat_timeout=heartbeat_timeout,
                label=f"reviewer {index + 1}",
            )
            for index, agent in enumerate(reviewers)
        ),
        max_concurrency=max_concurrency,
    )
