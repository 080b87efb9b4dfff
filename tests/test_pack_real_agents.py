"""Every seeded workflow end to end through `smithers workflow run` with the REAL agent CLIs:
`smithers init` finds only `claude` (or only `pi`) on PATH, so the generated agents.py resolves
every tier to `ClaudeCode()` (or `Pi()`), and the CLI talks to one scripted fake Anthropic server
on 127.0.0.1. Every workflow runs with claude; the tests marked BOTH run with pi as well.

The fake model answers like a (very small) model would: it reads the task's schema (from the
`StructuredOutput` tool Claude Code offers under `--json-schema`, or from the prompt for pi), the
prompt, and the working directory the CLI tells it, then edits files with the CLI's own write
tool (so the edits really go through the CLI, into the task's cwd: the repository root, or a
ticket's git worktree), reads with its read and bash tools, and answers. The repository's test
command is a real pytest run; waits are answered with `smithers human answer` / `approve` +
`resume`. (`implement` with claude, and `plan` with pi, are also in test_pack_real_cli.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PINNED_NODE_BIN, Project
from test_init_pack import env_with

from smithers.testing.cli_env import claude_env, pi_env
from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app
from smithers.testing.fakes.anthropic import tool_results

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"
PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider"
SUB = "def sub(a, b):\n    return a {op} b\n"
SUB_TEST = "from sub import sub\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n"
MUL = "def mul(a, b):\n    return a * b\n"
MUL_TEST = "from mul import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n"
FIXED_ADD = "def add(a, b):\n    return a + b\n"


# -- the fake model ---------------------------------------------------------------------------------

class Dialect:
    """How one CLI asks: Claude Code offers a `StructuredOutput` tool for the schema (its
    `--json-schema`) and names its tools Write/Read/Bash with `file_path`; pi gets the schema
    in the prompt, wants the JSON in the reply's text and names its tools write/read/bash with `path`."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.schema = next((t.get("input_schema", {}) for t in body.get("tools") or [] if t.get("name") == "StructuredOutput"), None)
        self.claude = self.schema is not None

    def title(self, prompt: str) -> str:
        if self.schema is not None:
            return str(self.schema.get("title", ""))
        block = prompt.rsplit("validates against this JSON schema:\n```json\n", 1)[-1].split("\n```", 1)[0]
        return str(json.loads(block).get("title", ""))

    def answer(self, payload: dict[str, Any]) -> Reply:
        """The task's output."""
        if self.claude:
            return Reply(text="Done.", tool_calls=[ToolCall("StructuredOutput", payload)])
        return Reply(text="Done.\n\n```json\n" + json.dumps(payload) + "\n```")

    def tool(self, name: str, path: Path | None = None, **arguments: Any) -> ToolCall:
        if path is not None:
            arguments["file_path" if self.claude else "path"] = str(path)
        return ToolCall(name.capitalize() if self.claude else name, arguments)

    def write(self, *files: tuple[Path, str]) -> Reply:
        return Reply(text="Editing.", tool_calls=[self.tool("write", p, content=c) for p, c in files])


def prompt_of(body: dict[str, Any]) -> str:
    """The task's prompt: the last text block of the first user message (Claude Code puts its
    system reminders before it)."""
    content = (body.get("messages") or [{}])[0].get("content")
    if isinstance(content, str):
        return content
    texts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
    return texts[-1] if texts else ""


def result_text(result: dict[str, Any]) -> str:
    """A tool result's text (a string, or a list of text blocks)."""
    content = result.get("content")
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)


def cwd_of(body: dict[str, Any]) -> Path:
    """The task's working directory, as the CLI told the model (Claude Code in a system message
    after the prompt, pi at the end of its system prompt)."""
    said = json.dumps([body.get("system"), body.get("messages")]).replace("\\n", "\n")
    found = re.search(r"(?:Primary|Current) working directory: ([^\s\"]+)", said)
    assert found, "the CLI no longer tells the model its working directory"
    return Path(found.group(1))


