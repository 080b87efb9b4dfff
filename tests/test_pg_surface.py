"""Every command on PostgreSQL, end to end (DESIGN §10.2): the real CLI as subprocesses with
``SMITHERS_DB=postgresql://...`` on a real server (the ``pg_url`` fixture: a fresh database on
the session's server) — runs, reads, approvals, signals, timers, cancel, cron, memory, the
cache, ``serve`` with its live SSE stream and ``/metrics``, and ``db upgrade``/``db copy``
between SQLite and PostgreSQL. No mock: what a user types, against what a team runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from test_db_surface import WORKFLOW
from waiting import wait_until

from smithers.storage.store import Store

EVERYTHING = """
from pydantic import BaseModel
from smithers import Approval, Cache, Parallel, Sequence, Signal, Task, Timer, workflow

class Out(BaseModel):
    path: str
    n: int = 0

class Ping(BaseModel):
    n: int

class In(BaseModel):
    mode: str = "approve"

@workflow(input=In)
def everything(ctx):
    if ctx.input.mode == "signal":
        ping = ctx.output("ping")
        return Sequence(Signal("ping", schema=Ping), ping and Task("pong", output=Out, value={"path": "pong", "n": ping.n * 2}))
    if ctx.input.mode == "timer":
        return Sequence(Timer("nap", duration="1s"), Task("woke", output=Out, value={"path": "woke"}))
    if ctx.input.mode == "cached":
        return Sequence(Task("costly", output=Out, value={"path": "costly", "n": 1}, cache=Cache(version="1")))
    return Sequence(
        Task("build", output=Out, value={"path": "built", "n": 1}),
        Parallel(*[Task(f"fan{i}", output=Out, value={"path": f"fan{i}", "n": i}) for i in range(4)]),
        Approval("ship", Task("push", output=Out, value={"path": "pushed"})),
    )
