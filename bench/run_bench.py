"""smithers benchmark: the figures behind DESIGN §7.

Run:  python bench/run_bench.py [--quick] [--startup] [--json out.json]

``--startup`` runs only the start-up scenarios (``--help``, ``--version``, a one-task ``up``,
300 sequential tasks, ``ps``, ``inspect``), each the median of 10 fresh processes (5 with
``--quick``). ``--daemon`` runs them through the installed console script's code path with a
warm daemon (``smithers daemon start``) running, and also without it, side by side.

Every scenario runs the real `smithers` CLI in a fresh process and a fresh directory, and
measures wall time from the parent, peak memory of that child (``wait4`` rusage) and the
database size. Results print as a table and as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

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
    return Parallel(*[Task(f"nap-{i}", output=Slept, run=nap) for i in range({n})])
"""

ONE_TASK = """
from pydantic import BaseModel
from smithers import Task, workflow

class Greeting(BaseModel):
    message: str

@workflow
def one(ctx):
    return Task("greet", output=Greeting, value={"message": "hello"})
"""

TARGETS = {
    "sequential_1000": {"wall_s": 1.0, "db_mb": 5.0, "peak_mb": 100.0},
    "sequential_10000": {"wall_s": 10.0},
    "parallel_200x50ms_c16": {"wall_s": 1.0},
    "up_one_task": {"wall_s": 0.2},  # issue 8 item 10 (DESIGN §7 asks 0.5)
    "sequential_300": {"wall_s": 0.35},
    "ps": {"wall_s": 0.15},
    "inspect": {"wall_s": 0.15},
    "help": {"wall_s": 0.2},
    "version": {"wall_s": 0.2},
    "resume_finished_1000": {"wall_s": 0.5},
}


