"""The pack's data: which files ``smithers init`` seeds (everything shipped under
``smithers/templates/pack/``), the headers that mark a file seeded, and what to run next after
each workflow. Adding a seeded workflow = dropping ``<id>.py`` (and its prompts) there."""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable

SOURCE_HEADER = "smithers-source"
NAME_HEADER = "smithers-display-name"
# `# smithers-source: seeded` in Python/TOML/.gitignore; `<!-- smithers-source: seeded -->` in Markdown
_HEADER = re.compile(r"^\s*(?:#|<!--)\s*(smithers-source|smithers-display-name)\s*:\s*(.*?)\s*(?:-->)?\s*$", re.MULTILINE)

# after a run of the key, `workflow run` suggests these (only those that exist are printed)
FOLLOW_UPS: dict[str, tuple[str, ...]] = {
    "research": ("write-a-prd", "plan"),
    "plan": ("research-plan-implement", "implement", "tickets-create", "grill-me"),
    "ticket-create": ("kanban", "implement"),
    "tickets-create": ("kanban", "implement"),
    "kanban": ("review", "improve-test-coverage"),
    "grill-me": ("write-a-prd", "tickets-create"),
    "write-a-prd": ("tickets-create", "plan", "implement"),
    "debug": ("review", "improve-test-coverage"),
    "implement": ("review", "improve-test-coverage"),
    "research-plan-implement": ("review", "improve-test-coverage"),
    "mission": ("review", "improve-test-coverage"),
    "review": ("implement",),
    "feature-enum": ("audit", "implement"),
    "audit": ("implement", "tickets-create"),
    "hello": ("implement",),
}

# the ids DESIGN §10.4 promises; `seeded_workflow_ids()` says which ones this version ships
PLANNED_WORKFLOWS = (
    "implement", "research-plan-implement", "mission", "kanban", "ralph", "research", "plan", "grill-me", "write-a-prd",
    "ticket-create", "tickets-create", "review", "debug", "improve-test-coverage", "feature-enum", "audit",
)


def pack_root() -> Traversable:
    return files("smithers.templates").joinpath("pack")


def headers(text: str) -> dict[str, str]:
    """The ``smithers-source`` / ``smithers-display-name`` headers of a file (first of each wins).

    >>> headers("# smithers-source: seeded\\n# smithers-display-name: Hello\\n")
    {'smithers-source': 'seeded', 'smithers-display-name': 'Hello'}
    >>> headers("<!-- smithers-source: seeded -->")
    {'smithers-source': 'seeded'}
    """
    found: dict[str, str] = {}
    for key, value in _HEADER.findall(text):
        found.setdefault(key, value)
    return found


def seeded_files() -> dict[str, str]:
    """Every static file the pack seeds: path relative to ``.smithers/`` → content."""
    result: dict[str, str] = {}
    root = pack_root()
    for folder, suffix in (("workflows", ".py"), ("prompts", ".md")):
        for item in sorted(root.joinpath(folder).iterdir(), key=lambda t: t.name):
            if item.is_file() and item.name.endswith(suffix) and not item.name.startswith("_"):
                result[f"{folder}/{item.name}"] = item.read_text(encoding="utf-8")
    result[".gitignore"] = root.joinpath("gitignore").read_text(encoding="utf-8")
    return result


def seeded_workflow_ids() -> list[str]:
    return sorted(path[len("workflows/"):-3] for path in seeded_files() if path.startswith("workflows/"))


def new_workflow_template() -> str:
    """What ``smithers workflow create ID`` starts from (placeholders ``__ID__``, ``__TITLE__``, ``__FUNC__``)."""
    return pack_root().joinpath("new_workflow.py.txt").read_text(encoding="utf-8")
