"""Snapshots of a working tree as git commits, and putting a tree back.

How a snapshot is taken (``snapshot``), in four git commands, none of which touches HEAD, the
user's index, a branch, the stash or a file:

1. ``git add -A`` into the run's **own index file** (``GIT_INDEX_FILE``), kept between snapshots so
   that git's stat cache re-hashes only files that changed. The command works on a hard link of
   that file; only when it succeeds does the result replace the kept file (``os.replace``), so a
   process killed mid-snapshot leaves at most a stray ``.tmp-<pid>`` file (removed by the next
   snapshot) and never a lock on the kept index. The first snapshot in a git repository starts
   from a copy of the user's index, so tracked files are not hashed again.
2. ``git write-tree`` — skipped when ``git add`` wrote nothing (the index file is the same file),
   since the tree is then the one recorded last time.
3. ``git commit-tree`` with the previous snapshot as parent — skipped when the tree equals the
   previous snapshot's: that commit is returned again.
4. ``git update-ref REF NEW OLD``: atomic compare-and-swap of the run's ref, so a reader sees the
   old or the new commit, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from ._git import Repo, SnapshotError, find_repo, run_index, run_ref

FAULT_ENV = "SMITHERS_FAULT_IN_SNAPSHOT"  # tests only: SIGKILL the process group inside its N-th snapshot
ALWAYS_EXCLUDED = (":(exclude,top,glob)**/.smithers/**", ":(exclude,top,glob)**/smithers.db", ":(exclude,top,glob)**/smithers.db-*")
DB_SUFFIXES = ("", "-wal", "-shm", "-journal")

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()
_trees: dict[Path, tuple[tuple[int, int, int], str]] = {}  # kept index -> (its stat key, the tree it holds)
_tips: dict[tuple[Path, str], tuple[str, str]] = {}  # (git dir, ref) -> (commit, tree) as this process last wrote it
_names = count()
_snapshots_taken = 0


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file that differs between two snapshots."""

    path: str
    status: str  # added | modified | deleted
    additions: int | None  # None for binary files
    deletions: int | None

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "status": self.status, "additions": self.additions, "deletions": self.deletions}


def _lock(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(index: Path) -> None:
    """Drop work files (and their git locks) left by a process that died mid-snapshot."""
    for leftover in index.parent.glob(f"{index.name}.tmp-*"):
        pid_text = leftover.name[len(index.name) + 5:].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _stat_key(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# -- exclusions ----------------------------------------------------------------------------------


def _excludes_file(repo: Repo) -> Path:
    return repo.state / "exclude"


def record_exclusions(repo: Repo, paths: list[str | Path]) -> None:
    """Remember files that snapshots of ``repo`` must never hold (a database kept inside the
    working tree), for every later snapshot and restore, by any process."""
    wanted: list[str] = []
    for raw in paths:
        path = Path(raw).resolve()
        try:
            relative = path.relative_to(repo.top).as_posix()
        except ValueError:
            continue  # outside the working tree: nothing to exclude
        wanted.extend(relative + suffix for suffix in DB_SUFFIXES)
    if not wanted:
        return
    known = set(_recorded_exclusions(repo))
    new = [w for w in wanted if w not in known]
    if new:
        repo.state.mkdir(parents=True, exist_ok=True)
        with _excludes_file(repo).open("a", encoding="utf-8") as out:
            out.writelines(w + "\n" for w in new)


def _recorded_exclusions(repo: Repo) -> list[str]:
    try:
        text = _excludes_file(repo).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line]


def _pathspec(repo: Repo) -> list[str]:
    return [":(top)", *ALWAYS_EXCLUDED, *(f":(exclude,top,glob){_as_pattern(p)}" for p in _recorded_exclusions(repo))]


def _as_pattern(path: str) -> str:
    """``path`` as a glob matching only itself that git still counts as a pattern: git refuses a
    pathspec without wildcards that names a path its .gitignore ignores ("The following paths
    are ignored"), and most repositories ignore ``smithers.db``. So the last character becomes a
    one-character class: ``smithers.db`` → ``smithers.d[b]``."""
    escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in path)
    if path and path[-1] not in "*?[]\\":
        escaped = f"{escaped[:-1]}[{escaped[-1]}]"
    return escaped


# -- the tree of the working directory now -----------------------------------------------------------


def _fault_due() -> bool:
    global _snapshots_taken
    raw = os.environ.get(FAULT_ENV, "")
    _snapshots_taken += 1
    return raw.isdigit() and int(raw) == _snapshots_taken