def implement(cli: Dialect, prompt: str, cwd: Path, edited: bool) -> Reply:
    """ImplementResult: the edit first (a Write turn), the summary once the tool has run."""
    failed = "Validation FAILED" in prompt
    if "# Add sub" in prompt or "**This milestone: Add sub**" in prompt:  # kanban ticket / mission milestone
        files = [(cwd / "sub.py", SUB.format(op="-" if failed else "+")), (cwd / "test_sub.py", SUB_TEST)]
    elif "# Add mul" in prompt or "**This milestone: Add mul**" in prompt:
        files = [(cwd / "mul.py", MUL), (cwd / "test_mul.py", MUL_TEST)]
    elif failed:  # told the tests fail: fix add()
        files = [(cwd / "calc.py", FIXED_ADD)]
    elif prompt.startswith("Debug this"):  # reproduce first, with a failing regression test
        files = [(cwd / "test_regression.py", "from calc import add\n\n\ndef test_two_and_two():\n    assert add(2, 2) == 4\n")]
    elif prompt.startswith("Improve this repository's tests"):
        files = [(cwd / "test_more.py", "from calc import add\n\n\ndef test_inverse():\n    assert add(-1, 1) == 0\n")]
    else:
        files = [(cwd / "calc.py", FIXED_ADD)]
    if not edited:
        return cli.write(*files)
    return cli.answer({"summary": "wrote " + ", ".join(p.name for p, _ in files), "files_changed": [p.name for p, _ in files]})


def reply(body: dict[str, Any]) -> Reply:
    """Answer one request; a request the fake cannot place gets a 400, which Claude Code does not
    retry, so the run fails at once with this message instead of backing off for minutes."""
    try:
        return model(body)
    except Exception as err:
        return Reply(status=400, error_message=f"the fake model cannot answer this request: {type(err).__name__}: {err}")


def model(body: dict[str, Any]) -> Reply:
    cli, prompt, cwd = Dialect(body), prompt_of(body), cwd_of(body)
    kind, answer = cli.title(prompt), cli.answer
    results = tool_results(body)
    edited = bool(results)
    if kind == "ImplementResult":
        return implement(cli, prompt, cwd, edited)
    if kind == "ReviewResult" and "Validation `" not in prompt:  # the review workflow: read the diff with Bash
        if not edited:
            return Reply(text="Looking.", tool_calls=[cli.tool("bash", command="git diff")])
        added = [line[1:].strip() for line in result_text(results[0]).splitlines() if line.startswith("+") and
                 not line.startswith("+++")]
        todo = [line for line in added if "TODO" in line]
        return answer({"reviewer": "claude", "approved": not todo, "feedback": "the diff adds: " + "; ".join(added),
                       "issues": [{"severity": "minor", "title": todo[0], "file": "calc.py"}] if todo else []})
    if kind == "ReviewResult":
        failing = "FAILED" in prompt
        return answer({"reviewer": "claude", "approved": not failing, "feedback": "the tests fail" if failing else "looks right",
                       "issues": [{"severity": "major", "title": "tests fail"}] if failing else []})
    if kind == "ResearchResult":  # read the code with Claude Code's Read tool, then report what it said
        if not edited:
            return Reply(text="Reading.", tool_calls=[cli.tool("read", cwd / "calc.py")])
        op = "-" if "a - b" in json.dumps(results) else "+"
        return answer({"summary": f"add uses {op}", "key_findings": [f"calc.add returns a {op} b"]})
    if kind == "PlanResult":
        return answer({"summary": "two steps", "steps": ["write a test", "fix add"]})
    if kind == "TicketDraft":
        return answer({"title": "Add sub", "description": "A sub() with a test.", "acceptance_criteria": ["sub(5, 3) == 2"]})
    if kind == "TicketBatch":
        return answer({"summary": "two", "tickets": [
            {"title": "Add sub", "description": "A sub() with a test.", "acceptance_criteria": ["sub(5, 3) == 2"]},
            {"title": "Add mul", "description": "A mul() with a test.", "acceptance_criteria": ["mul(2, 3) == 6"]}]})
    if kind == "RalphPass":
        last = re.search(r"What the previous pass did:\ndid pass (\d+)", prompt)
        return answer({"summary": f"did pass {int(last.group(1)) + 1 if last else 1}"})
    if kind == "GrillQuestion":
        answered = len(re.findall(r"^A\d+: ", prompt, re.M))
        if answered >= 2:
            return answer({"question": "", "resolved": True, "shared_understanding": "we agree"})
        return answer({"question": f"question {answered + 1}?", "recommended_answer": "yes", "resolved": False})
    if kind == "Prd":
        interview = prompt.split("## What the interview settled")[-1].split("Sections:")[0]
        return answer({"title": "Team workspaces", "markdown_body": "## Problem Statement\n" + interview, "complete": True})
    if kind == "FeatureInventory":
        groups = {"CALC": ["add"], "TESTS": ["test_add"]}
        if "Refine this inventory" in prompt:
            groups["CALC"].append("sub")
        return answer({"feature_groups": groups, "markdown_body": "inventory"})
    if kind == "FeatureGroupResult":
        group = re.search(r"feature group \*\*(.+?)\*\*", prompt)
        return answer({"group": group.group(1) if group else "?", "summary": "ok", "findings": ["add a test"], "score": 70})
    if kind == "FeatureMerge":
        failed = json.loads(prompt.rsplit("Set failed_groups to ", 1)[1].split("\n")[0].rstrip("."))
        return answer({"summary": "merged audit", "failed_groups": failed})
    if kind == "MissionPlan":
        return answer({"summary": "arithmetic", "milestones": [
            {"title": "Add sub", "description": "sub()", "acceptance_criteria": ["sub(5, 3) == 2"]},
            {"title": "Add mul", "description": "mul()", "acceptance_criteria": []}]})
    raise LookupError(f"no answer scripted for a task whose output is {kind!r}")


