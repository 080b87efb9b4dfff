"""Running git for snapshots: a clean environment, timeouts, and where a folder's snapshots live.

Every command runs ``git`` as a subprocess with ``GIT_DIR``/``GIT_WORK_TREE`` set explicitly and
the variables that would redirect it (``GIT_INDEX_FILE``, ``GIT_OBJECT_DIRECTORY``, ...) removed
from the inherited environment, so a snapshot never reads or writes the user's index and never
follows a stray variable into another repository. Hooks are off (``core.hooksPath``) and so are
the index features that write files beside the index (split index, fsmonitor).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import ErrorCode, SmithersError

GIT_TIMEOUT = 300.0  # seconds per git command (a first snapshot of a large folder hashes every file)
PRIVATE_DIR = Path(".smithers") / "snapshots"
IDENTITY = {
    "GIT_AUTHOR_NAME": "smithers", "GIT_AUTHOR_EMAIL": "smithers@localhost",
    "GIT_COMMITTER_NAME": "smithers", "GIT_COMMITTER_EMAIL": "smithers@localhost",
}
_REDIRECTS = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_QUARANTINE_PATH", "GIT_CEILING_DIRECTORIES",
)
CONFIG = (
    "-c", "core.splitIndex=false", "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=true",
    "-c", f"core.hooksPath={os.devnull}", "-c", "commit.gpgSign=false", "-c", "gc.auto=0", "-c", "maintenance.auto=false",
)


class SnapshotError(SmithersError):
    """git failed while taking, reading or restoring a snapshot (the message has git's own words)."""

    code = ErrorCode.SNAPSHOT


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTS}
    env.update(IDENTITY)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    return env


def git(
    args: list[str], *, cwd: Path, git_dir: Path | None = None, work_tree: Path | None = None, index: Path | None = None,
    input: bytes | None = None, check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` (bytes in, bytes out). ``check``: a non-zero exit raises :class:`SnapshotError`."""
    env = _clean_env()
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
    if work_tree is not None:
        env["GIT_WORK_TREE"] = str(work_tree)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    try:
        done = subprocess.run(
            ["git", *CONFIG, *args], cwd=cwd, env=env, input=input, capture_output=True, timeout=GIT_TIMEOUT,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise SnapshotError("git is not installed (snapshots need it)", hint="install git, or run with --no-snapshots") from None
    except subprocess.TimeoutExpired:
        raise SnapshotError(
            f"git {args[0]} took over {GIT_TIMEOUT:g}s in {cwd}", hint="is the folder very large? see docs/time-travel.md"
        ) from None
    if check and done.returncode != 0:
        words = done.stderr.decode(errors="replace").strip() or done.stdout.decode(errors="replace").strip()
        raise SnapshotError(f"git {' '.join(args[:2])} failed in {cwd}: {words}", hint="see docs/time-travel.md (snapshots)")
    return done


@dataclass(frozen=True)
class Repo:
    """Where the snapshots of a folder live.

    ``top`` is the working tree a snapshot records (a git repository's top level, or the folder
    itself); ``git_dir`` the repository that holds the commits (the user's, or the private one
    under ``.smithers/snapshots``); ``state`` smithers' own files inside it (the per-run index
    files that make repeated snapshots cheap, the recorded exclusions)."""

    top: Path
    git_dir: Path
    state: Path
    private: bool

    def run(
        self, args: list[str], *, index: Path | None = None, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        return git(args, cwd=self.top, git_dir=self.git_dir, work_tree=self.top, index=index, input=input, check=check)

    def out(self, args: list[str], *, index: Path | None = None, input: bytes | None = None) -> str:
        return self.run(args, index=index, input=input).stdout.decode().strip()

    @property
    def user_index(self) -> Path:
        return self.git_dir / "index"


_repos: dict[Path, Repo] = {}
_repos_guard = threading.Lock()


def snapshot_folder(workdir: str | Path) -> Path:
    """The folder whose tree a run's snapshots record, for tasks running in ``workdir``: the folder
    itself, or — for a workflow kept under ``.smithers/`` (``.smithers/workflows/x.py``) — the
    project folder that holds that ``.smithers``. (Inside a git repository the whole working tree
    is recorded either way.)"""
    path = Path(workdir).resolve()
    for folder in (path, *path.parents):
        if folder.name == ".smithers":
            return folder.parent
    return path


def find_repo(workdir: str | Path, *, create: bool = True) -> Repo:
    """The :class:`Repo` for ``workdir``: the git repository it is in, else its private one
    (created on first use with ``git init --bare``; with ``create=False`` a missing private
    repository is a :class:`SnapshotError`)."""
    folder = snapshot_folder(workdir)
    with _repos_guard:
        known = _repos.get(folder)
    if known is not None:
        return known
    if not folder.is_dir():
        raise SnapshotError(f"cannot snapshot {folder}: no such folder")
    probe = git(["rev-parse", "--path-format=absolute", "--show-toplevel", "--git-dir"], cwd=folder, check=False)
    lines = probe.stdout.decode().splitlines()
    if probe.returncode == 0 and len(lines) == 2:
        top, git_dir = Path(lines[0]), Path(lines[1])
        repo = Repo(top=top, git_dir=git_dir, state=git_dir / "smithers", private=False)
    else:
        git_dir = folder / PRIVATE_DIR
        if not (git_dir / "HEAD").is_file():
            if not create:
                raise SnapshotError(f"{folder} has no snapshots: it is not in a git repository and has no {PRIVATE_DIR}")
            git(["init", "--quiet", "--bare", str(git_dir)], cwd=folder)
        exclude = git_dir / "info" / "exclude"
        if "/.smithers/" not in (exclude.read_text() if exclude.exists() else ""):
            # ignored, not just left out by pathspec: git then never walks into the repository's own objects
            exclude.parent.mkdir(exist_ok=True)
            with exclude.open("a", encoding="utf-8") as out:
                out.write("\n/.smithers/\n")
        repo = Repo(top=folder, git_dir=git_dir, state=git_dir / "smithers", private=True)
    with _repos_guard:
        _repos[folder] = repo
    return repo


_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


def ref_component(name: str) -> str:
    """``name`` as one ref path component: itself when plainly safe, else a readable, hashed form.

    >>> ref_component("20261203-101500-ab12cd"), ref_component("my run/1")
    ('20261203-101500-ab12cd', 'my_run_1-ddf41765')
    """
    if _SAFE.fullmatch(name):
        return name
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:60] or "x"
    return f"{readable}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def run_ref(repo: Repo, run_id: str) -> str:
    """The ref whose history is the run's snapshots of ``repo.top``: ``refs/smithers/<run_id>/<tree>``
    (git worktrees of one repository share its refs, so the last part names the working tree)."""
    tree = "tree" if repo.private else ref_component(f"{repo.top.name}-{hashlib.sha1(str(repo.top).encode()).hexdigest()[:8]}")
    return f"refs/smithers/{ref_component(run_id)}/{tree}"


def run_index(repo: Repo, run_id: str) -> Path:
    """The run's own index file for ``repo`` (git's stat cache between the run's snapshots)."""
    return repo.state / "indexes" / ref_component(run_id)


__all__ = ["Repo", "SnapshotError", "find_repo", "git", "ref_component", "run_index", "run_ref", "snapshot_folder"]
