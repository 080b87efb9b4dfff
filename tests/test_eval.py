"""`smithers eval` (DESIGN §10.6): a JSONL dataset becomes ordinary runs tagged with their eval,
scored by the workflow's scorers (which see `expected`) and by `--scorer`; a table, a report,
the exit codes; `eval compare` shows per-scorer and per-case deltas."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Project

WORKFLOW = """
import time
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.scorers import Score, scorer
from smithers.testing import ScriptedAgent

BONUS = 0  # the "prompt version": v2 fixes the off-by-one on case c2

class Question(BaseModel):
    a: int
    b: int

class Answer(BaseModel):
    total: int

@scorer
def exact(inp):
    if inp.expected is None:
        return Score(1.0, reason="no expected value")
    return Score(1.0 if inp.output.total == inp.expected else 0.0, reason=f"{inp.output.total} vs {inp.expected}")

def reply(request):
    a, b = (int(x) for x in request.prompt.split("|")[1:3])
    return {"total": a + b + (1 if a == 2 and not BONUS else 0)}

def think(tc):
    time.sleep(0.3)  # long enough for runs to overlap when the eval lets them
    return {"total": 0}

@workflow(input=Question)
def adder(ctx):
    if ctx.input.a < 0:
        def boom():
            raise RuntimeError("negative input")
        return Task("add", output=Answer, run=boom)
    return Sequence(
        Task("think", output=Answer, run=think),
        Task("add", output=Answer, agent=ScriptedAgent([reply]), prompt=f"add|{ctx.input.a}|{ctx.input.b}|", scorers=[exact]),
    )
"""

CASES = [
    {"id": "c1", "input": {"a": 1, "b": 2}, "expected": 3},
    {"id": "c2", "input": {"a": 2, "b": 2}, "expected": 4},
    {"input": {"a": 5, "b": 5}, "expected": 10},
    {"id": "c4", "input": {"a": 0, "b": 7}, "expected": 7},
    {"id": "c5", "input": {"a": 3, "b": 0}},
]

EXTRA = """
from smithers.scorers import Score, scorer

@scorer(name="small")
def small(inp):
    # an eval scorer scores the case's result: the output of the task that finished last
    return Score(1.0 if inp.output.total < 9 else 0.5, reason=f"{inp.node}={inp.output.total}", meta={"expected": inp.expected})
