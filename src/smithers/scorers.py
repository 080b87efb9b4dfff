"""Scorers: measure each task's output, off the critical path (DESIGN §10.6; guide: docs/evals.md).

>>> from smithers.scorers import Score, ScoreInput, latency, llm_judge, schema_adherence, scorer
>>> @scorer
... def mentions_repo(inp: ScoreInput) -> Score:
...     return Score(1.0 if inp.input["repo"] in inp.output.summary else 0.0, reason="names the repo?")
>>> Task("analyze", output=Analysis, agent=analyst, prompt="...",
...      scorers=[mentions_repo, schema_adherence(), latency(target="2m"),
...               llm_judge("clarity", agent=ClaudeCode(model="haiku"), instructions="1.0 if actionable")])  # doctest: +SKIP

Scores are stored in ``_smithers_scores``, emitted as ``ScoreRecorded``, listed by
``smithers scores RUN`` and exported as the ``smithers_score`` histogram.
"""

from __future__ import annotations

from .authoring.scoring import FunctionScorer, Latency, SchemaAdherence, Score, ScoreInput, Scorer, latency, schema_adherence, scorer
from .engine.judge import LlmJudge, Verdict, llm_judge

__all__ = [
    "FunctionScorer", "Latency", "LlmJudge", "SchemaAdherence", "Score", "ScoreInput", "Scorer", "Verdict", "latency", "llm_judge",
    "schema_adherence", "scorer",
]
