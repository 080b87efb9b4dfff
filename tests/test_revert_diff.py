"""`smithers diff`, `smithers revert` and `smithers gc` through the real CLI (DESIGN §10.3): what an
attempt changed (--json, --stat), putting the tree back after or before an attempt, the refusal
that protects unsaved work (exit 4) and --force, the audit, pruning old runs' refs, the HTTP
diff endpoint, and a real Claude Code CLI (against the fake Anthropic server) that breaks a file
which `revert` then puts back."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from smithers.snapshots import find_repo, run_ref
from smithers.testing.cli_env import claude_env
from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"
ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

WRITER = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Done(BaseModel):
    ok: bool

def write_a():
    Path("a.txt").write_text("one\\n")
    return {"ok": True}

def write_b():
    Path("a.txt").write_text("two\\nlines\\n")
    Path("b.txt").write_text("bee\\n")
    return {"ok": True}

@workflow
def wf(ctx):
    return Sequence(Task("a", output=Done, run=write_a), Task("b", output=Done, run=write_b))
"""

WAITS = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Approval, Sequence, Task, workflow

class Done(BaseModel):
    ok: bool

def write():
    Path("w.txt").write_text("w\\n")
    return {"ok": True}

@workflow
def waits(ctx):
    return Sequence(Task("w", output=Done, run=write), Approval("ship", Task("after", output=Done, value={"ok": True})))
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **ENV})
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout


@pytest.fixture
def writer_run(project, run_id_of) -> str:
    git(project.root, "init", "-q")
    project.write("wf.py", WRITER)
    done = project.cli("up", "wf.py")
    assert done.returncode == 0, done.stderr
    return run_id_of(done.stdout)


def test_diff_json_and_stat(project, writer_run):
    result = project.json("diff", writer_run, "--node", "b")
    assert result["files"] == [
        {"path": "a.txt", "status": "modified", "additions": 2, "deletions": 1},
        {"path": "b.txt", "status": "added", "additions": 1, "deletions": 0},
    ]
    assert "+bee" in result["patch"] and "-one" in result["patch"]
    assert (result["node_id"], result["iteration"], result["attempt"]) == ("b", 0, 1)
    node = project.json("node", writer_run, "b")
    attempt = node["iterations"][0]["attempts"][0]
    assert (result["before"], result["after"]) == (attempt["snapshot_before"], attempt["snapshot_after"])

    stat = project.cli("diff", writer_run, "--node", "b", "--stat")
    assert stat.returncode == 0, stat.stderr
    assert " M a.txt  +2 -1" in stat.stdout and " A b.txt  +1 -0" in stat.stdout and "2 files changed, +3 -1" in stat.stdout
    stat_json = project.json("diff", writer_run, "--node", "a", "--stat")
    assert "patch" not in stat_json and stat_json["files"] == [{"path": "a.txt", "status": "added", "additions": 1, "deletions": 0}]

    plain = project.cli("diff", writer_run, "--node", "a")
    assert plain.stdout.startswith("diff --git a/a.txt b/a.txt")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node", "nope"], "has no node 'nope'"),
        (["--node", "b", "--attempt", "7"], "no attempt 7"),
        (["--node", "b", "--iteration", "3"], "no attempt at iteration 3"),
    ],
)
def test_diff_of_something_that_does_not_exist_exits_4(project, writer_run, args, message):
    done = project.cli("diff", writer_run, *args)
    assert done.returncode == 4 and message in done.stderr, done.stderr
    assert project.cli("diff", "no-such-run", "--node", "b").returncode == 4


def test_revert_after_and_before_an_attempt(project, writer_run):
    root = project.root
    out = project.cli("revert", writer_run, "--node", "a")
    assert out.returncode == 0, out.stderr
    assert "a.txt" in out.stdout and "b.txt" in out.stdout
    assert (root / "a.txt").read_text() == "one\n" and not (root / "b.txt").exists()

    result = project.json("revert", writer_run, "--node", "a", "--before", "--by", "alice")
    assert result["files"] == ["a.txt"] and result["side"] == "before"
    assert not (root / "a.txt").exists() and (root / "wf.py").exists()

    events = [json.loads(line) for line in project.cli("events", writer_run, "--json", "--type", "RevertFinished").stdout.splitlines()]
    assert [e["payload"]["side"] for e in events] == ["after", "before"]
    assert events[1]["node_id"] == "a" and events[1]["payload"]["files"] == ["a.txt"] and events[1]["payload"]["actor"] == "alice"
    audit = project.query("select run_id, action, actor, detail_json from _smithers_audit order by id")
    assert [(r[0], r[1]) for r in audit] == [(writer_run, "revert"), (writer_run, "revert")]
    assert audit[1][2] == "alice" and json.loads(audit[1][3])["commit"] == result["commit"]

    again = project.cli("revert", writer_run, "--node", "b")
    assert again.returncode == 0 and (root / "b.txt").read_text() == "bee\n"