# -- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeServer]:
    with FakeServer(anthropic_app([reply])) as server:
        yield server


CLIS = {"claude": ("ClaudeCode", "claude-code", claude_env), "pi": ("Pi", "pi", pi_env)}
# Every workflow runs with claude; with pi too where the shapes differ most (tools, worktrees and
# merges, a human wait, parallel tasks, outputs fed forward), keeping the file under three minutes.
# Every test passes with pi as well: set both lists to BOTH to run the whole matrix.
BOTH = ("claude", "pi")
CLAUDE = ("claude",)


@pytest.fixture
def cli(request: pytest.FixtureRequest) -> str:
    """The agent CLI a test's repository uses (parametrized per test, indirectly)."""
    path = AGENTS_BIN / request.param
    if not os.access(path, os.X_OK):
        pytest.fail(f"the {request.param} CLI is not installed at {path}: run scripts/install-agents")
    return str(request.param)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


class Repo:
    """A git repository with calc.py (add() broken unless ``fixed``), `smithers init` run with
    only the real claude on PATH, and the real pytest as its test command; all of it committed."""

    def __init__(self, tmp_path: Path, cli: str, server: FakeServer, *, fixed: bool) -> None:
        self.project = Project(tmp_path / "repo")
        root = self.root = self.project.root
        root.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / cli).symlink_to(AGENTS_BIN / cli)  # only this CLI: no other agent CLI may reach a network
        agent_class, self.agent_name, cli_env = CLIS[cli]
        self.project.write("calc.py", FIXED_ADD if fixed else "def add(a, b):\n    return a - b\n")
        self.project.write("test_calc.py", "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
        self.project.write(".gitignore", "smithers.db*\n__pycache__/\n")  # as .smithers/.gitignore asks
        git(root, "init", "-q", "-b", "main")
        self.env = env_with(self.project, Path(f"{bin_dir}{os.pathsep}{PINNED_NODE_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin"))
        self.env.update(cli_env(server.url, tmp_path / "home"))
        self.env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
        self.server = server
        made = self.project.cli("init", env=self.env)
        assert made.returncode == 0, made.stderr
        assert f"smart = [{agent_class}()]" in (root / ".smithers" / "agents.py").read_text()
        (root / ".smithers" / "config.toml").write_text(f'[commands]\ntest = "{PYTEST}"\n')
        git(root, "add", "-A")  # the pack is committed with the code, as a user would
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start, with smithers init")

    def run(self, *args: str, expect: int = 0) -> tuple[str, str]:
        """`smithers workflow run ARGS`: (run id, stdout)."""
        return self.finish(self.project.cli("workflow", "run", *args, env=self.env, timeout=300), expect)

    def resume(self, run_id: str, expect: int = 0) -> str:
        return self.finish(self.project.cli("resume", run_id, env=self.env, timeout=300), expect)[1]

    def finish(self, result: subprocess.CompletedProcess[str], expect: int) -> tuple[str, str]:
        assert result.returncode == expect, result.stdout + result.stderr
        run_id = [line for line in result.stdout.splitlines() if line.startswith("run ")][-1].split()[1]
        self.agents_answered_cleanly(run_id)
        return run_id, result.stdout

    def agents_answered_cleanly(self, run_id: str) -> None:
        """Every agent attempt so far ran the real claude and succeeded at once, in one turn: its
        output came through Claude Code's StructuredOutput, with no retry, repair or JSON-only turn."""
        attempts = self.query("select node_id, attempt, status, meta_json from _smithers_attempts where run_id = ?", run_id)
        agents = [(node, attempt, status, json.loads(meta)) for node, attempt, status, meta in attempts
                  if json.loads(meta or "{}").get("mode") == "agent"]
        assert agents, "no agent task ran"
        for node, attempt, status, meta in agents:
            assert (attempt, status, meta["agent"], meta["turns"]) == (1, "finished", self.agent_name, 1), (node, attempt, status, meta)

    def query(self, sql: str, run_id: str) -> list[tuple]:
        return self.project.query(sql, (run_id,))

    def prompts(self) -> list[str]:
        """The prompts of this repository's tasks the fake model received (worktrees included)."""
        return [prompt_of(body) for body in self.server.requests if str(cwd_of(body)).startswith(str(self.root))]

    def answer_question(self, run_id: str, text: str) -> None:
        inbox = json.loads(self.project.cli("inbox", "--json", env=self.env).stdout)
        pending = [p for p in inbox if p["run_id"] == run_id]
        assert len(pending) == 1, pending
        value = json.dumps({"answer": text})
        answered = self.project.cli("human", "answer", pending[0]["request_id"], "--value", value, env=self.env)
        assert answered.returncode == 0, answered.stderr


@pytest.fixture
def broken(tmp_path: Path, cli: str, fake_model: FakeServer) -> Repo:
    return Repo(tmp_path, cli, fake_model, fixed=False)


@pytest.fixture
def working(tmp_path: Path, cli: str, fake_model: FakeServer) -> Repo:
    return Repo(tmp_path, cli, fake_model, fixed=True)


# -- the workflows ----------------------------------------------------------------------------------

@pytest.mark.agents
@pytest.mark.parametrize("cli", CLAUDE, indirect=True)
@pytest.mark.parametrize(("workflow_id", "prefix", "added"), [
    ("debug", "debug", "test_regression.py"),  # a failing regression test first, then the fix
    ("improve-test-coverage", "improve-test-coverage", "test_more.py"),  # a new test, then the fix it demands
])
def test_validation_workflows(broken: Repo, workflow_id: str, prefix: str, added: str) -> None:
    run_id, _ = broken.run(workflow_id, "--prompt", "add() is wrong")
    assert (broken.root / "calc.py").read_text() == FIXED_ADD and (broken.root / added).is_file()
    assert broken.query("select iteration, done from validation_verdict where run_id = ? order by iteration", run_id) == [
        (0, 0), (1, 1)]
    assert broken.query(f"select count(*) from implement_result where run_id = ? and node_id = '{prefix}:implement'", run_id) == [
        (2,)]
    second_pass = [p for p in broken.prompts() if "Validation FAILED" in p]
    assert second_pass and "assert" in second_pass[0]  # the real pytest output reached the second pass


@pytest.mark.agents
@pytest.mark.parametrize("cli", BOTH, indirect=True)
def test_research_plan_implement(broken: Repo) -> None:
    run_id, _ = broken.run("research-plan-implement", "--prompt", "make add add", "--input", '{"tdd": true}')
    assert broken.query("select key_findings from research_result where run_id = ?", run_id) == [('["calc.add returns a - b"]',)]
    assert broken.query("select summary from plan_result where run_id = ?", run_id) == [("two steps",)]
    assert broken.query("select iteration, done from validation_verdict where run_id = ?", run_id) == [(0, 1)]
    assert (broken.root / "calc.py").read_text() == FIXED_ADD
    implement = next(p for p in broken.prompts() if p.startswith("You are implementing"))
    assert "Research: add uses -" in implement and "1. write a test" in implement  # research and plan fed forward
    assert "Test first" in implement


@pytest.mark.agents
@pytest.mark.parametrize("cli", BOTH, indirect=True)
def test_research_plan_review_and_ralph(working: Repo) -> None:
    run_id, _ = working.run("research", "--prompt", "how does add work?")
    found = working.query("select summary, key_findings from research_result where run_id = ?", run_id)
    assert found == [("add uses +", '["calc.add returns a + b"]')]  # what Claude Code's Read tool returned

    run_id, out = working.run("plan", "--prompt", "make add faster")
    assert working.query("select summary, steps from plan_result where run_id = ?", run_id) == [
        ("two steps", '["write a test", "fix add"]')]
    assert "next: smithers workflow run implement" in out

    working.project.write("calc.py", FIXED_ADD + "# TODO: overflow\n")  # an uncommitted change to review
    run_id, _ = working.run("review", "--prompt", "focus on naming")
    ((node, approved, feedback, issues),) = working.query("select node_id, approved, feedback, issues from review_result where run_id = ?",
                                                          run_id)
    assert (node, approved, feedback) == ("review:0", 0, "the diff adds: # TODO: overflow")  # what `git diff` showed claude
    assert [(i["title"], i["file"]) for i in json.loads(issues)] == [("# TODO: overflow", "calc.py")]

    run_id, _ = working.run("ralph", "--prompt", "keep going", "--input", '{"max_iterations": 2}')
    assert working.query("select summary from ralph_pass where run_id = ? order by iteration", run_id) == [
        ("did pass 1",), ("did pass 2",)]  # the second pass was told what the first did


@pytest.mark.agents
@pytest.mark.parametrize("cli", BOTH, indirect=True)
def test_tickets_then_kanban(working: Repo) -> None:
    tickets = working.root / ".smithers" / "tickets"
    _, out = working.run("ticket-create", "--prompt", "we need sub")
    assert (tickets / "add-sub.md").read_text().startswith("# Add sub\n")
    _, out = working.run("tickets-create", "--prompt", "we need sub and mul")
    assert sorted(p.name for p in tickets.glob("*.md")) == ["add-mul.md", "add-sub.md"]  # add-sub reused, not duplicated
    assert "next: smithers workflow run kanban" in out

    run_id, _ = working.run("kanban", "--input", '{"max_iterations": 2}')
    outcomes = dict(working.query("select slug, status from ticket_outcome where run_id = ?", run_id))
    assert outcomes == {"add-sub": "done", "add-mul": "done"}
    ((merged,),) = working.query("select merged from merge_report where run_id = ?", run_id)
    assert sorted(json.loads(merged)) == ["add-mul", "add-sub"]
    root = working.root
    assert (root / "sub.py").read_text() == SUB.format(op="-") and (root / "mul.py").read_text() == MUL  # merged into main
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert (root / ".smithers" / "worktrees" / "add-sub" / "sub.py").is_file()  # claude wrote in the ticket's worktree
    rounds = dict(working.query("select slug, rounds from ticket_outcome where run_id = ?", run_id))
    assert rounds == {"add-sub": 2, "add-mul": 1}  # sub was wrong first: the failing tests reached its second pass
    assert subprocess.run(PYTEST.split(), cwd=root, capture_output=True).returncode == 0


@pytest.mark.agents
@pytest.mark.parametrize("cli", CLAUDE, indirect=True)
def test_mission(working: Repo) -> None:
    run_id, _ = working.run("mission", "--prompt", "arithmetic", expect=3)  # waits for the plan's approval
    approved = working.project.cli("approve", run_id, "--node", "mission:approve", env=working.env)
    assert approved.returncode == 0, approved.stderr
    working.resume(run_id)
    ((report,),) = working.query("select milestones from mission_report where run_id = ?", run_id)
    assert [(m["title"], m["status"]) for m in json.loads(report)] == [("Add sub", "done"), ("Add mul", "done")]
    assert (working.root / "sub.py").read_text() == SUB.format(op="-") and (working.root / "mul.py").is_file()
    second = next(p for p in working.prompts() if "**This milestone: Add mul**" in p)
    assert "Add sub: wrote sub.py, test_sub.py" in second  # milestone 2 knows what milestone 1 did


@pytest.mark.agents
@pytest.mark.parametrize(("cli", "workflow_id"), [("claude", "grill-me"), ("claude", "write-a-prd"), ("pi", "write-a-prd")],
                         indirect=["cli"])
def test_interviews(working: Repo, workflow_id: str) -> None:
    run_id, out = working.run(workflow_id, "--prompt", "team workspaces", expect=3)  # question 1 waits for a person
    assert "question 1?" in out
    working.answer_question(run_id, "answer one")
    working.resume(run_id, expect=3)
    working.answer_question(run_id, "answer two")
    working.resume(run_id)
    prefix = "grill-me" if workflow_id == "grill-me" else "write-a-prd:grill"
    rows = working.query(f"select resolved from grill_question where run_id = ? and node_id = '{prefix}:question'", run_id)
    assert sorted(rows) == [(0,), (0,), (1,)]
    last_question = [p for p in working.prompts() if "## The interview so far" in p][-1]
    assert "answer one" in last_question and "answer two" in last_question
    if workflow_id == "write-a-prd":
        prd = (working.root / ".smithers" / "prds" / "team-workspaces.md").read_text()
        assert prd.startswith("# Team workspaces\n") and "answer two" in prd


@pytest.mark.agents
@pytest.mark.parametrize("cli", BOTH, indirect=True)
def test_feature_enum_then_audit(working: Repo) -> None:
    working.run("feature-enum")
    saved = json.loads((working.root / ".smithers" / "specs" / "features.json").read_text())
    assert saved == {"feature_groups": {"CALC": ["add", "sub"], "TESTS": ["test_add"]}, "total_features": 3}
    run_id, _ = working.run("audit", "--input", '{"focus": "error handling"}')
    groups = working.query("select node_id, score from feature_group_result where run_id = ? order by node_id", run_id)
    assert groups == [("audit:group:calc", 70), ("audit:group:tests", 70)]
    assert working.query("select summary, failed_groups from feature_merge where run_id = ?", run_id) == [("merged audit", "[]")]
    audit = next(p for p in working.prompts() if "feature group **CALC**" in p)
    assert "- sub" in audit and "error handling" in audit  # audit read feature-enum's saved inventory


# Which test runs each workflow with the real claude (implement: test_pack_real_cli.py).
COVERED = {
    "implement": "test_pack_real_cli.py", "debug": "validation_workflows", "improve-test-coverage": "validation_workflows",
    "research-plan-implement": "research_plan_implement", "research": "research_plan_review_and_ralph",
    "plan": "research_plan_review_and_ralph", "review": "research_plan_review_and_ralph", "ralph": "research_plan_review_and_ralph",
    "ticket-create": "tickets_then_kanban", "tickets-create": "tickets_then_kanban", "kanban": "tickets_then_kanban",
    "mission": "mission", "grill-me": "interviews", "write-a-prd": "interviews", "feature-enum": "feature_enum_then_audit",
    "audit": "feature_enum_then_audit",
}


def test_every_seeded_workflow_is_run_with_the_real_claude() -> None:
    from smithers.pack.registry import seeded_workflow_ids

    assert set(COVERED) == set(seeded_workflow_ids()) - {"hello"}  # hello needs no agent
    here = Path(__file__).read_text()
    for workflow_id, test in COVERED.items():
        if test.endswith(".py"):
            assert f'"workflow", "run", "{workflow_id}"' in (Path(__file__).parent / test).read_text(), workflow_id
        else:
            assert f"def test_{test}(" in here, workflow_id
