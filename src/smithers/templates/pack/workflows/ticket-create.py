# smithers-source: seeded
# smithers-display-name: Ticket Create
"""Ticket create: turn a request into one ticket, written to .smithers/tickets/<slug>.md
(which `kanban` implements).

Run it:  smithers workflow run ticket-create --prompt "the CLI should accept --quiet"
Tune it: .smithers/prompts/ticket.md.
"""

from pydantic import BaseModel

from smithers import Ctx, Sequence, Task, workflow
from smithers.pack import Project
from smithers.pack.tickets import TicketDraft, TicketFiles, write_tickets

project = Project.of(__file__)


class TicketInput(BaseModel):
    prompt: str


@workflow(input=TicketInput, cwd="../..")  # tasks work in the repository root
def ticket_create(ctx: Ctx) -> Sequence:
    draft: TicketDraft | None = ctx.output("ticket")
    return Sequence(
        Task("ticket", output=TicketDraft, agent=project.tier("smart"),
             prompt=project.prompt("ticket", request=ctx.input.prompt, what="one well-formed ticket"),
             timeout="20m", heartbeat_timeout="10m", retries=2),
        draft and Task("write-ticket", output=TicketFiles, run=lambda: {"paths": write_tickets(project.dir / "tickets", [draft])}),
    )