def test_revert_refuses_unsaved_changes_unless_forced(project, writer_run):
    root = project.root
    (root / "mine.txt").write_text("my own work\n")
    refused = project.cli("revert", writer_run, "--node", "a", "--before")
    assert refused.returncode == 4
    assert "mine.txt" in refused.stderr and "--force" in refused.stderr
    assert (root / "mine.txt").exists() and (root / "a.txt").read_text() == "two\nlines\n", "nothing changed"
    assert project.query("select count(*) from _smithers_audit") == [(0,)]

    forced = project.json("revert", writer_run, "--node", "a", "--before", "--force")
    assert not (root / "mine.txt").exists() and not (root / "a.txt").exists()
    saved = forced["saved"]
    repo = find_repo(root)
    assert git(root, "--git-dir", str(repo.git_dir), "show", f"{saved}:mine.txt") == "my own work\n", "--force kept the work as a snapshot"
    assert forced["forced"] is True


def test_revert_of_a_run_that_is_running_is_refused(project):
    project.write("slow.py", """
        import time
        from pydantic import BaseModel
        from smithers import Task, workflow

        class Done(BaseModel):
            ok: bool

        def slow():
            time.sleep(30)
            return {"ok": True}

        @workflow
        def slow_wf(ctx):
            return Task("slow", output=Done, run=slow)
    """)
    proc = project.popen("up", "slow.py", "--run-id", "busy")
    try:
        for _ in range(200):
            rows = project.query("select status from _smithers_attempts where run_id = 'busy'")
            if rows:
                break
            time.sleep(0.05)
        done = project.cli("revert", "busy", "--node", "slow", "--before")
        assert done.returncode == 4 and "is running" in done.stderr, done.stderr
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_gc_prunes_old_ended_runs_only(project, run_id_of, writer_run):
    project.write("waits.py", WAITS)
    waiting = project.cli("up", "waits.py")
    assert waiting.returncode == 3, waiting.stderr
    waiting_id = run_id_of(waiting.stdout)
    repo = find_repo(project.root)

    kept = project.json("gc")
    assert kept["pruned"] == [], "the default keeps 30 days"
    dry = project.json("gc", "--older-than", "0s", "--dry-run")
    assert [r["run_id"] for r in dry["pruned"]] == [writer_run]
    assert git(project.root, "--git-dir", str(repo.git_dir), "for-each-ref", run_ref(repo, writer_run)), "a dry run deletes nothing"

    pruned = project.json("gc", "--older-than", "0s")
    assert [(r["run_id"], r["refs"]) for r in pruned["pruned"]] == [(writer_run, [run_ref(repo, writer_run)])]
    assert git(project.root, "--git-dir", str(repo.git_dir), "for-each-ref", "refs/smithers/").strip().endswith(run_ref(repo, waiting_id))
    gone = project.cli("diff", writer_run, "--node", "b")
    assert gone.returncode == 4 and "pruned" in gone.stderr
    assert project.json("gc", "--older-than", "0s")["pruned"] == [], "pruned once"
    assert project.cli("gc", "--older-than", "soon").returncode == 4


# -- a real agent CLI that breaks a file --------------------------------------------------------------------


@pytest.fixture(scope="module")
def claude_bin() -> str:
    path = AGENTS_BIN / "claude"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the claude CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


@pytest.mark.slow
def test_claude_breaks_a_file_then_diff_and_revert_put_it_back(tmp_path_factory, project, run_id_of, claude_bin):
    root = project.root
    git(root, "init", "-q")
    (root / "app.py").write_text("def add(a, b):\n    return a + b\n")
    git(root, "add", "app.py")
    git(root, "commit", "-qm", "app")
    broken = ToolCall("Write", {"file_path": str(root / "app.py"), "content": "def add(a, b):\n    return a - b\n"})
    final = 'Done.\n\n```json\n{"ok": true}\n```'
    with FakeServer(anthropic_app([Reply(text="Editing app.py.", tool_calls=[broken]), final])) as server:
        project.write("wf.py", f"""
            from pydantic import BaseModel
            from smithers import Task, workflow
            from smithers.agents import ClaudeCode

            class Done(BaseModel):
                ok: bool

            agent = ClaudeCode(binary={claude_bin!r}, env={claude_env(server.url, tmp_path_factory.mktemp("home"))!r})

            @workflow
            def fix(ctx):
                return Task("fix", output=Done, agent=agent, prompt="Fix add() in app.py.", retries=0)
        """)
        done = project.cli("up", "wf.py", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = run_id_of(done.stdout)
    assert "a - b" in (root / "app.py").read_text(), "the agent broke the file"

    diff = project.json("diff", run_id, "--node", "fix")
    assert diff["files"] == [{"path": "app.py", "status": "modified", "additions": 1, "deletions": 1}]
    assert "-    return a + b" in diff["patch"] and "+    return a - b" in diff["patch"]

    reverted = project.cli("revert", run_id, "--node", "fix", "--before")
    assert reverted.returncode == 0, reverted.stderr
    assert "app.py" in reverted.stdout
    assert (root / "app.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert git(root, "status", "--porcelain", "app.py") == "", "the file is back to what git has"