"""


@dataclass
class PgProject:
    """A project folder whose database is a PostgreSQL URL (``SMITHERS_DB``)."""

    root: Path
    url: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "COLUMNS")}
        env.update(SMITHERS_DB=self.url, SMITHERS_HOME=str(self.root), **extra)
        return env

    def cli(self, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args], cwd=self.root, env=self.env(**extra), capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def up(self, *args: str, code: int) -> str:
        result = self.cli("up", *args, "--json")
        assert result.returncode == code, result.stdout + result.stderr
        return str(json.loads(result.stdout)["run_id"])

    def events(self, run_id: str) -> list[dict[str, Any]]:
        result = self.cli("events", run_id, "--json")  # one JSON object a line
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def status(self, run_id: str) -> str:
        return str(self.json("inspect", run_id)["status"])


@pytest.fixture
def pg(tmp_path: Path, pg_url: str) -> PgProject:
    (tmp_path / "wf.py").write_text(textwrap.dedent(EVERYTHING), encoding="utf-8")
    return PgProject(tmp_path, pg_url)


def _outputs(detail: dict[str, Any]) -> dict[str, Any]:
    return {n["id"]: n["output"] for n in detail["nodes"] if n.get("output") is not None}


# -- runs, reads and people ------------------------------------------------------------------


def test_a_fan_out_with_an_approval_runs_waits_and_resumes_on_postgres(pg: PgProject) -> None:
    run_id = pg.up("wf.py", code=3)
    assert not (pg.root / "smithers.db").exists()  # no SQLite file anywhere: the URL is the database
    assert (pg.root / ".smithers" / "runs" / run_id / "events.ndjson").is_file()  # logs under SMITHERS_HOME

    [listed] = pg.json("ps")
    assert listed["run_id"] == run_id and listed["status"] == "waiting-approval"
    detail = pg.json("inspect", run_id)
    assert _outputs(detail) == {
        "build": {"path": "built", "n": 1}, **{f"fan{i}": {"path": f"fan{i}", "n": i} for i in range(4)},
    }
    why = pg.json("why", run_id)
    assert why["status"] == "waiting-approval" and f"smithers approve {run_id} --node ship" in " ".join(why["commands"])
    events = pg.events(run_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # gapless per-run seq
    assert events[0]["type"] == "RunStarted" and "ApprovalRequested" in {e["type"] for e in events}
    assert [i["run_id"] for i in pg.json("inbox") if i["kind"] == "approval"] == [run_id]

    assert pg.cli("approve", run_id, "--node", "ship", "--by", "ana").returncode == 0
    resumed = pg.cli("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    done = pg.json("inspect", run_id)
    assert done["status"] == "finished" and _outputs(done)["push"] == {"path": "pushed", "n": 0}
    assert pg.json("ps", "--status", "finished")[0]["run_id"] == run_id


def test_signal_timer_and_cancel_on_postgres(pg: PgProject) -> None:
    signalled = pg.up("wf.py", "--input", '{"mode": "signal"}', code=3)
    assert pg.status(signalled) == "waiting-event"
    sent = pg.cli("signal", signalled, "ping", "--data", '{"n": 21}')
    assert sent.returncode == 0, sent.stderr
    assert pg.cli("resume", signalled).returncode == 0
    assert _outputs(pg.json("inspect", signalled))["pong"] == {"path": "pong", "n": 42}

    napping = pg.up("wf.py", "--input", '{"mode": "timer"}', code=3)
    assert pg.status(napping) == "waiting-timer"

    def wake() -> str:
        supervised = pg.cli("supervise", "--once", "--interval", "0.2s")
        assert supervised.returncode == 0, supervised.stdout + supervised.stderr
        return pg.status(napping)

    wait_until(wake, 60, "the timer's run to finish through supervise --once", until=lambda s: s == "finished", interval=0.3)
    assert _outputs(pg.json("inspect", napping))["woke"] == {"path": "woke", "n": 0}

    with_password = pg.url.replace("postgresql://postgres@", "postgresql://postgres:pw-s3cret@", 1)  # the test server trusts
    assert with_password != pg.url
    detached = pg.cli("up", "wf.py", "--input", '{"mode": "cached"}', "--detach", "--json", "--db", with_password)
    assert detached.returncode == 0, detached.stderr
    background = json.loads(detached.stdout)
    assert Path(background["log"]).is_relative_to(pg.root / ".smithers" / "runs")  # the child got the URL as --db
    wait_until(lambda: pg.status(background["run_id"]), 60, "the detached run to finish", until=lambda s: s == "finished")
    assert "pw-s3cret" not in Path(background["log"]).read_text()  # the child found the URL in SMITHERS_DB, not on its argv

    doomed = pg.up("wf.py", code=3)
    cancelled = pg.cli("cancel", doomed, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert pg.status(doomed) == "cancelled"
    again = pg.cli("cancel", doomed)
    assert again.returncode == 4 and "already over; nothing changed" in again.stdout


def test_cron_memory_and_cache_on_postgres(pg: PgProject) -> None:
    schedule = pg.json("cron", "add", "* * * * * *", "wf.py", "--input", '{"mode": "cached"}', "--name", "every-second")
    assert [s["id"] for s in pg.json("cron", "list")] == [schedule["id"]]

    def fired() -> list[dict[str, Any]]:
        supervised = pg.cli("supervise", "--once", "--interval", "0.2s")
        assert supervised.returncode == 0, supervised.stdout + supervised.stderr
        return [r for r in pg.json("ps", "--all") if r["triggered_by"] == f"cron:{schedule['id']}" and r["status"] == "finished"]

    runs = wait_until(fired, 60, "the schedule to fire and its run to finish", interval=0.5)
    assert _outputs(pg.json("inspect", runs[0]["run_id"]))["costly"] == {"path": "costly", "n": 1}
    assert pg.cli("cron", "rm", schedule["id"]).returncode == 0

    [entry] = pg.json("cache", "list")
    assert entry["node_id"] == "costly" and entry["workflow"] == "everything"
    second = pg.up("wf.py", "--input", '{"mode": "cached"}', code=0)
    statuses = [a["status"] for n in pg.json("inspect", second)["nodes"] for a in n["attempts"]]
    assert statuses == ["cached"]

    assert pg.cli("memory", "set", "global", "deploy-note", "ship on fridays, never").returncode == 0
    recall = pg.json("memory", "recall", "global", "fridays")
    assert [f["key"] for f in recall] == ["deploy-note"]
    assert pg.json("memory", "get", "global", "deploy-note")["value"] == "ship on fridays, never"


# -- serve: live events over SSE, /metrics, the read API ------------------------------------------


def _sse_events(response: httpx2.Response) -> Any:
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def test_serve_streams_a_runs_live_events_and_metrics_from_postgres(pg: PgProject) -> None:
    run_id = pg.up("wf.py", code=3)
    server = subprocess.Popen(
        [sys.executable, "-m", "smithers", "serve", "--port", "0", "--root", str(pg.root)], cwd=pg.root, env=pg.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith("serving postgresql://"), line + (server.stderr.read() if server.stderr else "")
        url = line.split(" on ", 1)[1].split()[0]
        with httpx2.Client(base_url=url, timeout=60) as client:
            assert [r["run_id"] for r in client.get("/v1/runs").json()["runs"]] == [run_id]
            assert client.get(f"/v1/runs/{run_id}").json()["status"] == "waiting-approval"
            seen: list[int] = []
            end = None
            with client.stream("GET", f"/v1/runs/{run_id}/events") as stream:
                for event in _sse_events(stream):
                    if event.get("event") == "end":
                        end = json.loads(event["data"])
                        break
                    if "id" not in event:
                        continue
                    seen.append(int(event["id"]))
                    if json.loads(event["data"])["type"] == "ApprovalRequested":
                        # the history is in; now the live part: approve, and the server resumes the run in a child process
                        decided = client.post(f"/v1/runs/{run_id}/nodes/ship/approve", json={"by": "ana"})
                        assert decided.status_code == 200 and decided.json()["resumed"] is True, decided.text
            assert end is not None and end["status"] == "finished", end
            events = pg.events(run_id)
            assert seen == [e["seq"] for e in events]  # every event once, in order, live ones included
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
            assert "smithers_runs_finished_total 1.0" in metrics.text, metrics.text[:2000]
            assert "smithers_node_attempts_started_total" in metrics.text
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)


# -- errors ----------------------------------------------------------------------------------------


def test_a_read_on_an_unreachable_server_names_it_and_hides_the_password(tmp_path: Path) -> None:
    url = "postgresql://smithers:hunter2@127.0.0.1:1/runs"  # port 1: nothing listens
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}
    result = subprocess.run(
        [sys.executable, "-m", "smithers", "ps", "--db", url], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot connect to postgresql://smithers:***@127.0.0.1:1/runs" in result.stderr
    assert "hint:" in result.stderr and "hunter2" not in result.stderr and "Traceback" not in result.stderr


# -- db upgrade and db copy ------------------------------------------------------------------------


def test_db_upgrade_on_postgres(pg: PgProject) -> None:
    from smithers.storage.schema import MIGRATIONS

    first = pg.json("db", "upgrade")  # an empty database gets the whole schema
    assert [m["version"] for m in first["applied"]] == [v for v, _, _ in MIGRATIONS]
    assert first["up_to_date"] is False and first["version"] == MIGRATIONS[-1][0]
    again = pg.cli("db", "upgrade")
    assert again.returncode == 0 and f"up to date (schema version {MIGRATIONS[-1][0]})" in again.stdout


def _seeded_sqlite(root: Path) -> tuple[Path, str, str]:
    """A SQLite project with a finished and a waiting run, memory and a schedule; (db, finished, waiting)."""
    (root / "wf.py").write_text(WORKFLOW, encoding="utf-8")
    db = root / "smithers.db"
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"} | {"SMITHERS_DB": str(db)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "smithers", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)

    waiting = json.loads(cli("up", "wf.py", "--json").stdout)["run_id"]
    finished = json.loads(cli("up", "wf.py", "--json").stdout)["run_id"]
    assert cli("approve", finished, "--node", "ship").returncode == 0
    assert cli("resume", finished).returncode == 0
    assert cli("memory", "set", "global", "greeting", '"hello postgres"').returncode == 0
    assert cli("cron", "add", "0 9 * * *", "wf.py").returncode == 0
    return db, finished, waiting


def _rows(target: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table (all its columns but PostgreSQL's rowid), in insertion order, via the store."""
    store = Store.open(target, readonly=True)
    try:
        columns = store.table_columns(table)
        rows = [tuple(row[1:]) for batch in store.table_rows(table, columns) for row in batch]
        return rows if table.startswith("_smithers_") else sorted(rows, key=repr)  # an output table has no insertion order on PostgreSQL
    finally:
        store.close()


