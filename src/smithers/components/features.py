"""``FeatureEnum`` (an agent inventories the repository's features, refining its own list) and
``ForEachFeature`` (one agent task per feature group, in parallel, then a merge that tolerates
groups that failed).

>>> FeatureEnum(ctx, "feature-enum", agents=smart_tool, refine_passes=1)                         # doctest: +SKIP
>>> ForEachFeature(ctx, "audit", features=inv.feature_groups, agents=smart, prompt=lambda g, fs: ...)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from ..authoring.context import Ctx
from ..authoring.nodes import Loop, Parallel, Sequence, Task
from ..authoring.policies import Duration

SCAN = """Inventory this repository's features for people who will audit and improve it.
Group them (e.g. CLI, STORAGE, API) into feature_groups: group name -> list of short feature names.
Read the code, tests and docs; a feature is something a user or caller can rely on."""


class FeatureInventory(BaseModel):
    feature_groups: dict[str, list[str]] = Field(default_factory=dict)
    total_features: int = 0
    markdown_body: str = ""


class FeatureGroupResult(BaseModel):
    group: str
    summary: str
    findings: list[str] = Field(default_factory=list)
    score: int | None = None


class FeatureMerge(BaseModel):
    summary: str
    markdown_body: str = ""
    failed_groups: list[str] = Field(default_factory=list)


def group_slug(group: str) -> str:
    """>>> group_slug("E2E Testing")
    'e2e-testing'"""
    return re.sub(r"[^a-z0-9]+", "-", group.lower()).strip("-") or "group"


def FeatureEnum(
    ctx: Ctx, id_prefix: str, *, agents: Any, refine_passes: int = 1, existing: FeatureInventory | None = None,
    instructions: str = SCAN, timeout: Duration = "45m", heartbeat_timeout: Duration = "10m", retries: int = 2,
) -> Loop:
    """Loop ``<p>:loop`` of ``<p>:scan`` (:class:`FeatureInventory`): pass 0 scans (or refines
    ``existing``), each later pass refines the previous pass's inventory; 1 + ``refine_passes`` passes."""
    previous: FeatureInventory | None = ctx.output(f"{id_prefix}:scan") or existing
    prompt = instructions
    if previous is not None:
        prompt += ("\n\nRefine this inventory against the code: add what is missing, merge duplicates, drop what no longer "
                   f"exists, and keep the names stable:\n```json\n{json.dumps(previous.feature_groups, indent=2)}\n```")
    return Loop(
        Task(f"{id_prefix}:scan", output=FeatureInventory, agent=agents, prompt=prompt, timeout=timeout,
             heartbeat_timeout=heartbeat_timeout, retries=retries, label="inventory"),
        id=f"{id_prefix}:loop", max_iterations=1 + refine_passes,
    )


def ForEachFeature(
    ctx: Ctx, id_prefix: str, *, features: dict[str, list[str]], agents: Any, prompt: Callable[[str, list[str]], str],
    merge_agents: Any = None, merge_prompt: str = "Merge these per-group results into one report.", max_concurrency: int | None = 5,
    timeout: Duration = "45m", heartbeat_timeout: Duration = "10m", retries: int = 1,
) -> Sequence:
    """``<p>:group:<slug>`` per group (continue_on_fail: one failing group does not sink the
    others), then ``<p>:merge`` over the groups that answered, naming those that did not."""
    groups = sorted(features)
    results: dict[str, FeatureGroupResult | None] = {g: ctx.output(f"{id_prefix}:group:{group_slug(g)}") for g in groups}
    answered = {g: r for g, r in results.items() if r is not None}
    failed = [g for g in groups if results[g] is None]
    body = json.dumps({g: r.model_dump() for g, r in answered.items()}, indent=2)
    merge_text = f"{merge_prompt}\n\nResults per group:\n```json\n{body}\n```" + (
        f"\n\nThese groups produced no result (their tasks failed): {', '.join(failed)}" if failed else "")
    return Sequence(
        Parallel(
            *(Task(f"{id_prefix}:group:{group_slug(g)}", output=FeatureGroupResult, agent=agents, prompt=prompt(g, features[g]),
                   continue_on_fail=True, timeout=timeout, heartbeat_timeout=heartbeat_timeout, retries=retries, label=g)
              for g in groups),
            max_concurrency=max_concurrency,
        ),
        Task(f"{id_prefix}:merge", output=FeatureMerge, agent=merge_agents or agents, timeout=timeout,
             heartbeat_timeout=heartbeat_timeout, retries=retries, prompt=merge_text + f"\n\nSet failed_groups to {json.dumps(failed)}."),
    )
