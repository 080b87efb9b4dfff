# smithers-source: seeded
# smithers-display-name: Write A PRD
"""Write a PRD: first an interview (GrillMe, questions answered by you through `smithers human
answer`), then the product requirements document drafted from the plan and every answer, redrafted
until the agent calls it complete or a draft's content no longer changes (at most
`max_drafts`). The final PRD is written to .smithers/prds/<slug>.md.

Run it:  smithers workflow run write-a-prd --prompt "team workspaces"
Tune it: .smithers/prompts/grill.md and prd.md.
"""

from pydantic import BaseModel

from smithers import Ctx, Loop, Sequence, Task, workflow
from smithers.components import GrillMe, transcript
from smithers.pack import Project
from smithers.pack.tickets import slugify

project = Project.of(__file__)


class PrdInput(BaseModel):
    prompt: str
    max_questions: int = 10
    max_drafts: int = 3


class Prd(BaseModel):
    title: str
    markdown_body: str
    complete: bool = False


class PrdFile(BaseModel):
    path: str


def converged(drafts: list[Prd]) -> bool:
    """Done when the newest draft says it is complete, or its content equals the previous one's
    (content, not row metadata: the original compared whole rows and so never converged)."""
    if not drafts:
        return False
    last = drafts[-1]
    return last.complete or (len(drafts) > 1 and (last.title, last.markdown_body) == (drafts[-2].title, drafts[-2].markdown_body))


def write_prd(prd: Prd) -> dict[str, str]:
    path = project.dir / "prds" / f"{slugify(prd.title)}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {prd.title}\n\n{prd.markdown_body.strip()}\n", encoding="utf-8")
    return {"path": str(path)}


@workflow(input=PrdInput, cwd="../..")  # tasks work in the repository root
def write_a_prd(ctx: Ctx) -> Sequence:
    smart = project.tier("smart")
    drafts: list[Prd] = ctx.outputs("write-a-prd:prd")
    qa = "\n\n".join(f"Q: {q}\nA: {a}" for q, a in transcript(ctx, "write-a-prd:grill")) or "(no answers)"
    previous = drafts[-1].markdown_body if drafts else ""
    done = converged(drafts) or len(drafts) >= ctx.input.max_drafts
    return Sequence(
        GrillMe(ctx, "write-a-prd:grill", context=ctx.input.prompt, agents=smart, max_questions=ctx.input.max_questions,
                instructions=project.prompt("grill")),
        Loop(  # a Sequence: drafting starts once the interview is over, with every answer
            Task("write-a-prd:prd", output=Prd, agent=smart, timeout="30m", heartbeat_timeout="10m", retries=2,
                 prompt=project.prompt("prd", request=ctx.input.prompt, interview=qa, previous=previous)),
            id="write-a-prd:drafts", until=converged(drafts), max_iterations=ctx.input.max_drafts,
        ),
        done and drafts and Task("write-a-prd:file", output=PrdFile, run=lambda: write_prd(drafts[-1])),
    )
