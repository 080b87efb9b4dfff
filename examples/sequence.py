"""Sequence: steps that run one after another, each building on the one before.

Release notes from a list of commit messages, in three steps: ``parse`` splits each message
into a type and a subject, ``group`` buckets them by type, ``render`` writes the notes. In a
``Sequence`` child n starts only once child n-1 has finished; a step that needs the previous
step's *data* reads it with ``ctx.output(id)`` and is mounted once that is not ``None``
(the workflow function is re-rendered when an output it read is written).

Run it:

    smithers up examples/sequence.py --input '{"commits": ["feat: dark mode", "fix: crash on empty file", "feat: export to CSV", "docs: typo"]}'

Then:

    sqlite3 smithers.db 'select notes from release_notes'
"""

from pydantic import BaseModel

from smithers import Sequence, Task, workflow


class NotesInput(BaseModel):
    commits: list[str] = ["feat: dark mode", "fix: crash on empty file", "feat: export to CSV", "chore: bump deps"]


class Commit(BaseModel):
    kind: str
    subject: str


class ParsedCommits(BaseModel):
    commits: list[Commit]


class GroupedCommits(BaseModel):
    features: list[str]
    fixes: list[str]
    other: int


class ReleaseNotes(BaseModel):
    notes: str
    lines: int


def parse(messages: list[str]) -> dict:
    commits = []
    for message in messages:
        kind, sep, subject = message.partition(":")
        commits.append({"kind": kind.strip() if sep else "other", "subject": subject.strip() if sep else message.strip()})
    return {"commits": commits}


def group(parsed: ParsedCommits) -> GroupedCommits:
    features = [c.subject for c in parsed.commits if c.kind == "feat"]
    fixes = [c.subject for c in parsed.commits if c.kind == "fix"]
    return GroupedCommits(features=features, fixes=fixes, other=len(parsed.commits) - len(features) - len(fixes))


def render(grouped: GroupedCommits) -> ReleaseNotes:
    lines = ["## Features", *(f"- {s}" for s in grouped.features), "## Fixes", *(f"- {s}" for s in grouped.fixes)]
    if grouped.other:
        lines.append(f"_{grouped.other} other change(s)_")
    return ReleaseNotes(notes="\n".join(lines), lines=len(lines))


@workflow(input=NotesInput)
def release_notes(ctx):
    parsed = ctx.output("parse")
    grouped = ctx.output("group")
    return Sequence(
        Task("parse", output=ParsedCommits, run=lambda: parse(ctx.input.commits)),
        parsed and Task("group", output=GroupedCommits, run=lambda: group(parsed)),
        grouped and Task("render", output=ReleaseNotes, run=lambda: render(grouped)),
    )