"""


def write_cases(project: Project, cases: list[dict], name: str = "cases.jsonl") -> Path:
    return project.write(name, "\n".join(json.dumps(c) for c in cases) + "\n")


def test_eval_runs_every_case_as_a_tagged_run_and_scores_it(project: Project) -> None:
    project.write("wf.py", WORKFLOW)
    project.write("extra.py", EXTRA)
    write_cases(project, CASES)
    result = project.cli(
        "eval", "wf.py", "--dataset", "cases.jsonl", "--concurrency", "2", "--report", "v1.json", "--scorer", "extra:small", timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for header in ("CASE", "STATUS", "exact", "small", "TOOK", "TOKENS"):
        assert header in result.stdout
    assert "pass rate 80%" in result.stdout  # c2 is off by one in this version
    report = json.loads((project.root / "v1.json").read_text())
    cases = {c["case_id"]: c for c in report["cases"]}
    assert list(cases) == ["c1", "c2", "case-3", "c4", "c5"]
    assert {c["status"] for c in cases.values()} == {"finished"}
    assert cases["c2"]["scores"] == {"exact": 0.0, "small": 1.0} and cases["c2"]["passed"] is False
    assert cases["case-3"]["scores"] == {"exact": 1.0, "small": 0.5}
    assert cases["c1"]["usage"]["output_tokens"] == 10  # ScriptedAgent reports usage: it reaches the report
    agg = report["aggregate"]
    assert agg == {"cases": 5, "finished": 5, "failed": 0, "passed": 4, "pass_rate": 0.8, "mean": {"exact": 0.8, "small": 0.9}}
    # each case is an ordinary run, tagged with its eval and case (and expected)
    eval_id = report["eval_id"]
    tags = project.query("SELECT run_id, case_id, expected_json FROM _smithers_eval_runs WHERE eval_id = ? ORDER BY case_id", (eval_id,))
    assert [(t[1], json.loads(t[2]) if t[2] else None) for t in tags] == [
        ("c1", 3), ("c2", 4), ("c4", 7), ("c5", None), ("case-3", 10),
    ]
    inspected = project.json("inspect", cases["c1"]["run_id"])
    assert inspected["status"] == "finished" and inspected["input"] == {"a": 1, "b": 2}
    small = next(s for s in cases["c1"]["score_rows"] if s["scorer"] == "small")
    assert small["node_id"] == "add" and small["reason"] == "add=3"
    meta = project.query("SELECT meta_json FROM _smithers_scores WHERE run_id = ? AND scorer = 'small'", (cases["c1"]["run_id"],))
    assert json.loads(meta[0][0]) == {"expected": 3}  # an eval scorer sees `expected` too
    # never more than --concurrency runs at once
    spans = project.query("SELECT created_at_ms, finished_at_ms FROM _smithers_runs WHERE run_id LIKE ?", (eval_id + "%",))
    assert len(spans) == 5
    assert max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans) <= 2


def test_a_failed_case_exits_1_and_json_prints_the_report(project: Project) -> None:
    project.write("wf.py", WORKFLOW)
    write_cases(project, [CASES[0], {"id": "neg", "input": {"a": -1, "b": 1}, "expected": 0}])
    result = project.cli("eval", "wf.py", "--dataset", "cases.jsonl", "--json", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    statuses = {c["case_id"]: c["status"] for c in report["cases"]}
    assert statuses == {"c1": "finished", "neg": "failed"}
    neg = next(c for c in report["cases"] if c["case_id"] == "neg")
    assert "negative input" in neg["error"]["message"] and neg["passed"] is False
    assert report["aggregate"]["failed"] == 1 and report["aggregate"]["pass_rate"] == 0.5


def test_a_bad_dataset_line_exits_4_naming_the_file_and_line_and_starts_nothing(project: Project) -> None:
    project.write("wf.py", WORKFLOW)
    for lines, message in [
        (['{"input": {"a": 1, "b": 2}}', "not json"], "cases.jsonl:2: not valid JSON"),
        (['{"input": {"a": 1, "b": 2}}', "", '{"id": "x", "inputs": {}}'], "cases.jsonl:3: unknown key(s) 'inputs'"),
        (['{"id": "x", "input": [1]}'], "cases.jsonl:1: \"input\" must be a JSON object"),
        (['{"id": "x", "input": {"a": "many", "b": 1}}'], "cases.jsonl:1: input for workflow 'adder' does not match Question"),
        (['{"id": "x", "input": {"a": 1, "b": 1}}'] * 2, "cases.jsonl:2: case id 'x' is already used on line 1"),
    ]:
        project.write("cases.jsonl", "\n".join(lines) + "\n")
        result = project.cli("eval", "wf.py", "--dataset", "cases.jsonl")
        assert result.returncode == 4, result.stdout + result.stderr
        assert message in result.stderr
    assert project.query("SELECT COUNT(*) FROM _smithers_runs") == [(0,)]
    missing = project.cli("eval", "wf.py")
    assert missing.returncode == 4 and "--dataset" in missing.stderr
    write_cases(project, CASES[:1])
    bad_scorer = project.cli("eval", "wf.py", "--dataset", "cases.jsonl", "--scorer", "nowhere:thing")
    assert bad_scorer.returncode == 4 and "nowhere:thing" in bad_scorer.stderr


def test_compare_shows_per_scorer_and_per_case_deltas(project: Project) -> None:
    project.write("wf.py", WORKFLOW)
    project.write("wf_v2.py", WORKFLOW.replace("BONUS = 0", "BONUS = 1"))
    write_cases(project, CASES)
    for spec, report in (("wf.py", "v1.json"), ("wf_v2.py", "v2.json")):
        run = project.cli("eval", spec, "--dataset", "cases.jsonl", "--concurrency", "2", "--report", report, "--json", timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
    diff = project.json("eval", "compare", "v1.json", "v2.json")
    assert diff["scorers"] == [{"scorer": "exact", "a": 0.8, "b": 1.0, "delta": diff["scorers"][0]["delta"]}]
    assert abs(diff["scorers"][0]["delta"] - 0.2) < 1e-9
    assert diff["pass_rate"]["a"] == 0.8 and diff["pass_rate"]["b"] == 1.0
    c2 = next(c for c in diff["cases"] if c["case_id"] == "c2")
    assert c2["scores"]["exact"] == {"a": 0.0, "b": 1.0, "delta": 1.0} and c2["passed_a"] is False and c2["passed_b"] is True
    assert diff["regressions"] == []
    back = project.json("eval", "compare", "v2.json", "v1.json")
    assert back["regressions"] == ["c2"]
    table = project.cli("eval", "compare", "v2.json", "v1.json")
    assert table.returncode == 0 and "-1.000" in table.stdout and "1 case(s) got worse: c2" in table.stdout
    project.write("junk.json", "{}")
    junk = project.cli("eval", "compare", "v1.json", "junk.json")
    assert junk.returncode == 4 and "junk.json" in junk.stderr
