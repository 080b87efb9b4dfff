# smithers-source: seeded
# smithers-display-name: Kanban
"""Kanban: implement every ticket of .smithers/tickets/ in its own git worktree and branch
(`ticket/<slug>`), in parallel — each a ValidationLoop (tests + review) then a commit — and merge
the finished branches into the current branch. Each ticket's result says what really happened:
`done`, `not-done` (the loop gave up; not merged) or `no-changes`.

Run it:  smithers workflow run kanban --input '{"max_concurrency": 3}'
Needs: a git repository with a commit; tickets from `ticket-create` / `tickets-create` or your own
Markdown files. Worktrees live in .smithers/worktrees/ (git-ignored).
"""

from pydantic import BaseModel

from smithers import Ctx, Parallel, Sequence, Task, Worktree, workflow
from smithers.components import ValidationLoop, ValidationVerdict
from smithers.errors import RenderError
from smithers.pack import Project
from smithers.pack.kanban import MergeReport, TicketList, TicketOutcome, commit_worktree, discover_tickets, merge_branches

project = Project.of(__file__)


class KanbanInput(BaseModel):
    max_concurrency: int = 3
    max_iterations: int = 3
    test_command: str | None = None


class Committed(BaseModel):
    commit: str | None


def ticket_lane(ctx: Ctx, ticket_id: str, title: str, body: str, base: str, test_command: str) -> Worktree:
    smart = project.tier("smart")
    verdict: ValidationVerdict | None = ctx.output(f"{ticket_id}:verdict")
    committed: Committed | None = ctx.output(f"commit-{ticket_id}")
    finished = verdict is not None and (verdict.done or verdict.round + 1 >= ctx.input.max_iterations)
    status = "not-done" if verdict is None or not verdict.done else ("done" if committed and committed.commit else "no-changes")
    return Worktree(
        f".smithers/worktrees/{ticket_id}",
        ValidationLoop(
            ctx, ticket_id, prompt=project.prompt("implement", request=f"Implement this ticket:\n\n{body}", test_command=test_command,
                                                  lint_command=project.commands().get("lint", "")),
            review_prompt=body, implement=smart, review=smart, test_command=test_command, max_iterations=ctx.input.max_iterations,
        ),
        finished and verdict is not None and verdict.done and Task(
            f"commit-{ticket_id}", output=Committed, run=lambda tc: {"commit": commit_worktree(tc.cwd, f"{title}\n\nticket {ticket_id}")},
        ),
        finished and (committed is not None or not (verdict and verdict.done)) and Task(
            f"result-{ticket_id}", output=TicketOutcome, value={
                "slug": ticket_id, "branch": f"ticket/{ticket_id}", "status": status, "rounds": (verdict.round + 1) if verdict else 0,
                "commit": committed.commit if committed else None, "summary": verdict.feedback if verdict and not verdict.done else "",
            },
        ),
        branch=f"ticket/{ticket_id}",
        base=base,
    )


@workflow(input=KanbanInput, cwd="../..")  # tasks work in the repository root
def kanban(ctx: Ctx) -> Sequence:
    test_command = ctx.input.test_command or project.commands().get("test")
    if not test_command:
        raise RenderError(f"no test command in {project.dir / 'config.toml'}", hint='set `test = "..."` under [commands] there')
    found: TicketList | None = ctx.output("tickets")  # a snapshot: tickets added during the run wait for the next one
    outcomes = [ctx.output(f"result-{t.slug}") for t in found.tickets] if found else []
    all_done = found is not None and all(o is not None for o in outcomes)
    return Sequence(
        Task("tickets", output=TicketList, run=lambda: discover_tickets(project.dir / "tickets", project.repo_root)),
        found and Parallel(
            *(ticket_lane(ctx, t.slug, t.title, t.body, found.base, test_command) for t in found.tickets),
            max_concurrency=ctx.input.max_concurrency,
        ),
        found and all_done and Task(
            "merge", output=MergeReport, run=lambda: merge_branches(project.repo_root, found.base, [o for o in outcomes if o]),
        ),
    )