def _die_inside_git_add(repo: Repo, work: Path) -> None:
    """Fault injection: start ``git add`` and SIGKILL this process group while git holds its lock."""
    import subprocess

    from ._git import CONFIG, _clean_env

    env = dict(_clean_env(), GIT_DIR=str(repo.git_dir), GIT_WORK_TREE=str(repo.top), GIT_INDEX_FILE=str(work))
    # git holds the index lock while it hashes the files; a clean filter that sleeps keeps it
    # there, so the kill always lands inside the lock (a plain `git add` of a few files holds it
    # for a millisecond, which a poll can miss on a busy machine)
    attributes = work.with_name(work.name + ".fault-attributes")
    attributes.write_text("* filter=smithers-fault\n")
    stall = ["-c", f"core.attributesFile={attributes}", "-c", "filter.smithers-fault.clean=sleep 60; cat"]
    subprocess.Popen(["git", *CONFIG, *stall, "add", "-A", "--", *_pathspec(repo)], cwd=repo.top, env=env)
    lock = work.with_name(work.name + ".lock")
    deadline = time.monotonic() + 10
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.0005)
    if os.getpgid(0) == os.getpid():
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def current_tree(repo: Repo, index: Path, *, fault: bool = False) -> str:
    """The tree id of ``repo.top`` as it is now (tracked and untracked files, not ignored ones, not
    smithers' own), computed with the kept ``index`` (which this updates)."""
    index.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(index)
    work = index.with_name(f"{index.name}.tmp-{os.getpid()}-{next(_names)}")
    try:
        if index.exists():
            try:
                os.link(index, work)
            except OSError:
                shutil.copyfile(index, work)
        elif not repo.private and repo.user_index.exists():
            shutil.copyfile(repo.user_index, work)  # read only: git replaces its index by rename, never in place
        linked = _stat_key(work) if work.exists() else None
        if fault:
            _die_inside_git_add(repo, work)
        repo.run(["add", "--all", "--", *_pathspec(repo)], index=work)
        cached = _trees.get(index)
        if linked is not None and cached is not None and _stat_key(work) == linked == cached[0]:
            tree = cached[1]  # git add wrote nothing: the tree is the one recorded for this index
        else:
            tree = repo.out(["write-tree"], index=work)
        if work.exists() and index.exists() and os.path.samefile(work, index):
            work.unlink()
        else:
            os.replace(work, index)
        _trees[index] = (_stat_key(index), tree)
        return tree
    finally:
        for leftover in (work, work.with_name(work.name + ".lock")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


# -- public operations -----------------------------------------------------------------------------


def _tip(repo: Repo, ref: str) -> tuple[str, str] | None:
    """(commit, tree) the ref points at, or None when the run has no snapshot here yet."""
    line = repo.out(["for-each-ref", "--format=%(objectname) %(tree)", ref])
    if not line:
        return None
    commit, tree = line.split()[:2]
    return commit, tree


def snapshot(workdir: str | Path, run_id: str, label: str, *, exclude: list[str | Path] | None = None) -> str:
    """Record the working tree of ``workdir`` as a commit on the run's snapshot ref; returns its id.
    Blocking (runs git): from async code use ``asyncio.to_thread``. ``exclude``: files (a database)
    that no snapshot of this folder may ever hold; remembered for later calls.

    >>> commit = snapshot("/path/to/project", "20261203-101500-ab12cd", "after build#1")  # doctest: +SKIP
    """
    repo = find_repo(workdir)
    if exclude:
        record_exclusions(repo, exclude)
    index, ref = run_index(repo, run_id), run_ref(repo, run_id)
    with _lock(index):
        tree = current_tree(repo, index, fault=_fault_due())
        for _ in range(5):
            tip = _tips.get((repo.git_dir, ref)) or _tip(repo, ref)
            if tip is not None and tip[1] == tree:
                return tip[0]
            message = f"smithers snapshot: {label}\n\nRun: {run_id}\nFolder: {repo.top}\n"
            parents = ["-p", tip[0]] if tip is not None else []
            commit = repo.out(["commit-tree", tree, *parents, "-F", "-"], input=message.encode())
            moved = repo.run(["update-ref", "-m", f"smithers snapshot: {label}", ref, commit, tip[0] if tip else ""], check=False)
            if moved.returncode == 0:
                _tips[(repo.git_dir, ref)] = (commit, tree)
                return commit
            _tips.pop((repo.git_dir, ref), None)  # another process moved the ref: read it again
        raise SnapshotError(f"could not move {ref} in {repo.git_dir}: {moved.stderr.decode(errors='replace').strip()}")


def tree_of(repo: Repo, commit: str) -> str:
    """The tree of a snapshot commit; :class:`SnapshotError` naming it when the repository lacks it."""
    done = repo.run(["rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}"], check=False)
    if done.returncode != 0:
        raise SnapshotError(
            f"snapshot {commit} is not in {repo.git_dir}",
            hint="its run's snapshots may have been pruned (smithers gc) and collected by git gc",
        )
    return done.stdout.decode().strip()


def _empty_tree(repo: Repo) -> str:
    return repo.out(["hash-object", "-t", "tree", "--stdin"], input=b"")


def _side(repo: Repo, commit: str | None) -> str:
    return _empty_tree(repo) if commit is None else tree_of(repo, commit)


def _raw_changes(repo: Repo, a: str, b: str) -> list[tuple[str, str, str, str]]:
    """(status letter, new mode, new blob id, path) for every file that differs between trees ``a`` and ``b``."""
    out = repo.run(["diff-tree", "-r", "-z", "--no-renames", "--raw", a, b]).stdout.decode("utf-8", "surrogateescape")
    parts = out.split("\0")
    changes = []
    for i in range(0, len(parts) - 1, 2):
        meta, path = parts[i], parts[i + 1]
        if not meta.startswith(":"):
            continue
        fields = meta[1:].split()
        changes.append((fields[4][0], fields[1], fields[3], path))
    return changes


def restore(workdir: str | Path, commit: str, *, run_id: str = "restore") -> list[str]:
    """Put the working tree of ``workdir`` back to snapshot ``commit``: files modified or deleted
    since are written back, files added since are removed (and folders left empty by that).
    Ignored files and smithers' own files are never touched. Returns the changed paths (relative
    to the working tree's top), sorted. Blocking. ``run_id``: whose kept index to use as the stat
    cache (any run's will do; the run's own is the cheapest).

    >>> restore("/path/to/project", "3f2a…")  # doctest: +SKIP
    ['src/app.py', 'notes.txt']
    """
    repo = find_repo(workdir)
    target = tree_of(repo, commit)
    index = run_index(repo, run_id)
    with _lock(index):
        now = current_tree(repo, index)
        changes = _raw_changes(repo, now, target)
        for status, _mode, _blob, path in changes:
            if status == "D":
                _remove_file(repo.top, path)
        _write_files(repo, [(mode, blob, path) for status, mode, blob, path in changes if status != "D" and mode != "160000"])
    return sorted(path for _status, _mode, _blob, path in changes)


def _write_files(repo: Repo, files: list[tuple[str, str, str]]) -> None:
    """Write blobs to their paths (git's filters applied, as a checkout would), each file
    replaced atomically (written beside it, then renamed over it)."""
    if not files:
        return
    if any("\n" in path for _mode, _blob, path in files):  # cat-file's batch input is line based
        raise SnapshotError(f"cannot restore a file whose name has a newline: {next(p for _m, _b, p in files if chr(10) in p)!r}")
    request = "".join(f"{blob} {path}\n" for _mode, blob, path in files).encode("utf-8", "surrogateescape")
    out = repo.run(["cat-file", "--batch", "--filters"], input=request).stdout
    umask = _umask()
    offset = 0
    for mode, _blob, path in files:
        header_end = out.index(b"\n", offset)
        size = int(out[offset:header_end].split()[2])
        content = out[header_end + 1: header_end + 1 + size]
        offset = header_end + 1 + size + 1
        target = repo.top / path
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.smithers-{os.getpid()}")
        if mode == "120000":
            os.symlink(os.fsdecode(content), scratch)
        else:
            scratch.write_bytes(content)
            scratch.chmod((0o777 if mode == "100755" else 0o666) & ~umask)
        if target.is_dir() and not target.is_symlink():
            target.rmdir()  # an emptied folder where a file must go (its files were removed above)
        os.replace(scratch, target)


def _umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _remove_file(top: Path, relative: str) -> None:
    path = top / relative
    if path.is_symlink() or path.is_file():
        path.unlink()
    parent = path.parent
    while parent != top and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def changed_files(workdir: str | Path, a: str | None, b: str | None) -> list[FileChange]:
    """What differs from snapshot ``a`` to snapshot ``b`` (``None``: the empty tree), path order.

    >>> [c.to_dict() for c in changed_files("/path/to/project", before, after)]  # doctest: +SKIP
    [{'path': 'app.py', 'status': 'modified', 'additions': 3, 'deletions': 1}]
    """
    repo = find_repo(workdir)
    left, right = _side(repo, a), _side(repo, b)
    statuses = {path: status for status, _mode, _blob, path in _raw_changes(repo, left, right)}
    counts: dict[str, tuple[int | None, int | None]] = {}
    numstat = repo.run(["diff-tree", "-r", "-z", "--no-renames", "--numstat", left, right]).stdout.decode("utf-8", "surrogateescape")
    for entry in numstat.split("\0"):
        if entry.count("\t") >= 2:
            plus, minus, path = entry.split("\t", 2)
            counts[path] = (int(plus) if plus.isdigit() else None, int(minus) if minus.isdigit() else None)
    names = {"A": "added", "D": "deleted"}
    return [
        FileChange(path=path, status=names.get(status, "modified"), additions=counts.get(path, (None, None))[0],
                   deletions=counts.get(path, (None, None))[1])
        for path, status in sorted(statuses.items())
    ]


def patch(workdir: str | Path, a: str | None, b: str | None) -> str:
    """The unified diff from snapshot ``a`` to snapshot ``b`` (``None``: the empty tree)."""
    repo = find_repo(workdir)
    left, right = _side(repo, a), _side(repo, b)
    done = repo.run(["diff-tree", "-r", "-p", "--no-renames", "--no-color", "--no-ext-diff", "--no-textconv", left, right])
    return done.stdout.decode("utf-8", "replace")


def snapshot_trees(workdir: str | Path, run_id: str) -> dict[str, str]:
    """Every snapshot of the run for ``workdir``'s tree: {commit: tree}, newest first."""
    repo = find_repo(workdir)
    ref = run_ref(repo, run_id)
    if _tip(repo, ref) is None:
        return {}
    out = repo.out(["log", "--format=%H %T", ref])
    pairs = (line.split() for line in out.splitlines() if line)
    return {commit: tree for commit, tree, *_rest in pairs}


def unsaved_changes(workdir: str | Path, run_id: str) -> bool:
    """Whether the working tree of ``workdir`` holds changes that no snapshot of the run holds
    (restoring any snapshot would then lose them). Blocking.

    >>> unsaved_changes("/path/to/project", "20261203-101500-ab12cd")  # doctest: +SKIP
    False
    """
    return bool(unsaved_files(workdir, run_id))


def unsaved_files(workdir: str | Path, run_id: str) -> list[str]:
    """The files that differ from the run's newest snapshot when the working tree matches none of
    the run's snapshots; ``[]`` when some snapshot holds exactly the tree as it is now."""
    repo = find_repo(workdir)
    index = run_index(repo, run_id)
    with _lock(index):
        now = current_tree(repo, index)
    trees = snapshot_trees(workdir, run_id)
    if now in trees.values():
        return []
    newest = next(iter(trees.values()), None) or _empty_tree(repo)
    return sorted(path for _status, _mode, _blob, path in _raw_changes(repo, newest, now)) or ["(the tree differs)"]


def prune(workdir: str | Path, run_id: str) -> list[str]:
    """Delete the run's snapshot refs and index files in ``workdir``'s repository (the commits
    become garbage for ``git gc``). Returns the refs deleted."""
    try:
        repo = find_repo(workdir, create=False)
    except SnapshotError:
        return []  # the folder is gone, or never had snapshots
    prefix = run_ref(repo, run_id).rsplit("/", 1)[0] + "/"
    refs = repo.out(["for-each-ref", "--format=%(refname)", prefix]).splitlines()
    if refs:
        repo.run(["update-ref", "--stdin"], input="".join(f"delete {r}\n" for r in refs).encode())
    index = run_index(repo, run_id)
    for leftover in [index, *index.parent.glob(index.name + ".tmp-*")]:
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    with contextlib.suppress(KeyError):
        del _trees[index]
    for key in [k for k in _tips if k[0] == repo.git_dir and k[1].startswith(prefix)]:
        del _tips[key]
    return refs


__all__ = [
    "FileChange", "changed_files", "current_tree", "patch", "prune", "record_exclusions", "restore", "snapshot", "snapshot_trees",
    "tree_of", "unsaved_changes", "unsaved_files",
]
