"""Branch: choose between two subtrees on a condition evaluated at render.

Alert triage. ``triage`` scores an alert from its error rate; then a ``Branch`` on the triage
result either pages the on-call engineer and opens an incident (high severity), or files a
ticket for the next working day. Only the chosen side is mounted, so only its tasks run and
appear in the run; the other side never exists in the plan.

Run it (high severity: pages):

    smithers up examples/branch.py --input '{"service": "checkout", "error_rate": 0.12}'

or (low severity: files a ticket):

    smithers up examples/branch.py --input '{"service": "search", "error_rate": 0.01}'

Then:

    sqlite3 smithers.db 'select node_id, severity from triage; select * from page; select * from ticket'
"""

from pydantic import BaseModel

from smithers import Branch, Sequence, Task, workflow


class Alert(BaseModel):
    service: str = "checkout"
    error_rate: float = 0.12


class Triage(BaseModel):
    service: str
    severity: str  # "high" or "low"
    reason: str


class Page(BaseModel):
    service: str
    on_call: str


class Incident(BaseModel):
    title: str


class Ticket(BaseModel):
    service: str
    queue: str


def triage(alert: Alert) -> Triage:
    high = alert.error_rate >= 0.05
    return Triage(
        service=alert.service,
        severity="high" if high else "low",
        reason=f"error rate {alert.error_rate:.0%} is {'above' if high else 'below'} the 5% threshold",
    )


@workflow(input=Alert)
def alert_triage(ctx):
    result = ctx.output("triage")
    return Sequence(
        Task("triage", output=Triage, run=lambda: triage(ctx.input)),
        result and Branch(
            result.severity == "high",
            Sequence(
                Task("page", output=Page, value={"service": result.service, "on_call": "primary"}),
                Task("incident", output=Incident, value={"title": f"{result.service}: {result.reason}"}),
            ),
            else_=Task("ticket", output=Ticket, value={"service": result.service, "queue": "next-business-day"}),
        ),
    )
