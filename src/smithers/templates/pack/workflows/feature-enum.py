# smithers-source: seeded
# smithers-display-name: Feature Enum
"""Feature enum: an agent inventories the repository's features by group, then refines its own
list; the result is saved to .smithers/specs/features.json, which `audit` reads. A later run
refines the saved inventory instead of starting over.

Run it:  smithers workflow run feature-enum
Tune it: .smithers/prompts/feature-enum.md; `refine_passes` in the input; the `smart_tool` tier.
"""

import json

from pydantic import BaseModel

from smithers import Ctx, Sequence, Task, workflow
from smithers.components import FeatureEnum, FeatureInventory
from smithers.pack import Project

project = Project.of(__file__)
INVENTORY = project.dir / "specs" / "features.json"


class FeatureEnumInput(BaseModel):
    refine_passes: int = 1
    additional_context: str = ""


class InventoryFile(BaseModel):
    path: str
    total_features: int


def save(inventory: FeatureInventory) -> dict[str, object]:
    total = sum(len(v) for v in inventory.feature_groups.values())
    INVENTORY.parent.mkdir(parents=True, exist_ok=True)
    INVENTORY.write_text(json.dumps({"feature_groups": inventory.feature_groups, "total_features": total}, indent=2) + "\n")
    return {"path": str(INVENTORY), "total_features": total}


@workflow(input=FeatureEnumInput, cwd="../..")  # tasks work in the repository root
def feature_enum(ctx: Ctx) -> Sequence:
    existing = FeatureInventory.model_validate_json(INVENTORY.read_text()) if INVENTORY.is_file() else None
    passes = 1 + ctx.input.refine_passes
    final: FeatureInventory | None = ctx.output("feature-enum:scan") if ctx.iteration_count("feature-enum:scan") >= passes else None
    return Sequence(
        FeatureEnum(ctx, "feature-enum", agents=project.tier("smart_tool"), refine_passes=ctx.input.refine_passes, existing=existing,
                    instructions=project.prompt("feature-enum", context=ctx.input.additional_context)),
        final and Task("save-inventory", output=InventoryFile, run=lambda: save(final)),
    )
