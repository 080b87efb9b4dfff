"""Snapshots of the working tree (DESIGN §10.3): real git repositories and plain folders in
tmp_path, compute tasks that write files, a worktree task, a kill in the middle of a snapshot.

A snapshot must never touch HEAD, the user's index, the branch, the stash or a file; it holds
tracked and untracked files but not ignored ones; a folder outside git gets a private repository
under .smithers/snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from smithers.snapshots import (
    changed_files,
    find_repo,
    patch,
    prune,
    restore,
    run_ref,
    snapshot,
    snapshot_trees,
    unsaved_changes,
    unsaved_files,
)

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(cwd: Path, *args: str, input: str | None = None) -> str:
    env = {**os.environ, **ENV}
    done = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True, env=env, input=input)
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout


def make_repo(root: Path) -> Path:
    """A repository on branch `work` with a commit, an ignored file, an untracked file, a staged
    change and a stash entry: everything a snapshot must leave alone."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "app.py").write_text("print('v1')\n")
    (root / "lib").mkdir()
    (root / "lib" / "util.py").write_text("X = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    git(root, "checkout", "-q", "-b", "work")
    (root / "app.py").write_text("print('stashed')\n")
    git(root, "stash", "-q")
    (root / "lib" / "util.py").write_text("X = 2\n")
    git(root, "add", "lib/util.py")  # a staged change
    (root / "notes.txt").write_text("untracked\n")
    (root / "debug.log").write_text("ignored\n")
    (root / "build").mkdir()
    (root / "build" / "out.bin").write_text("ignored too\n")
    return root


def repo_state(root: Path) -> dict[str, str]:
    """What the user's git state is, byte for byte where it can be (read with --no-optional-locks:
    a plain `git status` may refresh the index itself)."""
    index = hashlib.sha256((root / ".git" / "index").read_bytes()).hexdigest()
    return {
        "head": git(root, "rev-parse", "HEAD"),
        "branch": git(root, "symbolic-ref", "HEAD"),
        "status": git(root, "status", "--porcelain", "--untracked-files=all"),
        "stash": git(root, "stash", "list"),
        "staged": git(root, "diff", "--cached"),
        "branches": git(root, "for-each-ref", "refs/heads", "refs/stash"),
        "index": index,
    }


def files_of(root: Path, commit: str) -> list[str]:
    repo = find_repo(root)
    out = subprocess.run(["git", "--git-dir", str(repo.git_dir), "ls-tree", "-r", "--name-only", commit], capture_output=True, text=True)
    return out.stdout.split()


# -- the snapshot module, on a real repository -----------------------------------------------------


def test_a_snapshot_holds_tracked_and_untracked_files_and_touches_nothing(tmp_path):
    root = make_repo(tmp_path / "repo")
    (root / "smithers.db").write_text("not a real database")
    before = repo_state(root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if ".git" not in p.parts}

    commit = snapshot(root, "run-1", "start")

    assert repo_state(root) == before
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if ".git" not in p.parts} == mtimes
    assert files_of(root, commit) == [".gitignore", "app.py", "lib/util.py", "notes.txt"]  # no *.log, build/, smithers.db
    assert git(root, "show", f"{commit}:lib/util.py") == "X = 2\n"  # the working tree, not HEAD
    assert git(root, "rev-parse", run_ref(find_repo(root), "run-1")).strip() == commit
    assert snapshot(root, "run-1", "again") == commit, "an unchanged tree reuses the previous snapshot"


def test_snapshots_chain_diff_and_restore(tmp_path):
    root = make_repo(tmp_path / "repo")
    first = snapshot(root, "run-1", "start")
    (root / "app.py").write_text("print('v2')\nprint('more')\n")
    (root / "notes.txt").unlink()
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "deep" / "new.py").write_text("NEW = True\n")
    (root / "debug.log").write_text("changed but ignored\n")
    second = snapshot(root, "run-1", "after edit")
    state = repo_state(root)

    assert git(root, "rev-parse", f"{second}^").strip() == first, "each snapshot's parent is the run's previous one"
    assert [c.to_dict() for c in changed_files(root, first, second)] == [
        {"path": "app.py", "status": "modified", "additions": 2, "deletions": 1},
        {"path": "notes.txt", "status": "deleted", "additions": 0, "deletions": 1},
        {"path": "src/deep/new.py", "status": "added", "additions": 1, "deletions": 0},
    ]
    assert "+print('more')" in patch(root, first, second)
    assert unsaved_changes(root, "run-1") is False

    assert restore(root, first) == ["app.py", "notes.txt", "src/deep/new.py"]
    assert (root / "app.py").read_text() == "print('v1')\n"
    assert (root / "notes.txt").read_text() == "untracked\n"
    assert not (root / "src").exists(), "folders left empty by removing added files go too"
    assert (root / "debug.log").read_text() == "changed but ignored\n", "ignored files are never touched"
    assert repo_state(root)["head"] == state["head"] and repo_state(root)["stash"] == state["stash"]
    assert repo_state(root)["index"] == state["index"]

    assert restore(root, second) == ["app.py", "notes.txt", "src/deep/new.py"]
    assert (root / "src" / "deep" / "new.py").read_text() == "NEW = True\n"
    assert restore(root, second) == []