def child_env(cwd: Path) -> dict[str, str]:
    """The environment of a measured `smithers`: bytecode is read from (and written to)
    ``__pycache__`` as for any installed package. Without this, an environment that sets
    ``PYTHONDONTWRITEBYTECODE`` (this dev sandbox does) recompiles every module on every start."""
    env = dict(os.environ, SMITHERS_DB=str(cwd / "smithers.db"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_bytecode() -> None:
    """Compile smithers' modules once, as ``pip install`` does, so no start-up pays for it."""
    import importlib.util

    spec = importlib.util.find_spec("smithers")
    assert spec is not None and spec.submodule_search_locations, "smithers is not importable"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for folder in spec.submodule_search_locations:
        subprocess.run([sys.executable, "-m", "compileall", "-q", folder], env=env, check=True, stdout=subprocess.DEVNULL)


SMITHERS = [sys.executable, "-m", "smithers"]  # --daemon: the console script's entry (cli/entry.py)
CONSOLE_SCRIPT = [sys.executable, "-c", "from smithers.cli.entry import entry; entry()"]


def run_measured(args: list[str], cwd: Path) -> dict[str, float]:
    """Like run_cli but reaps the child with wait4 to get its own peak memory (with a daemon:
    the client's; the work happens in the daemon's child)."""
    env = child_env(cwd)
    out_path = cwd / "stdout.txt"
    with open(out_path, "w") as out, open(cwd / "stderr.txt", "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*SMITHERS, *args], cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"smithers {' '.join(args)} exited {proc.returncode}:\n{(cwd / 'stderr.txt').read_text()}")
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, "stdout": out_path.read_text()}


def db_mb(path: Path) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(p.stat().st_size for p in path.parent.glob("smithers.db*")) / 1e6


def run_span(db: Path, run_id: str) -> float:
    conn = sqlite3.connect(db)
    first, last = conn.execute(
        "SELECT MIN(ts_ms), MAX(ts_ms) FROM _smithers_events WHERE run_id = ? AND type IN ('RunStarted', 'RunFinished')", (run_id,)
    ).fetchone()
    conn.close()
    return (last - first) / 1000


def last_run_id(stdout: str) -> str:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("run "):
            return line.split()[1]
    raise SystemExit(f"no run id in output: {stdout[-500:]}")


def scenario_sequential(n: int, root: Path) -> dict[str, float]:
    work = root / f"seq{n}"
    work.mkdir()
    (work / "wf.py").write_text(textwrap.dedent(SEQUENTIAL.replace("{n}", str(n))))
    result = run_measured(["up", "wf.py", "--quiet"], work)
    run_id = last_run_id(result.pop("stdout"))
    result["db_mb"] = db_mb(work / "smithers.db")
    result["run_s"] = run_span(work / "smithers.db", run_id)
    result["per_task_ms"] = result["run_s"] / n * 1000
    result["run_id"] = run_id  # type: ignore[assignment]
    return result


def scenario_parallel(root: Path, n: int = 200) -> dict[str, float]:
    work = root / "parallel"
    work.mkdir()
    (work / "wf.py").write_text(textwrap.dedent(PARALLEL.replace("{n}", str(n))))
    result = run_measured(["up", "wf.py", "--quiet", "--max-concurrency", "16"], work)
    run_id = last_run_id(result.pop("stdout"))
    result["run_s"] = run_span(work / "smithers.db", run_id)
    return result


def scenario_one_task(root: Path, repeats: int) -> dict[str, float]:
    work = root / "one"
    work.mkdir()
    (work / "wf.py").write_text(textwrap.dedent(ONE_TASK))
    walls = []
    for _ in range(repeats):
        result = run_measured(["up", "wf.py", "--quiet"], work)
        walls.append(result["wall_s"])
    (work / "last_run_id").write_text(last_run_id(result["stdout"]))
    return {"wall_s": sorted(walls)[len(walls) // 2], "peak_mb": result["peak_mb"]}


def scenario_help(root: Path, repeats: int, flag: str = "--help") -> dict[str, float]:
    walls = [run_measured([flag], root)["wall_s"] for _ in range(repeats)]
    return {"wall_s": sorted(walls)[len(walls) // 2]}


def scenario_sequential_repeated(n: int, root: Path, repeats: int) -> dict[str, float]:
    """A short sequential run, start-up included: the median of ``repeats`` fresh runs."""
    work = root / f"seq{n}-repeated"
    work.mkdir()
    (work / "wf.py").write_text(textwrap.dedent(SEQUENTIAL.replace("{n}", str(n))))
    results = [run_measured(["up", "wf.py", "--quiet"], work) for _ in range(repeats)]
    walls = sorted(r["wall_s"] for r in results)
    return {"wall_s": walls[len(walls) // 2], "peak_mb": results[-1]["peak_mb"]}


def scenario_read(root: Path, args: list[str], repeats: int) -> dict[str, float]:
    """A read command on the one-task run's database (``{run}`` is that run's id)."""
    work = root / "one"
    run_id = (work / "last_run_id").read_text()
    walls = sorted(run_measured([a.replace("{run}", run_id) for a in args], work)["wall_s"] for _ in range(repeats))
    return {"wall_s": walls[len(walls) // 2]}


def scenario_resume(root: Path, run_id: str, repeats: int) -> dict[str, float]:
    work = root / "seq1000"
    walls = []
    for _ in range(repeats):
        result = run_measured(["resume", run_id, "--quiet"], work)
        walls.append(result["wall_s"])
    return {"wall_s": sorted(walls)[len(walls) // 2], "peak_mb": result["peak_mb"]}


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu, "cores": str(os.cpu_count()),
        "sqlite": sqlite3.sqlite_version,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-task run and repeat less")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--startup", action="store_true", help="only the start-up scenarios (help, version, one task, 300 tasks, ps, inspect)")
    parser.add_argument("--daemon", action="store_true", help="the start-up scenarios with and without a warm daemon")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    startup_repeats = 5 if args.quick else 10
    results: dict[str, dict[str, float]] = {}
    warm_bytecode()
    if args.daemon:
        return report(startup_with_daemon(startup_repeats), args.json)
    with tempfile.TemporaryDirectory(prefix="smithers-bench-") as tmp:
        root = Path(tmp)
        results["help"] = scenario_help(root, startup_repeats)
        results["version"] = scenario_help(root, startup_repeats, "--version")
        results["up_one_task"] = scenario_one_task(root, startup_repeats)
        results["sequential_300"] = scenario_sequential_repeated(300, root, startup_repeats)
        results["ps"] = scenario_read(root, ["ps"], startup_repeats)
        results["inspect"] = scenario_read(root, ["inspect", "{run}"], startup_repeats)
        if args.startup:
            return report(results, args.json)
        results["sequential_1000"] = scenario_sequential(1000, root)
        run_id = str(results["sequential_1000"].pop("run_id"))
        results["resume_finished_1000"] = scenario_resume(root, run_id, repeats)
        results["parallel_200x50ms_c16"] = scenario_parallel(root)
        if not args.quick:
            results["sequential_10000"] = scenario_sequential(10000, root)
            results["sequential_10000"].pop("run_id")
    return report(results, args.json)


def startup_scenarios(root: Path, repeats: int, suffix: str) -> dict[str, dict[str, float]]:
    results = {
        "help": scenario_help(root, repeats),
        "up_one_task": scenario_one_task(root, repeats),
        "sequential_300": scenario_sequential_repeated(300, root, repeats),
        "ps": scenario_read(root, ["ps"], repeats),
        "inspect": scenario_read(root, ["inspect", "{run}"], repeats),
    }
    return {f"{name}{suffix}": row for name, row in results.items()}


def startup_with_daemon(repeats: int) -> dict[str, dict[str, float]]:
    """The start-up scenarios through the console script: a warm daemon running, then none."""
    SMITHERS[:] = CONSOLE_SCRIPT
    with tempfile.TemporaryDirectory(prefix="smithers-bench-") as tmp:
        root = Path(tmp)
        os.environ["SMITHERS_DAEMON_SOCKET"] = str(root / "d.sock")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([*CONSOLE_SCRIPT, "daemon", "start"], env=env, check=True, stdout=subprocess.DEVNULL)
        try:
            (root / "warm").mkdir()
            results = startup_scenarios(root / "warm", repeats, "")
        finally:
            subprocess.run([*CONSOLE_SCRIPT, "daemon", "stop"], env=env, check=True, stdout=subprocess.DEVNULL)
        (root / "cold").mkdir()
        results.update(startup_scenarios(root / "cold", repeats, " (no daemon)"))
    return results


def report(results: dict[str, dict[str, float]], json_path: Path | None) -> int:
    """Print the table and the JSON (and write it to ``json_path``)."""
    document = {"machine": machine(), "results": results, "targets": TARGETS}
    print(f"{'scenario':<24} {'wall s':>8} {'run s':>8} {'ms/task':>8} {'peak MB':>8} {'db MB':>7}  target")
    for name, row in results.items():
        target = ", ".join(f"{k}≤{v}" for k, v in TARGETS.get(name, {}).items())
        ok = all(row.get(k, 0) <= v for k, v in TARGETS.get(name, {}).items())
        def cell(key: str, width: int, fmt: str = ".3f") -> str:
            return f"{row[key]:>{width}{fmt}}" if key in row else " " * (width - 1) + "-"
        print(
            f"{name:<24} {cell('wall_s', 8)} {cell('run_s', 8)} {cell('per_task_ms', 8)} {cell('peak_mb', 8, '.1f')} "
            f"{cell('db_mb', 7, '.2f')}  {target} {'ok' if ok else 'MISSED'}"
        )
    print(json.dumps(document, indent=2))
    if json_path:
        json_path.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
