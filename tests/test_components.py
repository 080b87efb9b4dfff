"""smithers.components: ValidationLoop and Review on a real run, with scripted agents and a real
pytest project whose test fails until the "agent" fixes the code."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from conftest import Project

from smithers.components import ReviewResult, ValidationResult, judge_round

BROKEN = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def tiny_pytest_project(root: Path) -> str:
    (root / "calc.py").write_text(BROKEN)
    (root / "test_calc.py").write_text(TEST)
    return f"{sys.executable} -m pytest -q -p no:cacheprovider test_calc.py"


WORKFLOW = '''
import json
from pathlib import Path
from pydantic import BaseModel
from smithers import workflow
from smithers.components import ValidationLoop
from smithers.testing import ScriptedAgent

ROOT = Path(__file__).parent
LOG = ROOT / "requests.jsonl"

def log(role, request):
    with LOG.open("a") as out:
        out.write(json.dumps({{"role": role, "prompt": request.prompt}}) + "\\n")

def implement_step(request):
    log("implement", request)
    calls = sum(1 for line in LOG.read_text().splitlines() if json.loads(line)["role"] == "implement")
    if calls >= 2:  # the second pass fixes the code
        (ROOT / "calc.py").write_text({fixed!r})
    return {{"summary": f"pass {{calls}}", "files_changed": ["calc.py"]}}

def review_step(request):
    log("review", request)
    calls = sum(1 for line in LOG.read_text().splitlines() if json.loads(line)["role"] == "review")
    # round 1 approves broken code (a careless reviewer), round 2 rejects, round 3 approves
    approved = calls != 2
    issues = [] if approved else [{{"severity": "minor", "title": "add a docstring", "file": "calc.py", "description": "explain add"}}]
    return {{"reviewer": "r", "approved": approved, "feedback": "ok" if approved else "needs a docstring", "issues": issues}}

implementer = ScriptedAgent([implement_step], name="implementer")
reviewer = ScriptedAgent([review_step], name="reviewer")

@workflow
def wf(ctx):
    return ValidationLoop(ctx, "impl", prompt="make add() add", implement=implementer, review=[reviewer],
                          test_command={test!r}, max_iterations={max_iterations})
'''


def write_workflow(project: Project, max_iterations: int = 5) -> str:
    test = tiny_pytest_project(project.root)
    project.root.joinpath("wf.py").write_text(WORKFLOW.format(fixed=FIXED, test=test, max_iterations=max_iterations))
    return test


def requests(project: Project, role: str) -> list[str]:
    lines = (project.root / "requests.jsonl").read_text().splitlines()
    return [json.loads(line)["prompt"] for line in lines if json.loads(line)["role"] == role]


def test_validation_loop_feeds_failures_forward_and_counts_only_this_rounds_approvals(project: Project, run_id_of) -> None:
    write_workflow(project)
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_id_of(result.stdout)

    verdicts = project.query(
        "select iteration, done, validation_passed, approvals, rejections from validation_verdict where run_id = ? order by iteration",
        (run_id,),
    )
    # round 1: tests fail (a careless approval does not end it); round 2: tests pass but the review
    # rejects (the original pack would have stopped here on round 1's approval); round 3: done
    assert verdicts == [(0, 0, 0, 1, 0), (1, 0, 1, 0, 1), (2, 1, 1, 1, 0)]
    assert (project.root / "calc.py").read_text() == FIXED

    implements = requests(project, "implement")
    assert len(implements) == 3
    assert "FAILED" not in implements[0]
    assert "Validation FAILED" in implements[1] and "assert" in implements[1]  # the real pytest output reached pass 2
    assert "needs a docstring" in implements[2] and "[minor] add a docstring" in implements[2]
    assert "Validation FAILED" not in implements[2]
    reviews = requests(project, "review")
    assert "FAILED" in reviews[0] and "PASSED" in reviews[1]  # reviewers are told how validation went

    rows = project.query("select iteration, passed, exit_code from validation_result where run_id = ? order by iteration", (run_id,))
    assert rows[0][1:] == (0, 1) and rows[1][1:] == (1, 0) and rows[2][1:] == (1, 0)


def test_validation_loop_stops_at_max_iterations_and_says_it_is_not_done(project: Project, run_id_of) -> None:
    write_workflow(project, max_iterations=1)
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_id_of(result.stdout)
    assert project.query("select done, validation_passed from validation_verdict where run_id = ?", (run_id,)) == [(0, 0)]
    assert (project.root / "calc.py").read_text() == BROKEN


def test_review_runs_one_reviewer_per_agent_and_a_failing_reviewer_does_not_fail_the_run(project: Project, run_id_of) -> None:
    project.write("wf.py", textwrap.dedent('''
        from smithers import workflow
        from smithers.components import Review
        from smithers.testing import ScriptedAgent

        good = ScriptedAgent([{"reviewer": "a", "approved": True, "feedback": "fine"}], name="a")
        broken = ScriptedAgent([RuntimeError("no credentials")], name="b")

        @workflow
        def wf(ctx):
            return Review("rev", prompt="check it", agents=[good, broken], retries=0)
    '''))
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_id_of(result.stdout)
    assert project.query("select node_id, approved from review_result where run_id = ?", (run_id,)) == [("rev:0", 1)]


def test_judge_round_needs_passing_validation_and_every_answering_reviewer() -> None:
    passed, failed = ValidationResult(passed=True), ValidationResult(passed=False, command="pytest", exit_code=1, output_tail="E assert")
    yes, no = ReviewResult(approved=True), ReviewResult(approved=False, feedback="nope")
    assert judge_round(0, passed, [yes, yes]).done
    assert not judge_round(0, passed, [yes, no]).done
    assert not judge_round(0, passed, [None, None]).done  # nobody answered: no approval
    assert judge_round(0, passed, [yes, None]).silent_reviewers == [1]
    verdict = judge_round(0, failed, [yes])
    assert not verdict.done and "exited 1" in verdict.feedback and "E assert" in verdict.feedback
    assert not judge_round(0, None, [yes]).done
