# smithers-source: seeded
# smithers-display-name: Mission
"""Mission: a long-horizon goal broken into milestones. An agent plans the milestones; a person
approves the plan (`smithers approve RUN` / `smithers deny RUN --note "..."`, or the dashboard);
then each milestone in turn is implemented in a ValidationLoop (the repository's tests + review),
each told what the earlier milestones did. A milestone that does not pass stops the mission there
(later ones would build on broken work); the `mission_report` row says how far it got.

Run it:  smithers workflow run mission --prompt "replace the ORM with plain SQL"
Tune it: .smithers/prompts/mission.md and implement.md; `max_milestones` in the input.
"""

from pydantic import BaseModel

from smithers import Approval, ApprovalRequest, Ctx, Loop, Sequence, Task, workflow
from smithers.components import ImplementResult, ValidationLoop, ValidationVerdict
from smithers.errors import RenderError
from smithers.pack import Project

project = Project.of(__file__)


class MissionInput(BaseModel):
    prompt: str
    max_milestones: int = 5
    max_iterations: int = 3
    test_command: str | None = None


class Milestone(BaseModel):
    title: str
    description: str
    acceptance_criteria: list[str] = []


class MissionPlan(BaseModel):
    summary: str
    milestones: list[Milestone]


class MilestoneStatus(BaseModel):
    title: str
    status: str  # done | not-done (its loop gave up: the mission stopped) | not-started


class MissionReport(BaseModel):
    approved: bool
    note: str | None = None
    milestones: list[MilestoneStatus] = []


@workflow(input=MissionInput, cwd="../..")  # tasks work in the repository root
def mission(ctx: Ctx) -> Sequence:
    commands = project.commands()
    test_command = ctx.input.test_command or commands.get("test")
    if not test_command:
        raise RenderError(f"no test command in {project.dir / 'config.toml'}", hint='set `test = "..."` under [commands] there')
    smart = project.tier("smart")
    plan: MissionPlan | None = ctx.output("mission:plan")
    decision = ctx.output("mission:approve")
    milestones = plan.milestones[: ctx.input.max_milestones] if plan else []
    steps: list[Loop] = []
    statuses: list[MilestoneStatus] = []
    done_so_far: list[str] = []
    blocked = False
    in_progress = False
    for n, milestone in enumerate(milestones, 1):
        prefix = f"mission:m{n}"
        verdict: ValidationVerdict | None = ctx.output(f"{prefix}:verdict")
        finished = verdict is not None and (verdict.done or verdict.round + 1 >= ctx.input.max_iterations)
        if blocked:
            statuses.append(MilestoneStatus(title=milestone.title, status="not-started"))
            continue
        request = project.prompt("mission", goal=ctx.input.prompt, plan=[m.title for m in milestones], title=milestone.title,
                                 description=milestone.description, criteria=milestone.acceptance_criteria, earlier=done_so_far)
        steps.append(ValidationLoop(
            ctx, prefix, prompt=project.prompt("implement", request=request, test_command=test_command,
                                               lint_command=commands.get("lint", "")),
            review_prompt=f"{milestone.title}: {milestone.description}", implement=smart, review=smart,
            test_command=test_command, max_iterations=ctx.input.max_iterations,
        ))
        if not finished:
            blocked = in_progress = True  # later milestones wait for this one
            statuses.append(MilestoneStatus(title=milestone.title, status="in-progress"))
            continue
        assert verdict is not None
        statuses.append(MilestoneStatus(title=milestone.title, status="done" if verdict.done else "not-done"))
        summary: ImplementResult | None = ctx.output(f"{prefix}:implement")
        done_so_far.append(f"{milestone.title}: {summary.summary if summary else ''}")
        if not verdict.done:
            blocked = True
    all_settled = plan is not None and not in_progress
    denied = decision is not None and not decision.approved
    return Sequence(
        Task("mission:plan", output=MissionPlan, agent=smart, prompt=project.prompt("mission-plan", goal=ctx.input.prompt,
             max_milestones=ctx.input.max_milestones), timeout="45m", heartbeat_timeout="10m", retries=2),
        plan and Approval("mission:approve", on_deny="continue", request=ApprovalRequest(
            title=f"Approve the mission plan: {plan.summary}"[:200],
            summary="\n".join(f"{n}. {m.title}: {m.description}" for n, m in enumerate(milestones, 1)),
        )),
        decision is not None and decision.approved and Sequence(*steps),
        decision is not None and (denied or all_settled) and Task("mission:report", output=MissionReport, value={
            "approved": decision.approved, "note": decision.note,
            "milestones": [s.model_dump() for s in statuses] if decision.approved else [],
        }),
    )