def test_db_copy_sqlite_to_postgres_and_back(tmp_path: Path, pg_url: str) -> None:
    db, finished, waiting = _seeded_sqlite(tmp_path)
    copied = subprocess.run(
        [sys.executable, "-m", "smithers", "db", "copy", "--from", str(db), "--to", pg_url, "--json"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
    )
    assert copied.returncode == 0, copied.stderr
    report = json.loads(copied.stdout)
    source = Store.open(db, readonly=True)
    try:
        tables = source.data_tables()
        assert report["tables"] == source.table_counts(tables)
    finally:
        source.close()
    assert report["tables"]["_smithers_runs"] == 2 and report["tables"]["out"] == 9
    for table in tables:
        assert _rows(pg_url, table) == _rows(str(db), table), table

    pg = PgProject(tmp_path, pg_url)
    assert {r["run_id"]: r["status"] for r in pg.json("ps")} == {finished: "finished", waiting: "waiting-approval"}
    assert pg.json("inspect", finished) == json.loads(subprocess.run(
        [sys.executable, "-m", "smithers", "inspect", finished, "--json", "--db", str(db)], cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    ).stdout)
    assert [f["key"] for f in pg.json("memory", "recall", "global", "hello")] == ["greeting"]  # the tsvector index is there
    assert len(pg.json("cron", "list")) == 1
    assert pg.cli("approve", waiting, "--node", "ship").returncode == 0
    assert pg.cli("resume", waiting).returncode == 0
    assert _outputs(pg.json("inspect", waiting))["push"] == {"path": "pushed", "n": 0, "ok": True, "tags": []}
    assert pg.cli("memory", "set", "global", "later", '"after the copy"').returncode == 0  # identities moved past the copied ids

    # and back home: PostgreSQL -> a new SQLite file, the resumed run included
    back = tmp_path / "back" / "smithers.db"
    home = subprocess.run(
        [sys.executable, "-m", "smithers", "db", "copy", "--from", pg_url, "--to", str(back)], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )
    assert home.returncode == 0, home.stderr
    for table in ("_smithers_runs", "_smithers_events", "out", "_smithers_memory_facts"):
        assert _rows(str(back), table) == _rows(pg_url, table), table


def test_db_copy_into_postgres_refuses_data_and_a_failure_leaves_it_unchanged(tmp_path: Path, pg_url: str) -> None:
    db, _finished, _waiting = _seeded_sqlite(tmp_path)
    target = Store.open(pg_url)  # an empty, migrated database with a trap: an `out` table no copied row can fill
    try:
        target._ddl('CREATE TABLE "out" (run_id TEXT NOT NULL, node_id TEXT NOT NULL, iteration INTEGER NOT NULL, '
                    'trap TEXT NOT NULL, PRIMARY KEY (run_id, node_id, iteration))')
    finally:
        target.close()
    failed = subprocess.run(
        [sys.executable, "-m", "smithers", "db", "copy", "--from", str(db), "--to", pg_url], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "copying table out failed: " in failed.stderr and "; nothing was written" in failed.stderr
    check = Store.open(pg_url, readonly=True)
    try:
        assert all(n == 0 for n in check.table_counts().values()), check.table_counts()  # the runs, events, ... went too
    finally:
        check.close()

    dest = PgProject(tmp_path, pg_url)
    dest_store = Store.open(pg_url)
    try:
        dest_store._ddl('DROP TABLE "out"')
    finally:
        dest_store.close()
    assert dest.cli("db", "copy", "--from", str(db), "--to", pg_url).returncode == 0
    refused = dest.cli("db", "copy", "--from", str(db), "--to", pg_url)
    assert refused.returncode == 4 and "is not empty: it holds 2 run(s)" in refused.stderr
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM _smithers_runs").fetchone()[0] == 2


# -- the MCP server -------------------------------------------------------------------------------


def test_the_mcp_server_runs_and_reads_on_postgres(pg: PgProject) -> None:
    import anyio
    from mcp_client import connect

    async def scenario() -> None:
        async with connect(pg.root, pg.url) as client:  # type: ignore[arg-type]  # --db takes the URL as it is
            started = await client.data("run_workflow", spec="wf.py")
            run_id = started["run_id"]
            assert Path(started["log"]).is_relative_to(pg.root / ".smithers" / "runs")  # home: the server's folder
            detail = await client.until("get_run", lambda d: d["status"] == "waiting-approval", run_id=run_id)
            assert {n["id"]: n["status"] for n in detail["nodes"]}["fan3"] == "finished"
            assert [r["run_id"] for r in (await client.data("list_runs"))["runs"]] == [run_id]
            await client.data("approve", run_id=run_id, node_id="ship")
            await client.until("get_run", lambda d: d["status"] == "finished", run_id=run_id)

    anyio.run(scenario)
    assert _outputs(pg.json("inspect", pg.json("ps")[0]["run_id"]))["push"] == {"path": "pushed", "n": 0}
