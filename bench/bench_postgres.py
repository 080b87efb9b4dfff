"""1,000 sequential static tasks on PostgreSQL vs SQLite, in one process (issue 9: ≤ 3 s on
PostgreSQL, per-step checkpoint ≤ 2 ms).

Run:  python bench/bench_postgres.py [--tasks 1000] [--rounds 3] [--profile out.html] [--json out.json]

One throw-away PostgreSQL server (tests/pgserver.py, the Debian package's binaries) is started
twice: durable (``synchronous_commit=on``: an fsync of the WAL per commit, PostgreSQL's default)
and with ``synchronous_commit=off`` (a crash loses at most the last few hundred ms of commits,
never corrupts: the same promise as SQLite's default ``synchronous=NORMAL``). Each round runs the
workflow with ``smithers.ops.start_run`` in this process on a fresh database of each backend,
after one warm-up run (imports, bytecode). Reported per backend: wall seconds of the run, ms per
task, and the commit durations the store reports to its commit observers (BEGIN to COMMIT).
``--profile`` writes a pyinstrument profile of one PostgreSQL run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/pgserver.py

from pgserver import PgServer  # noqa: E402

from smithers.ops import start_run  # noqa: E402
from smithers.storage import store as store_module  # noqa: E402
from smithers.storage.store import Store  # noqa: E402

SEQUENTIAL = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Step(BaseModel):
    index: int
    note: str

@workflow
def sequential(ctx):
    return Sequence(*[Task(f"step-{i}", output=Step, value={"index": i, "note": "done"}) for i in range({n})])
"""


def one_run(target: str, spec: Path) -> dict[str, float]:
    commits: list[float] = []
    store_module.add_commit_observer(commits.append)
    store = Store.open(target)
    try:
        started = time.perf_counter()
        outcome = start_run(str(spec), store=store, raw_input=None)
        wall = time.perf_counter() - started
        assert outcome.status == "finished", outcome
    finally:
        store.close()
        store_module.remove_commit_observer(commits.append)
    commits.sort()
    return {
        "wall_s": wall,
        "commits": len(commits),
        "commit_median_ms": statistics.median(commits) * 1000,
        "commit_p95_ms": commits[int(len(commits) * 0.95)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="smithers-bench-pg-"))
    os.environ["SMITHERS_HOME"] = str(work)
    os.chdir(work)
    spec = work / "wf.py"
    spec.write_text(textwrap.dedent(SEQUENTIAL.replace("{n}", str(args.tasks))))
    results: dict[str, list[dict[str, float]]] = {}
    counter = iter(range(1_000_000))
    servers = {
        "postgres (synchronous_commit=on)": PgServer.start(durable=True),
        "postgres (synchronous_commit=off)": PgServer.start(durable=True, settings=("synchronous_commit=off",)),
    }
    try:
        targets = {"sqlite (synchronous=NORMAL)": lambda: str(work / f"s{next(counter)}.db")}
        for name, server in servers.items():
            targets[name] = lambda server=server: server.new_database("bench")  # type: ignore[misc]
        for make in targets.values():  # warm-up: imports, bytecode, the servers' caches
            one_run(make(), spec)
        for _ in range(args.rounds):
            for name, make in targets.items():
                results.setdefault(name, []).append(one_run(make(), spec))
        if args.profile:
            from pyinstrument import Profiler

            target = next(iter(servers.values())).new_database("profile")
            profiler = Profiler(interval=0.0005)
            profiler.start()
            one_run(target, spec)
            profiler.stop()
            args.profile.write_text(profiler.output_html())
            print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
    finally:
        for server in servers.values():
            server.stop()
    print(f"{args.tasks} sequential static tasks, median of {args.rounds} rounds (load average {os.getloadavg()[0]:.2f})")
    print(f"{'backend':38} {'wall s':>7} {'ms/task':>8} {'commits':>8} {'commit med ms':>14} {'commit p95 ms':>14}")
    summary = {}
    for name, rounds in results.items():
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        summary[name] = med
        print(f"{name:38} {med['wall_s']:7.2f} {med['wall_s'] / args.tasks * 1000:8.2f} {med['commits']:8.0f} "
              f"{med['commit_median_ms']:14.3f} {med['commit_p95_ms']:14.3f}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
