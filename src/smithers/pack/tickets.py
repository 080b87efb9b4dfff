"""Ticket files: what ``ticket-create`` / ``tickets-create`` write to ``.smithers/tickets/`` and
``kanban`` implements. One Markdown file per ticket, ``<slug>.md``; writing is idempotent (a file
with the same content is reused, so a re-executed task after a crash does not duplicate it) and
never overwrites a different ticket (the slug gets ``-2``, ``-3``, …).

>>> slugify("Add a --verbose flag!")
'add-a-verbose-flag'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, Field


class TicketDraft(BaseModel):
    title: str
    description: str
    acceptance_criteria: list[str] = Field(default_factory=list)


class TicketBatch(BaseModel):
    summary: str = ""
    tickets: list[TicketDraft]


class TicketFiles(BaseModel):
    paths: list[str]


def slugify(title: str, limit: int = 60) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:limit].strip("-")
    return slug or "ticket"


def render_ticket(ticket: TicketDraft) -> str:
    lines = [f"# {ticket.title.strip()}", "", ticket.description.strip(), ""]
    if ticket.acceptance_criteria:
        lines += ["## Acceptance criteria", "", *(f"- [ ] {c.strip()}" for c in ticket.acceptance_criteria), ""]
    return "\n".join(lines)


def write_tickets(folder: Path, tickets: list[TicketDraft]) -> list[str]:
    """Write each ticket as ``folder/<slug>.md``; returns the paths (existing identical files reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for ticket in tickets:
        content = render_ticket(ticket)
        base = slugify(ticket.title)
        for n in range(1, 1000):
            path = folder / (f"{base}.md" if n == 1 else f"{base}-{n}.md")
            if path.exists():
                if path.read_text(encoding="utf-8") == content:
                    break
                continue
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(content, encoding="utf-8")
            os.replace(tmp, path)
            break
        written.append(str(path))
    return written