def test_restore_brings_back_modes_symlinks_and_file_or_folder_swaps(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    (root / "run.sh").write_text("echo hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("run.sh")
    (root / "thing").write_text("a file\n")
    (root / "name with space.txt").write_text("spaced\n")
    first = snapshot(root, "run-1", "start")
    (root / "run.sh").chmod(0o644)
    (root / "link").unlink()
    (root / "link").symlink_to("elsewhere")
    (root / "thing").unlink()
    (root / "thing").mkdir()
    (root / "thing" / "inside.txt").write_text("now a folder\n")
    (root / "name with space.txt").unlink()
    assert restore(root, first) == ["link", "name with space.txt", "run.sh", "thing", "thing/inside.txt"]
    assert os.access(root / "run.sh", os.X_OK)
    assert os.readlink(root / "link") == "run.sh"
    assert (root / "thing").read_text() == "a file\n"
    assert (root / "name with space.txt").read_text() == "spaced\n"
    assert not list(root.glob(".*smithers-*")), "no scratch files are left"


def test_unsaved_changes_are_those_no_snapshot_holds(tmp_path):
    root = make_repo(tmp_path / "repo")
    assert unsaved_changes(root, "run-1") is True, "a run without snapshots holds nothing"
    first = snapshot(root, "run-1", "one")
    (root / "app.py").write_text("edited by hand\n")
    assert unsaved_files(root, "run-1") == ["app.py"]
    snapshot(root, "run-1", "two")
    restore(root, first)
    assert unsaved_changes(root, "run-1") is False, "the tree matches an older snapshot of the run"
    (root / "debug.log").write_text("ignored files do not count\n")
    assert unsaved_changes(root, "run-1") is False
    assert unsaved_changes(root, "other-run") is True


def test_a_plain_folder_gets_a_private_repository(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    (folder / ".smithers" / "runs").mkdir(parents=True)
    (folder / ".smithers" / "runs" / "events.ndjson").write_text("{}\n")
    (folder / "smithers.db").write_text("db")
    (folder / "other.db").write_text("db")

    first = snapshot(folder, "run-1", "start", exclude=[folder / "other.db"])
    repo = find_repo(folder)
    assert repo.private and repo.git_dir == folder / ".smithers" / "snapshots"
    assert not (folder / ".git").exists()
    assert files_of(folder, first) == ["a.txt"]

    (folder / "a.txt").write_text("changed\n")
    (folder / "b.txt").write_text("b\n")
    (folder / "other.db").write_text("db, changed")
    second = snapshot(folder, "run-1", "later")
    assert [c.path for c in changed_files(folder, first, second)] == ["a.txt", "b.txt"]
    assert restore(folder, first) == ["a.txt", "b.txt"]
    assert (folder / "a.txt").read_text() == "a\n" and not (folder / "b.txt").exists()
    assert (folder / "other.db").read_text() == "db, changed", "an excluded database is never restored or removed"
    assert (folder / ".smithers" / "runs" / "events.ndjson").exists()

    assert prune(folder, "run-1") == ["refs/smithers/run-1/tree"]
    assert snapshot_trees(folder, "run-1") == {}


def test_a_workflow_under_dot_smithers_snapshots_its_project(tmp_path):
    project = tmp_path / "proj"
    (project / ".smithers" / "workflows").mkdir(parents=True)
    (project / "README").write_text("r\n")
    commit = snapshot(project / ".smithers" / "workflows", "run-1", "start")
    assert find_repo(project / ".smithers" / "workflows").top == project.resolve()
    assert files_of(project, commit) == ["README"]


def test_a_ten_thousand_file_repository_snapshot_reuses_the_stat_cache(tmp_path):
    """Behaviour, not time: after the first snapshot, a change to one file makes git hash one
    file (the run's index keeps the stat cache) — checked through the run's kept index file."""
    root = tmp_path / "big"
    root.mkdir()
    git(root, "init", "-q")
    for d in range(20):
        (root / f"d{d}").mkdir()
        for f in range(50):
            (root / f"d{d}" / f"f{f}.txt").write_text(f"{d} {f}\n")
    first = snapshot(root, "run-1", "start")
    index = find_repo(root).state / "indexes" / "run-1"
    assert index.is_file() and not list(index.parent.glob("*.lock"))
    (root / "d3" / "f7.txt").write_text("changed\n")
    second = snapshot(root, "run-1", "one change")
    assert [c.path for c in changed_files(root, first, second)] == ["d3/f7.txt"]
    assert sorted(p.name for p in index.parent.iterdir()) == ["run-1"], "no work files or locks are left behind"


# -- the engine: a snapshot at run start and after every attempt -------------------------------------

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
    Path("a.txt").write_text("two\\n")
    Path("b.txt").write_text("bee\\n")
    return {"ok": True}

@workflow
def wf(ctx):
    return Sequence(
        Task("hello", output=Done, value={"ok": True}),
        Task("a", output=Done, run=write_a),
        Task("b", output=Done, run=write_b),
    )
"""


def node_attempts(project, run_id: str, node: str) -> list[dict]:
    detail = project.json("node", run_id, node)
    return detail["iterations"][-1]["attempts"]


def test_a_run_snapshots_at_start_and_after_each_attempt_without_touching_git_state(tmp_path, project, run_id_of):
    root = make_repo(project.root)
    project.write("wf.py", WRITER)
    git(root, "add", "wf.py")
    state = repo_state(root)

    done = project.cli("up", "wf.py")
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)

    after_run = repo_state(root)
    for key in ("head", "branch", "stash", "staged", "branches", "index"):
        assert after_run[key] == state[key], key
    start = project.query("select snapshot_start, snapshot_dir from _smithers_runs where run_id = ?", (run_id,))[0]
    assert start[1] == str(root.resolve())
    [a] = node_attempts(project, run_id, "a")
    [b] = node_attempts(project, run_id, "b")
    assert a["snapshot_before"] == start[0], "the first file-writing attempt starts from the run's start snapshot"
    assert b["snapshot_before"] == a["snapshot_after"]
    assert git(root, "show", f"{a['snapshot_after']}:a.txt") == "one\n"
    assert git(root, "show", f"{b['snapshot_after']}:a.txt") == "two\n"
    assert "a.txt" not in files_of(root, a["snapshot_before"])
    [static] = node_attempts(project, run_id, "hello")
    assert static["snapshot_before"] is None and static["snapshot_after"] is None, "a static task writes no files"
    assert "debug.log" not in files_of(root, b["snapshot_after"])


def test_a_repository_that_ignores_the_run_data_still_gets_snapshots(project, run_id_of):
    """The common set-up (and what `smithers init` writes): .gitignore lists smithers.db* and
    .smithers/. git refuses a literal pathspec naming an ignored path, which once failed every
    snapshot of such a repository."""
    root = make_repo(project.root)
    (root / ".gitignore").write_text("*.log\nbuild/\nsmithers.db*\n.smithers/\n")
    project.write("wf.py", WRITER)

    done = project.cli("up", "wf.py")
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)

    failed = project.cli("events", run_id, "--type", "SnapshotFailed", "--json")
    assert failed.returncode == 0 and failed.stdout.strip() == "", failed.stdout
    [b] = node_attempts(project, run_id, "b")
    assert b["snapshot_after"] is not None
    assert git(root, "show", f"{b['snapshot_after']}:b.txt") == "bee\n"
    assert not any(name.startswith("smithers.db") for name in files_of(root, b["snapshot_after"]))


def test_no_snapshots_flag_is_kept_on_the_run(project, run_id_of):
    project.write("wf.py", WRITER)
    done = project.cli("up", "wf.py", "--no-snapshots")
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)
    assert project.query("select snapshots_off, snapshot_start from _smithers_runs")[0] == (1, None)
    assert node_attempts(project, run_id, "b")[0]["snapshot_after"] is None
    assert not (project.root / ".smithers" / "snapshots").exists()
    refused = project.cli("diff", run_id, "--node", "b")
    assert refused.returncode == 4 and "--no-snapshots" in refused.stderr


WORKTREE = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Task, Worktree, workflow

class Out(BaseModel):
    folder: str

def edit(tc):
    Path(tc.cwd, "edited.txt").write_text("in the worktree\\n")
    return {"folder": tc.cwd}

@workflow
def wf(ctx):
    return Worktree(".worktrees/fix", Task("edit", output=Out, run=edit))
"""


def test_a_worktree_task_snapshots_its_worktree(project, run_id_of):
    root = make_repo(project.root)
    git(root, "checkout", "-q", "main")
    project.write("wf.py", WORKTREE)
    done = project.cli("up", "wf.py")
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)
    [edit] = node_attempts(project, run_id, "edit")
    worktree = (root / ".worktrees" / "fix").resolve()
    assert project.query("select snapshot_dir from _smithers_attempts where node_id = 'edit'") == [(str(worktree),)]
    assert edit["snapshot_before"] and edit["snapshot_after"]
    assert "edited.txt" not in files_of(worktree, edit["snapshot_before"])
    assert git(worktree, "show", f"{edit['snapshot_after']}:edited.txt") == "in the worktree\n"
    diff = project.json("diff", run_id, "--node", "edit")
    assert [f["path"] for f in diff["files"]] == ["edited.txt"]
    assert not (root / "edited.txt").exists()


# -- a kill in the middle of a snapshot ------------------------------------------------------------------


def test_sigkill_inside_a_snapshot_leaves_no_lock_and_no_partial_ref(project, run_id_of):
    """SMITHERS_FAULT_IN_SNAPSHOT=2 SIGKILLs the process group while `git add` of the second
    snapshot (after task a) holds its lock; then resume finishes the run and snapshots work."""
    project.write("wf.py", WRITER)
    proc = project.popen("up", "wf.py", "--run-id", "killed", env=project.env(SMITHERS_FAULT_IN_SNAPSHOT="2"))
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    repo = find_repo(project.root)
    indexes = repo.state / "indexes"
    leftovers = sorted(p.name for p in indexes.iterdir())
    assert any(name.endswith(".lock") for name in leftovers), f"the kill hit git while it held its lock: {leftovers}"
    assert "killed.lock" not in leftovers, "the kept index itself is never locked"
    ref = run_ref(repo, "killed")
    tip = git(project.root, "--git-dir", str(repo.git_dir), "rev-parse", ref).strip()
    assert git(project.root, "--git-dir", str(repo.git_dir), "cat-file", "-t", tip).strip() == "commit"
    assert project.query("select snapshot_start from _smithers_runs")[0][0] == tip, "the ref still names the last whole snapshot"

    resumed = project.cli("resume", "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in indexes.iterdir()) == ["killed"], "stale work files and locks are cleaned up"
    [b] = node_attempts(project, "killed", "b")
    assert git(project.root, "--git-dir", str(repo.git_dir), "show", f"{b['snapshot_after']}:b.txt") == "bee\n"
    fsck = subprocess.run(["git", "--git-dir", str(repo.git_dir), "fsck", "--no-dangling"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # task a's first attempt died with the process before its snapshot after: diff picks the newest one that has it
    attempts_a = node_attempts(project, "killed", "a")
    assert [(x["status"], x["snapshot_after"] is not None) for x in attempts_a] == [("abandoned", False), ("finished", True)]
    assert project.json("diff", "killed", "--node", "a")["attempt"] == 2
    no_after = project.cli("diff", "killed", "--node", "a", "--attempt", "1")
    assert no_after.returncode == 4 and "has no snapshot after it" in no_after.stderr


def test_snapshot_failures_are_events_not_run_failures(project, run_id_of):
    project.write("wf.py", WRITER)
    env = project.env(PATH=str(project.root / "no-git-here"))
    done = subprocess.run(
        [sys.executable, "-m", "smithers", "up", "wf.py"], cwd=project.root, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    run_id = run_id_of(done.stdout)
    events = [json.loads(line) for line in project.cli("events", run_id, "--json", "--type", "SnapshotFailed").stdout.splitlines()]
    assert len(events) == 1 and "git is not installed" in events[0]["payload"]["error"]
    assert events[0]["payload"]["snapshots_stopped"] is True
    assert node_attempts(project, run_id, "b")[0]["snapshot_after"] is None


@pytest.mark.parametrize("run_id", ["plain-id", "with space/and:colon"])
def test_any_run_id_makes_a_valid_ref(tmp_path, run_id):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x").write_text("x")
    commit = snapshot(folder, run_id, "start")
    assert snapshot_trees(folder, run_id) and next(iter(snapshot_trees(folder, run_id))) == commit
