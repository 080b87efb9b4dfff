"""Snapshot cost (DESIGN §10.3, issue 10): a snapshot of a 10,000-file repository where one file
changed must take ≤ 150 ms.

Run:  python bench/snapshot.py [--files 10000] [--repeats 15] [--json out.json]

Scenarios, each in a fresh temporary folder:

- ``git_one_change``: a git repository of N committed files; after the first snapshot, change one
  file and snapshot again, ``repeats`` times (median, min, max).
- ``git_no_change``: snapshot again with nothing changed (the tree is the previous snapshot's).
- ``plain_one_change``: the same in a folder that is not a git repository (the private repository
  under ``.smithers/snapshots``).
- ``restore_one_file``: put one changed file back (what ``smithers revert`` does after its check).
- ``engine_*``: the real ``smithers up`` of 200 parallel 50 ms compute tasks (concurrency 16) and
  of 100 sequential compute tasks that each write a file, with snapshots on and off
  (``SMITHERS_SNAPSHOTS=off``): what snapshots add to a run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from smithers.snapshots import restore, snapshot

PARALLEL = """
import asyncio
from pydantic import BaseModel
from smithers import Parallel, Task, workflow

class Slept(BaseModel):
    ms: int

async def nap():
    await asyncio.sleep(0.05)
    return {"ms": 50}

@workflow(max_concurrency=16)
def parallel(ctx):
    return Parallel(*[Task(f"nap-{i}", output=Slept, run=nap) for i in range(200)])
"""

SEQUENTIAL_WRITES = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Wrote(BaseModel):
    path: str

def writer(i):
    def write():
        Path(f"out-{i}.txt").write_text(f"{i}\\n")
        return {"path": f"out-{i}.txt"}
    return write

@workflow
def writes(ctx):
    return Sequence(*[Task(f"write-{i}", output=Wrote, run=writer(i)) for i in range(100)])
"""


def make_tree(root: Path, files: int) -> None:
    per_dir = 100
    for i in range(files):
        folder = root / f"pkg{i // per_dir:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{i % per_dir:03d}.py").write_text(f"VALUE = {i}\n" + "# padding\n" * 20)


def git(root: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env=env)


CPU: list[float] = []  # the CPU time (this process + its git children) of each timed call, in order


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], object]) -> float:
    """Wall milliseconds of ``fn()``; its CPU milliseconds (load-independent) go to :data:`CPU`."""
    cpu, start = _cpu(), time.perf_counter()
    fn()
    wall = (time.perf_counter() - start) * 1000
    CPU.append((_cpu() - cpu) * 1000)
    return wall


def summary(samples: list[float], cpu: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(samples), "min_ms": min(samples), "max_ms": max(samples), "n": len(samples),
        "median_cpu_ms": statistics.median(cpu),
    }


def one_change_series(root: Path, run_id: str, repeats: int) -> tuple[float, dict[str, float], dict[str, float]]:
    first = timed(lambda: snapshot(root, run_id, "first"))
    changed, unchanged, changed_cpu, unchanged_cpu = [], [], [], []
    for i in range(repeats):
        (root / "pkg007" / "mod042.py").write_text(f"VALUE = {i}  # changed\n")
        changed.append(timed(lambda: snapshot(root, run_id, f"change {i}")))
        changed_cpu.append(CPU[-1])
        unchanged.append(timed(lambda: snapshot(root, run_id, f"same {i}")))
        unchanged_cpu.append(CPU[-1])
    return first, summary(changed, changed_cpu), summary(unchanged, unchanged_cpu)


def engine(work: Path, source: str, snapshots: bool) -> dict[str, float]:
    work.mkdir()
    (work / "wf.py").write_text(textwrap.dedent(source))
    env = dict(os.environ, SMITHERS_DB=str(work / "smithers.db"), SMITHERS_SNAPSHOTS="on" if snapshots else "off")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "smithers", "up", "wf.py", "--quiet"], cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    import sqlite3

    conn = sqlite3.connect(work / "smithers.db")
    first, last = conn.execute("SELECT MIN(ts_ms), MAX(ts_ms) FROM _smithers_events WHERE type IN ('RunStarted', 'RunFinished')").fetchone()
    conn.close()
    return {"wall_s": wall, "run_s": (last - first) / 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, object] = {"files": args.files, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="smithers-snap-bench-") as tmp:
        base = Path(tmp)
        repo = base / "repo"
        repo.mkdir()
        make_tree(repo, args.files)
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "tree")
        first, changed, unchanged = one_change_series(repo, "bench", args.repeats)
        results["git_first_ms"] = first
        results["git_one_change"] = changed
        results["git_no_change"] = unchanged

        plain = base / "plain"
        plain.mkdir()
        make_tree(plain, args.files)
        first, changed, _unchanged = one_change_series(plain, "bench", args.repeats)
        results["plain_first_ms"] = first
        results["plain_one_change"] = changed

        target = snapshot(repo, "bench", "target")
        restores, restores_cpu = [], []
        for i in range(args.repeats):
            (repo / "pkg001" / "mod001.py").write_text(f"broken {i}\n")
            restores.append(timed(lambda: restore(repo, target, run_id="bench")))
            restores_cpu.append(CPU[-1])
        results["restore_one_file"] = summary(restores, restores_cpu)

        for name, source in (("parallel_200x50ms_c16", PARALLEL), ("sequential_100_writes", SEQUENTIAL_WRITES)):
            results[f"engine_{name}_on"] = engine(base / f"{name}-on", source, True)
            results[f"engine_{name}_off"] = engine(base / f"{name}-off", source, False)
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
