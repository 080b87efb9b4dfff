"""Workers (issue 9): a 1,000 x 50 ms fan-out on 1, 2 and 4 workers, and claim latency.

Run:  python bench/bench_workers.py [--db postgresql://… | --pg-server] [--tasks 1000] [--workers 1,2,4] [--slots 16]
      [--no-latency] [--profile DIR] [--json out.json]

Fan-out: one run of ``Parallel(max_concurrency=64)`` over N compute tasks that each await 50 ms
(the workflow's ``max_concurrency`` is 64 too), enqueued with ``smithers up --queue`` once the
workers are up and idle; ``seconds`` is the run's ``finished_at_ms - created_at_ms`` (from the
moment the queued run exists to its finish; ``wall_with_enqueue_s`` adds the ``up --queue``
process: start-up, loading and validating the workflow). Snapshots are off (``SMITHERS_SNAPSHOTS=off``): this
measures the queue, not git. Ideal: N x 50 ms / min(64, workers x slots) = 0.8 s for 1,000
tasks once 64 slots exist.

Claim latency: a run of 40 sequential compute tasks on idle workers; for each attempt,
``claimed_at_ms - enqueued_at_ms`` from its queue row (both stamped by processes on this host's
clock), median and p90.

Each scenario gets a fresh database: a fresh SQLite file in a temporary folder, or, with
``--db postgresql://…/postgres``, a fresh database created beside it for each scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

FAN = """
import asyncio
from pydantic import BaseModel
from smithers import workflow, Task, Parallel

class Out(BaseModel):
    i: int

def work(i):
    async def fn():
        await asyncio.sleep(0.05)
        return {{"i": i}}
    return fn

@workflow(max_concurrency=64)
def fan(ctx):
    return Parallel(*[Task(f"t{{i}}", output=Out, run=work(i)) for i in range({tasks})], max_concurrency=64)
"""

CHAIN = """
from pydantic import BaseModel
from smithers import workflow, Task, Sequence

class Out(BaseModel):
    i: int

def work(i):
    async def fn():
        return {{"i": i}}
    return fn

@workflow
def chain(ctx):
    return Sequence(*[Task(f"s{{i}}", output=Out, run=work(i)) for i in range({tasks})])
"""


# On PostgreSQL the workers and the enqueue run the same code as `smithers worker` / `up --queue`
# through Store.open(URL) (the CLI's --db takes a URL once the pg-surface branch is in).
WORKER = """
import asyncio, json, sys
from smithers.storage.store import Store
from smithers.worker import Worker
import os
worker = Worker(Store.open(sys.argv[1]), concurrency=int(sys.argv[2]), name=sys.argv[3], echo=lambda r: print(json.dumps(r), flush=True))
profile_dir = os.environ.get("SMITHERS_BENCH_PROFILE")  # a folder: each worker writes <name>.prof (cProfile) there
if profile_dir:
    import cProfile
    with cProfile.Profile() as prof:
        asyncio.run(worker.run())
    prof.dump_stats(os.path.join(profile_dir, sys.argv[3] + ".prof"))
else:
    asyncio.run(worker.run())
