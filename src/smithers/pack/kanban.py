"""The helpers of the ``kanban`` workflow: find the ticket files, commit a ticket's worktree,
merge the finished ticket branches. Plain functions of paths, run by compute tasks (so each
effect is one recorded task) and testable alone.

>>> ticket_slug(Path("tickets/Add CSV export.md"))
'add-csv-export'
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydantic import BaseModel, Field

from .tickets import slugify

GIT_TIMEOUT = 120


class TicketRef(BaseModel):
    slug: str
    path: str
    title: str
    body: str


class TicketList(BaseModel):
    base: str  # the branch the tickets start from and merge into
    tickets: list[TicketRef]


class TicketOutcome(BaseModel):
    slug: str
    branch: str
    status: str  # "done" (tests pass, reviewers approved, committed) | "not-done" (the loop gave up) | "no-changes"
    rounds: int
    commit: str | None = None
    summary: str = ""


class MergeReport(BaseModel):
    base: str
    merged: list[str] = Field(default_factory=list)
    conflicted: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # tickets that were not done


def ticket_slug(path: Path) -> str:
    return slugify(path.stem)


def git(args: list[str], cwd: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)


def discover_tickets(tickets_dir: Path, repo: Path) -> TicketList:
    """``tickets_dir/*.md`` (not README.md, not dot files), sorted, and the current branch."""
    head = git(["rev-parse", "--abbrev-ref", "HEAD"], repo)
    if head.returncode != 0:
        raise RuntimeError(f"kanban needs a git repository with a commit at {repo}: {head.stderr.strip()}")
    refs = []
    for path in sorted(tickets_dir.glob("*.md")) if tickets_dir.is_dir() else []:
        if path.name.startswith(".") or path.name.lower() == "readme.md":
            continue
        body = path.read_text(encoding="utf-8")
        first = next((line for line in body.splitlines() if line.strip()), path.stem)
        refs.append(TicketRef(slug=ticket_slug(path), path=str(path), title=first.lstrip("# ").strip(), body=body))
    return TicketList(base=head.stdout.strip(), tickets=refs)


def commit_worktree(cwd: str, message: str) -> str | None:
    """Commit everything changed in the worktree ``cwd``; the new commit, or None when nothing changed."""
    git(["add", "-A"], cwd)
    if git(["diff", "--cached", "--quiet"], cwd).returncode == 0:
        return None
    done = git(["-c", "user.name=smithers", "-c", "user.email=smithers@localhost", "commit", "-q", "-m", message], cwd)
    if done.returncode != 0:
        raise RuntimeError(f"git commit in {cwd} failed: {done.stderr.strip()}")
    return git(["rev-parse", "HEAD"], cwd).stdout.strip()


def merge_branches(repo: Path, base: str, outcomes: list[TicketOutcome]) -> MergeReport:
    """Merge each done ticket's branch into ``base`` (checked out in ``repo``), one by one; a
    conflicting merge is aborted and reported, the others go on."""
    report = MergeReport(base=base)
    current = git(["rev-parse", "--abbrev-ref", "HEAD"], repo).stdout.strip()
    if current != base:
        raise RuntimeError(f"{repo} has {current!r} checked out, not the tickets' base {base!r}: check it out and resume")
    for outcome in outcomes:
        if outcome.status != "done" or outcome.commit is None:
            report.skipped.append(outcome.slug)
            continue
        if git(["merge-base", "--is-ancestor", outcome.branch, "HEAD"], repo).returncode == 0:
            report.merged.append(outcome.slug)  # merged already (a resumed run)
            continue
        done = git(["-c", "user.name=smithers", "-c", "user.email=smithers@localhost", "merge", "--no-ff", "--no-edit",
                    "-m", f"Merge ticket {outcome.slug}", outcome.branch], repo)
        if done.returncode == 0:
            report.merged.append(outcome.slug)
        else:
            git(["merge", "--abort"], repo)
            report.conflicted.append(outcome.slug)
    return report
