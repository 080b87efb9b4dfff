# smithers-source: seeded
# smithers-display-name: Audit
"""Audit: one agent per feature group, in parallel, audits it for the input's `focus`; a final
task merges the findings (groups whose task failed are named, not dropped silently). The feature
groups come from the input or from `feature-enum`'s .smithers/specs/features.json.

Run it:  smithers workflow run audit --input '{"focus": "error handling"}'
Tune it: .smithers/prompts/audit.md; `max_concurrency` in the input; the `smart` tier.
"""

import json

from pydantic import BaseModel

from smithers import Ctx, Sequence, workflow
from smithers.components import ForEachFeature
from smithers.errors import RenderError
from smithers.pack import Project

project = Project.of(__file__)
INVENTORY = project.dir / "specs" / "features.json"


class AuditInput(BaseModel):
    features: dict[str, list[str]] = {}
    focus: str = "code review"
    additional_context: str = ""
    max_concurrency: int = 5


@workflow(input=AuditInput, cwd="../..")  # tasks work in the repository root
def audit(ctx: Ctx) -> Sequence:
    features = ctx.input.features or (json.loads(INVENTORY.read_text()).get("feature_groups", {}) if INVENTORY.is_file() else {})
    if not features:
        raise RenderError(
            "audit has no feature groups to audit",
            hint=f"run `smithers workflow run feature-enum` first (it writes {INVENTORY}), or pass --input '{{\"features\": {{...}}}}'",
        )
    focus, extra = ctx.input.focus, ctx.input.additional_context
    return ForEachFeature(
        ctx, "audit", features=features, agents=project.tier("smart"), max_concurrency=ctx.input.max_concurrency,
        prompt=lambda group, names: project.prompt("audit", focus=focus, group=group, features=names, context=extra),
        merge_prompt=f"Merge these audit results (focus: {focus}) into one report, most serious findings first.",
    )
