"""Workers on PostgreSQL: the same worker processes over a real server (``pg_url``), the claim by
``FOR UPDATE SKIP LOCKED``, wake-ups by LISTEN/NOTIFY; real SIGKILL; SQL counts.

The workers and the enqueue run as ``python -c`` processes on :class:`smithers.worker.Worker`
and :func:`smithers.worker.enqueue_run` over ``Store.open(URL)``, the same code ``smithers
worker`` and ``up --queue`` run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import waiting
from test_worker import FAN, SLOW

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKER = """
import asyncio, json, sys
from smithers.storage.store import Store
from smithers.worker import Worker
target, name, slots, drive = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "runs"
worker = Worker(
    Store.open(target), concurrency=slots, name=name, lease_timeout_s=2.0, grace_s=2.0, drive_runs=drive,
    echo=lambda record: print(json.dumps(record), flush=True),
)
asyncio.run(worker.run())
"""

ENQUEUE = """
import sys
from smithers.storage.store import Store
from smithers.worker import enqueue_run
print(enqueue_run(sys.argv[2], store=Store.open(sys.argv[1]), raw_input=None))
"""


class PgProject:
    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url

    def write(self, name: str, source: str) -> None:
        (self.root / name).write_text(textwrap.dedent(source), encoding="utf-8")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def enqueue(self, flow: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", ENQUEUE, self.url, str(self.root / flow)], cwd=self.root, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def worker(self, name: str, slots: int, *, runs: bool = True) -> subprocess.Popen[str]:
        """A worker process, returned once it says it started (its loop runs)."""
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, self.url, name, str(slots), "runs" if runs else "no-runs"], cwd=self.root,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert '"started"' in line, line
        return proc

    def starts(self) -> list[tuple[str, int, int]]:
        log = self.root / "starts.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [(p[0], int(p[1]), int(p[2])) for p in (line.split() for line in lines if line.strip())]

    def status(self, run_id: str) -> str:
        return str(self.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0])


@pytest.fixture
def pg(tmp_path: Path, pg_url: str) -> PgProject:
    return PgProject(tmp_path, pg_url)


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, list[dict[str, Any]]]:
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=30)
    records = []
    for line in out.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            records.append({"event": "output", "line": line})
    return proc.returncode, records


def test_two_workers_on_postgres_spread_a_run_and_hold_the_limit(pg: PgProject) -> None:
    pg.write("flow.py", FAN)
    w1, w2 = pg.worker("w1", 2), pg.worker("w2", 2)
    run_id = pg.enqueue("flow.py")
    try:
        waiting.wait_until(lambda: pg.status(run_id) == "finished", 90, "the run to finish")
    finally:
        results = [_stop(w1), _stop(w2)]
    assert [code for code, _ in results] == [0, 0], results
    assert sorted(n for n, _, _ in pg.starts()) == sorted([f"t{i}" for i in range(12)] + ["last"])
    assert pg.query("SELECT node_id, COUNT(*) FROM out WHERE run_id = ? GROUP BY node_id HAVING COUNT(*) <> 1", (run_id,)) == []
    assert pg.query("SELECT COUNT(*) FROM out WHERE run_id = ?", (run_id,)) == [(13,)]
    queue = pg.query("SELECT worker, status FROM _smithers_task_queue WHERE run_id = ?", (run_id,))
    assert {status for _, status in queue} == {"collected"}
    assert {worker.split("/")[0] for worker, _ in queue} == {"w1", "w2"}
    spans = [line.split() for line in (pg.root / "spans.log").read_text().splitlines()]
    edges = sorted([(float(s), 1) for _, s, _ in spans] + [(float(e), -1) for _, _, e in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak <= 3


def test_sigkill_of_the_executing_worker_on_postgres(pg: PgProject) -> None:
    pg.write("flow.py", SLOW)
    run_id = pg.enqueue("flow.py")
    owner = pg.worker("owner", 0)
    doomed = pg.worker("doomed", 2, runs=False)
    try:
        waiting.wait_until(lambda: any(n == "b" for n, _, _ in pg.starts()), 60, "b to start")
        assert [pid for n, _, pid in pg.starts() if n == "b"] == [doomed.pid]
        assert _stop(doomed, signal.SIGKILL)[0] == -signal.SIGKILL
        (pg.root / "release").touch()
        rescuer = pg.worker("rescuer", 2, runs=False)
        try:
            waiting.wait_until(lambda: pg.status(run_id) == "finished", 60, "the run to finish")
        finally:
            assert _stop(rescuer)[0] == 0
    finally:
        _stop(owner)
    assert [(n, a) for n, a, _ in pg.starts()] == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    assert pg.query("SELECT node_id, attempt, status FROM _smithers_attempts WHERE run_id = ? ORDER BY node_id, attempt", (run_id,)) == [
        ("a", 1, "finished"), ("b", 1, "abandoned"), ("b", 2, "finished"), ("c", 1, "finished"),
    ]
    assert pg.query("SELECT node_id, COUNT(*) FROM out WHERE run_id = ? GROUP BY node_id ORDER BY node_id", (run_id,)) == [
        ("a", 1), ("b", 1), ("c", 1),
    ]


def test_sigkill_of_the_owning_worker_on_postgres(pg: PgProject) -> None:
    pg.write("flow.py", SLOW)
    run_id = pg.enqueue("flow.py")
    first = pg.worker("first", 0)
    executor = pg.worker("executor", 2, runs=False)
    try:
        waiting.wait_until(lambda: any(n == "b" for n, _, _ in pg.starts()), 60, "b to start")
        assert _stop(first, signal.SIGKILL)[0] == -signal.SIGKILL
        second = pg.worker("second", 0)
        try:
            waiting.wait_until(lambda: [n for n, _, _ in pg.starts()].count("b") == 2, 30, "b to run again")
            (pg.root / "release").touch()
            waiting.wait_until(lambda: pg.status(run_id) == "finished", 60, "the run to finish")
            assert pg.query("SELECT owner_pid FROM _smithers_runs WHERE run_id = ?", (run_id,)) in ([(None,)], [(second.pid,)])
        finally:
            assert _stop(second)[0] == 0
    finally:
        _stop(executor)
    assert [(n, a) for n, a, _ in pg.starts()] == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    assert pg.query("SELECT node_id, COUNT(*) FROM out WHERE run_id = ? GROUP BY node_id ORDER BY node_id", (run_id,)) == [
        ("a", 1), ("b", 1), ("c", 1),
    ]
