"""Loop with feedback: draft → review, again, until the reviewer approves.

Each pass of the ``revise`` loop runs ``draft`` then ``review``. The draft reads the previous
pass's review (``ctx.output("review")`` is the newest row, i.e. the last pass's feedback) and
addresses the first missing section it asks for; the review checks the draft against a list of
required sections. ``until`` is evaluated at render and also reads the newest review, so the loop
stops right after the pass whose review approved. Every pass writes new rows at iteration 0, 1,
2, … so the whole history stays queryable. ``max_iterations`` bounds the loop;
``on_max_reached="fail"`` would fail the run instead of keeping the last pass.

Run it:

    smithers up examples/loop_feedback.py --input '{"topic": "rate limiting"}'

Then:

    sqlite3 smithers.db 'select iteration, approved, missing from review order by iteration'
"""

from pydantic import BaseModel

from smithers import Loop, Sequence, Task, TaskContext, workflow

REQUIRED = ["Summary", "Example", "Risks"]


class DocInput(BaseModel):
    topic: str = "rate limiting"


class Draft(BaseModel):
    text: str
    sections: list[str]
    revision: int


class Review(BaseModel):
    approved: bool
    missing: list[str]
    comment: str


def write_draft(topic: str, previous: Draft | None, feedback: Review | None):
    def run(tc: TaskContext) -> Draft:
        sections = list(previous.sections) if previous else ["Summary"]
        if feedback and feedback.missing:
            sections.append(feedback.missing[0])  # address the first thing the reviewer asked for
        text = "\n\n".join(f"## {name}\n{name} of {topic}." for name in sections)
        return Draft(text=text, sections=sections, revision=tc.iteration + 1)

    return run


def review_draft(draft: Draft):
    def run() -> Review:
        missing = [name for name in REQUIRED if name not in draft.sections]
        comment = "ready to publish" if not missing else f"missing section: {missing[0]}"
        return Review(approved=not missing, missing=missing, comment=comment)

    return run


@workflow(input=DocInput)
def write_doc(ctx):
    pass_no = ctx.iteration("revise")                      # 0-based; 0 before the loop first renders
    feedback = ctx.output("review")                        # newest review: the previous pass's, or None
    previous = ctx.output("draft", iteration=pass_no - 1) if pass_no else None
    current = ctx.output("draft", iteration=pass_no)       # this pass's draft, once written
    return Sequence(
        Loop(
            Task("draft", output=Draft, run=write_draft(ctx.input.topic, previous, feedback)),
            current and Task("review", output=Review, run=review_draft(current)),
            id="revise",
            until=feedback is not None and feedback.approved,
            max_iterations=5,
        ),
    )