"""
ENQUEUE = """
import json, sys
from smithers.storage.store import Store
from smithers.worker import enqueue_run
print(json.dumps({"run_id": enqueue_run(sys.argv[2], store=Store.open(sys.argv[1]), raw_input=None), "status": "queued"}))
"""


def _worker_argv(db: str, slots: int, name: str) -> list[str]:
    if db.startswith("postgres"):
        return [sys.executable, "-c", WORKER, db, str(slots), name]
    return [sys.executable, "-m", "smithers", "worker", "--concurrency", str(slots), "--name", name, "--json"]


def _enqueue_argv(db: str, flow: str) -> list[str]:
    if db.startswith("postgres"):
        return [sys.executable, "-c", ENQUEUE, db, flow]
    return [sys.executable, "-m", "smithers", "up", flow, "--queue", "--json"]


def _env(db: str) -> dict[str, str]:
    env = dict(os.environ)
    env["SMITHERS_DB"] = db
    env["SMITHERS_SNAPSHOTS"] = "off"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class Database:
    """A fresh database per scenario: a SQLite file, or a new PostgreSQL database."""

    def __init__(self, base: str | None, folder: Path, name: str) -> None:
        self.base = base
        if base is None:
            self.target = str(folder / "smithers.db")
        else:
            import psycopg

            dbname = f"bench_{name}_{os.getpid()}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
                conn.execute(f'CREATE DATABASE "{dbname}"')
            self.target = base.rsplit("/", 1)[0] + "/" + dbname

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.base is None:
            conn = sqlite3.connect(self.target, timeout=30)
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()
        import psycopg

        # one connection for the whole scenario: a new one per 10 ms status poll would fork a
        # server backend each time and steal the CPU the run is measured on
        if getattr(self, "_pg", None) is None:
            self._pg = psycopg.connect(self.target, autocommit=True)
        return self._pg.execute(sql).fetchall()

    def close(self) -> None:
        if getattr(self, "_pg", None) is not None:
            self._pg.close()
            self._pg = None


def _status(db: Database) -> str | None:
    try:
        rows = db.query("SELECT status FROM _smithers_runs")
    except Exception:  # the database is being created by the first process
        return None
    return str(rows[0][0]) if rows else None


def _start_workers(folder: Path, db: str, count: int, slots: int) -> list[subprocess.Popen[str]]:
    procs = []
    for n in range(count):
        procs.append(subprocess.Popen(
            _worker_argv(db, slots, f"w{n}"),
            cwd=folder, env=_env(db), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        ))
    for proc in procs:  # each says "started" once its loop runs (imports done)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert '"started"' in line, line
    return procs


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.communicate(timeout=60)


def _migrate(target: str) -> None:
    """Create and migrate the database before the workers start (they would race to)."""
    code = "import sys; from smithers.storage.store import Store; Store.open(sys.argv[1]).close()"
    subprocess.run([sys.executable, "-c", code, target], check=True)


SERVER_PID: int | None = None  # the throw-away server's postmaster (--pg-server): its backends' CPU is measured


def _server_cpu_s() -> float:
    """CPU seconds of the postmaster, its live children (each connection's backend is one) and
    its exited ones."""
    if SERVER_PID is None:
        return 0.0
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == SERVER_PID:
            ticks += sum(int(f) for f in fields[11:15])
        elif int(fields[1]) == SERVER_PID:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fan_out(base: str | None, tasks: int, workers: int, slots: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "fan.py").write_text(textwrap.dedent(FAN.format(tasks=tasks)))
        db = Database(base, folder, f"fan{workers}")
        _migrate(db.target)
        cpu_before, server_before = _children_cpu_s(), _server_cpu_s()
        procs = _start_workers(folder, db.target, workers, slots)
        try:
            time.sleep(0.5)
            started = time.perf_counter()
            queued = subprocess.run(
                _enqueue_argv(db.target, str(folder / "fan.py")), cwd=folder, env=_env(db.target),
                capture_output=True, text=True, check=True,
            )
            enqueue_s = time.perf_counter() - started
            while _status(db) != "finished":
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"the run did not finish: {_status(db)}")
                time.sleep(0.01)
            total = time.perf_counter() - started
            server_cpu = _server_cpu_s() - server_before  # before the workers' backends exit
            per_worker = db.query("SELECT worker, COUNT(*) FROM _smithers_task_queue GROUP BY worker")
            run_ms = db.query("SELECT finished_at_ms - created_at_ms FROM _smithers_runs")[0][0]
        finally:
            db.close()
            _stop(procs)
        time.sleep(0.3)  # the server reaps the workers' backends
        cpu = {"client_cpu_s": round(_children_cpu_s() - cpu_before, 2)}
        if SERVER_PID is not None:
            cpu["server_cpu_s"] = round(server_cpu, 2)
    return {
        "workers": workers, "slots": slots, "tasks": tasks, "seconds": round(run_ms / 1000, 3), "wall_with_enqueue_s": round(total, 3),
        **cpu,
        "enqueue_s": round(enqueue_s, 3),
        "run_id": json.loads(queued.stdout)["run_id"], "attempts_per_worker": sorted(n for _, n in per_worker),
        "ideal_s": round(tasks * 0.05 / min(64, workers * slots), 3),
    }


def claim_latency(base: str | None, tasks: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "chain.py").write_text(textwrap.dedent(CHAIN.format(tasks=tasks)))
        db = Database(base, folder, f"lat{workers}")
        _migrate(db.target)
        procs = _start_workers(folder, db.target, workers, 4)
        try:
            time.sleep(0.5)
            subprocess.run(
                _enqueue_argv(db.target, str(folder / "chain.py")), cwd=folder, env=_env(db.target),
                capture_output=True, check=True,
            )
            deadline = time.monotonic() + 300
            while _status(db) != "finished" and time.monotonic() < deadline:
                time.sleep(0.02)
            rows = db.query("SELECT claimed_at_ms - enqueued_at_ms, finished_at_ms - enqueued_at_ms FROM _smithers_task_queue")
        finally:
            db.close()
            _stop(procs)
    claims = sorted(r[0] for r in rows)
    done = sorted(r[1] for r in rows)
    return {
        "workers": workers, "attempts": len(claims), "claim_median_ms": statistics.median(claims),
        "claim_p90_ms": claims[int(len(claims) * 0.9) - 1], "result_median_ms": statistics.median(done),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="a postgresql:// URL (a fresh database is created beside it per scenario); default SQLite")
    parser.add_argument("--pg-server", action="store_true", help="start a throw-away PostgreSQL server (tests/pgserver.py) and use it")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-latency", action="store_true", help="skip the claim-latency scenarios")
    parser.add_argument("--profile", type=Path, help="a folder: each PostgreSQL worker writes a cProfile <name>.prof there")
    args = parser.parse_args()
    server = None
    if args.pg_server:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from pgserver import PgServer

        server = PgServer.start()
        global SERVER_PID
        SERVER_PID = int((server.folder / "data" / "postmaster.pid").read_text().split()[0])
        args.db = server.tcp_url()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        os.environ["SMITHERS_BENCH_PROFILE"] = str(args.profile.resolve())
    try:
        _run(args)
    finally:
        if server is not None:
            server.stop()


def _run(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {"backend": "postgresql" if args.db else "sqlite", "fan_out": [], "claim_latency": []}
    for workers in [int(w) for w in args.workers.split(",")]:
        result = fan_out(args.db, args.tasks, workers, args.slots)
        results["fan_out"].append(result)
        print(json.dumps(result), flush=True)
    for workers in () if args.no_latency else (1, 2):
        result = claim_latency(args.db, 40, workers)
        results["claim_latency"].append(result)
        print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
