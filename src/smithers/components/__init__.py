"""Reusable workflow pieces built on the DSL (Loop, Parallel, Sequence, Task) — the building
blocks of the seeded pack, for users' own workflows too. See docs/workflows.md.

>>> from smithers.components import Review, ValidationLoop   # doctest: +SKIP
>>> ValidationLoop(ctx, "impl", prompt="add --verbose", implement=smart, review=smart, test_command="pytest -q")  # doctest: +SKIP
"""

from __future__ import annotations

from .features import FeatureEnum, FeatureGroupResult, FeatureInventory, FeatureMerge, ForEachFeature, group_slug
from .grill import GrillAnswer, GrillMe, GrillQuestion, transcript
from .review import Issue, Review, ReviewResult
from .validation import ImplementResult, ValidationLoop, ValidationResult, ValidationVerdict, judge_round, run_check

__all__ = [
    "FeatureEnum", "FeatureGroupResult", "FeatureInventory", "FeatureMerge", "ForEachFeature", "GrillAnswer", "GrillMe",
    "GrillQuestion", "ImplementResult", "Issue", "Review", "ReviewResult", "ValidationLoop", "ValidationResult", "ValidationVerdict",
    "group_slug", "judge_round", "run_check", "transcript",
]
