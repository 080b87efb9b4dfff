"""GrillMe, grill-me and write-a-prd: questions go to a person through a durable HumanTask (the
run waits; `smithers human answer` then `resume`), every question sees the earlier answers, the
interview ends when the agent says it is resolved, and the PRD is drafted after the interview
with every answer, converging on content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Project
from test_init_pack import env_with, fake_bin, init

AGENTS = '''
# smithers-source: user
import json
from pathlib import Path
from smithers.testing import ScriptedAgent

ROOT = Path(__file__).resolve().parents[1]

def answer(request):
    with (ROOT / "prompts.log").open("a") as out:
        out.write(json.dumps({"node": request.node_id, "prompt": request.prompt}) + "\\n")
    if request.node_id.endswith(":question"):
        answered = request.prompt.count("\\nA")
        if answered >= 2:
            return {"question": "", "resolved": True, "shared_understanding": "we agree"}
        return {"question": f"question {answered + 1}?", "recommended_answer": "yes", "resolved": False}
    if request.node_id == "write-a-prd:prd":
        drafts = request.prompt.count("Your previous draft")
        body = "## Problem Statement\\nsame"  # the second draft repeats the first: converged on content
        return {"title": "Team workspaces", "markdown_body": body, "complete": False}
    raise RuntimeError(request.node_id)

MISSING = None
smart = [ScriptedAgent([answer], name="scripted")]
cheap_fast = smart_tool = smart
'''


@pytest.fixture
def repo(project: Project, tmp_path: Path) -> tuple[Project, dict[str, str]]:
    env = env_with(project, fake_bin(tmp_path, "claude"))
    init(project, env)
    (project.root / ".smithers" / "agents.py").write_text(AGENTS)
    return project, env


def answer_open_question(project: Project, env: dict[str, str], run_id: str, text: str) -> None:
    pending = [p for p in json.loads(project.cli("inbox", "--json", env=env).stdout) if p["run_id"] == run_id]
    assert len(pending) == 1, pending
    answered = project.cli("human", "answer", pending[0]["request_id"], "--value", json.dumps({"answer": text}), env=env)
    assert answered.returncode == 0, answered.stderr


def interview(project: Project, env: dict[str, str], workflow_id: str) -> str:
    first = project.cli("workflow", "run", workflow_id, "--prompt", "team workspaces", env=env, timeout=120)
    assert first.returncode == 3, first.stdout + first.stderr  # waiting for a person
    run_id = [line for line in first.stdout.splitlines() if line.startswith("run ")][-1].split()[1]
    assert "question 1?" in first.stdout and "Recommended answer: yes" in json.dumps(
        json.loads(project.cli("inbox", "--json", env=env).stdout))
    answer_open_question(project, env, run_id, "answer one")
    second = project.cli("resume", run_id, env=env, timeout=120)
    assert second.returncode == 3, second.stdout + second.stderr
    answer_open_question(project, env, run_id, "answer two")
    last = project.cli("resume", run_id, env=env, timeout=120)
    assert last.returncode == 0, last.stdout + last.stderr
    return run_id


def prompts(project: Project) -> list[dict]:
    return [json.loads(line) for line in (project.root / "prompts.log").read_text().splitlines()]


def test_grill_me_asks_a_person_and_stops_when_resolved(repo) -> None:
    project, env = repo
    run_id = interview(project, env, "grill-me")
    questions = [p for p in prompts(project) if p["node"] == "grill-me:question"]
    assert len(questions) == 3  # two answered, the third resolves (the original always ran every round)
    assert "answer one" in questions[1]["prompt"] and "answer two" in questions[2]["prompt"]  # the transcript is fed back
    rows = project.query("select iteration, resolved from grill_question where run_id = ? order by iteration", (run_id,))
    assert rows == [(0, 0), (1, 0), (2, 1)]
    assert project.query("select answer from grill_answer where run_id = ? order by iteration", (run_id,)) == [
        ("answer one",), ("answer two",)]


def test_write_a_prd_drafts_after_the_interview_and_converges_on_content(repo) -> None:
    project, env = repo
    run_id = interview(project, env, "write-a-prd")
    log = prompts(project)
    nodes = [p["node"] for p in log]
    first_draft = nodes.index("write-a-prd:prd")
    assert all(n == "write-a-prd:grill:question" for n in nodes[:first_draft])  # the interview came first
    drafts = [p for p in log if p["node"] == "write-a-prd:prd"]
    assert "answer one" in drafts[0]["prompt"] and "answer two" in drafts[0]["prompt"]
    assert len(drafts) == 2, "identical content twice = converged (max_drafts is 3)"
    assert "Your previous draft" in drafts[1]["prompt"]
    prd = project.root / ".smithers" / "prds" / "team-workspaces.md"
    assert prd.read_text().startswith("# Team workspaces\n")
    assert project.query("select count(*) from prd where run_id = ?", (run_id,)) == [(2,)]
