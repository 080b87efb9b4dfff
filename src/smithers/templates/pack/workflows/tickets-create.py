# smithers-source: seeded
# smithers-display-name: Tickets Create
"""Tickets create: break a request into small, independent tickets, each written to
.smithers/tickets/<slug>.md (which `kanban` implements in parallel).

Run it:  smithers workflow run tickets-create --prompt "add export to CSV and JSON"
Tune it: .smithers/prompts/ticket.md.
"""

from pydantic import BaseModel

from smithers import Ctx, Sequence, Task, workflow
from smithers.pack import Project
from smithers.pack.tickets import TicketBatch, TicketFiles, write_tickets

project = Project.of(__file__)
WHAT = "small, independent tickets, each implementable and testable on its own branch"


class TicketsInput(BaseModel):
    prompt: str


@workflow(input=TicketsInput, cwd="../..")  # tasks work in the repository root
def tickets_create(ctx: Ctx) -> Sequence:
    batch: TicketBatch | None = ctx.output("tickets")
    return Sequence(
        Task("tickets", output=TicketBatch, agent=project.tier("smart"),
             prompt=project.prompt("ticket", request=ctx.input.prompt, what=WHAT),
             timeout="30m", heartbeat_timeout="10m", retries=2),
        batch and Task("write-tickets", output=TicketFiles,
                       run=lambda: {"paths": write_tickets(project.dir / "tickets", batch.tickets)}),
    )
