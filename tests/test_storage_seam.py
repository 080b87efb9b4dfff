"""The one storage seam: the waiting state is one transaction, a render never writes, output
reads fail loudly on anything but a missing table, the connection settings, metrics that
subscribe to commits, and the store importing nothing above it."""

from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import BaseModel

import smithers
from smithers.engine.state import RunState
from smithers.errors import StorageError, UserError
from smithers.observability.metrics import MetricsCollector, observe_transaction
from smithers.states import EventType, RunStatus
from smithers.storage import store as store_module
from smithers.storage.store import Store

STORAGE = Path(smithers.__file__).parent / "storage"

TIMER = """
from pydantic import BaseModel
from smithers import Sequence, Task, Timer, workflow

class Out(BaseModel):
    n: int

@workflow
def timed(ctx):
    return Sequence(Task("before", output=Out, value={"n": 1}), Timer("cool", duration="1h"), Task("after", output=Out, value={"n": 2}))
"""

STATIC = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Verdict(BaseModel):
    score: int

@workflow
def judged(ctx):
    return Sequence(Task("judge", output=Verdict, value={"score": 7}))
"""


class Verdict(BaseModel):
    score: int


def _waiting_events(project, run_id: str) -> list[dict]:
    rows = project.query("SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = 'RunWaiting' ORDER BY seq", (run_id,))
    return [json.loads(r[0]) for r in rows]


def test_the_waiting_status_its_event_and_wake_at_agree(project, run_id_of):
    project.write("wf.py", TIMER)
    up = project.cli("up", "wf.py", "-q")
    assert up.returncode == 3, up.stdout + up.stderr
    run_id = run_id_of(up.stdout)
    ((status, wake_at),) = project.query("SELECT status, wake_at_ms FROM _smithers_runs WHERE run_id = ?", (run_id,))
    ((fires,),) = project.query("SELECT fires_at_ms FROM _smithers_timers WHERE run_id = ?", (run_id,))
    (waiting,) = _waiting_events(project, run_id)
    assert status == RunStatus.WAITING_TIMER == waiting["status"]
    assert wake_at == fires == waiting["wake_at_ms"]


def test_set_run_writes_the_wake_up_time_with_the_status_or_not_at_all(db_target, tmp_path):
    store = Store.open(db_target)
    with store.tx("r1") as tx:
        tx.create_run(workflow="w", workflow_spec="w.py", input_json="{}", source_json="{}", cwd=str(tmp_path), max_concurrency=1)
    with pytest.raises(RuntimeError), store.tx("r1") as tx:  # a crash inside the commit: neither is written
        tx.set_run(RunStatus.WAITING_TIMER, wake_at_ms=123)
        tx.event(EventType.RUN_WAITING, status=RunStatus.WAITING_TIMER, wake_at_ms=123)
        raise RuntimeError("killed mid-transaction")
    assert (store.get_run("r1")["status"], store.get_run("r1")["wake_at_ms"]) == (RunStatus.RUNNING, None)
    assert store.events("r1") == []
    with store.tx("r1") as tx:
        tx.set_run(RunStatus.WAITING_TIMER, wake_at_ms=123)
    assert store.get_run("r1")["wake_at_ms"] == 123
    with store.tx("r1") as tx:  # leaving the waiting status clears the wake-up time with it
        tx.set_run(RunStatus.RUNNING)
    assert store.get_run("r1")["wake_at_ms"] is None
    store.close()


def test_a_render_reading_a_missing_table_writes_nothing(project, inproc):
    project.write("wf.py", STATIC)
    outcome = inproc.up("wf.py")
    assert outcome.status == RunStatus.FINISHED
    with sqlite3.connect(project.db) as conn:
        conn.execute("DROP TABLE verdict")
    store = project.store()
    try:
        state = RunState(store, outcome.run_id, (Verdict,))
        changes = store._conn.total_changes
        assert state.output("judge", None) is None  # a missing table is "no output"
        assert store._conn.total_changes == changes and not store._conn.in_transaction
    finally:
        store.close()
    with sqlite3.connect(project.db) as conn:  # the read did not create the table behind the user's back
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'verdict'").fetchone()[0] == 0


def test_reading_outputs_raises_on_any_error_but_a_missing_table(project, inproc):
    project.write("wf.py", STATIC)
    outcome = inproc.up("wf.py")
    with sqlite3.connect(project.db) as conn:  # a table of that name that is not an output table
        conn.execute("DROP TABLE verdict")
        conn.execute("CREATE TABLE verdict (score INTEGER)")
    store = project.store()
    try:
        with pytest.raises(StorageError, match="verdict"):
            store.read_output_rows("verdict", outcome.run_id, "judge")
        with pytest.raises(StorageError):  # a render taking the "no output" branch here would mount the wrong plan
            RunState(store, outcome.run_id, (Verdict,)).output("judge", None)
        assert store.read_output_rows("never_created", outcome.run_id, "judge") == []
    finally:
        store.close()


def test_wal_and_synchronous_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("SMITHERS_SYNCHRONOUS", raising=False)
    store = Store.open(tmp_path / "a.db")
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 1  # NORMAL
    store.close()
    monkeypatch.setenv("SMITHERS_SYNCHRONOUS", "FULL")
    store = Store.open(tmp_path / "b.db")
    assert store.pragma("synchronous") == 2  # FULL: an fsync per commit
    store.close()
    monkeypatch.setenv("SMITHERS_SYNCHRONOUS", "sometimes")
    with pytest.raises(UserError, match=r"(?s)SMITHERS_SYNCHRONOUS='sometimes'.*NORMAL, FULL"):
        Store.open(tmp_path / "c.db")
    assert not (tmp_path / "c.db").exists()


def test_a_bad_synchronous_setting_exits_4_naming_the_variable(project):
    project.write("wf.py", STATIC)
    result = project.cli("up", "wf.py", "-q", env=project.env(SMITHERS_SYNCHRONOUS="OFF"))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "SMITHERS_SYNCHRONOUS" in result.stderr


def test_storage_imports_nothing_above_it():
    allowed = {"smithers.errors", "smithers.states"}
    offenders = []
    for path in sorted(STORAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = "smithers." + (node.module or "") if node.level == 2 else "smithers.storage"
                if not target.startswith("smithers.storage") and target not in allowed:
                    offenders.append(f"{path.name}: from {'.' * node.level}{node.module or ''} import ...")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [f"{path.name}: import {n}" for n in names if n.startswith("smithers") and not n.startswith("smithers.storage")
                              and n not in allowed]
    assert offenders == []


def test_metrics_subscribe_to_store_commits(db_target):
    assert observe_transaction in store_module._commit_observers  # registered by importing the metrics module
    seen: list[float] = []
    store_module.add_commit_observer(seen.append)
    try:
        store = Store.open(db_target)
        with store.tx("r1") as tx:
            tx.event(EventType.RUN_STARTED)
        with pytest.raises(RuntimeError), store.tx("r1") as tx:  # a rolled-back transaction is not a commit
            raise RuntimeError
        store.close()
    finally:
        store_module.remove_commit_observer(seen.append)
    assert len(seen) == 1 and seen[0] >= 0


def test_the_collector_forgets_attempts_that_never_end(tmp_path):
    store = Store.open(tmp_path / "smithers.db")
    with store.tx("r1") as tx:
        for n in range(50):
            tx.event(EventType.NODE_STARTED, node_id=f"t{n}", iteration=0, attempt=1)
            tx.event(EventType.TOOL_CALL_STARTED, node_id=f"t{n}", iteration=0, attempt=1, call_id=f"c{n}", tool="bash")
        tx.event(EventType.NODE_FINISHED, node_id="t49", iteration=0, attempt=1)
    collector = MetricsCollector(store.path)
    collector.max_open_starts = 10
    collector.scrape()
    assert len(collector._attempt_started) <= 10 and len(collector._node_started) <= 10 and len(collector._tool_started) <= 10
    assert collector.attempts_started.values[()] == 50
    assert sum(collector.attempt_duration.series[("finished",)][0]) == 1  # a start still remembered is still measured
    collector.close()
    store.close()


CHAIN = """
from pydantic import BaseModel
from smithers import ContinueAsNew, Sequence, Task, workflow

class Count(BaseModel):
    gen: int

@workflow
def chain(ctx):
    gen = (ctx.carried or {}).get("gen", 1)
    return Sequence(Task("work", output=Count, value={"gen": gen}), gen < 3 and ContinueAsNew({"gen": gen + 1}))
"""


def test_a_chains_links_are_not_counted_as_resumed_runs(project, run_id_of):
    project.write("chain.py", CHAIN)
    result = project.cli("up", "chain.py", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    collector = MetricsCollector(project.db)
    collector.scrape()
    assert collector.runs_started.values[()] == 3  # each link is a run
    assert collector.runs_resumed.values[()] == 0  # none was resumed
    assert collector.runs_ended[RunStatus.CONTINUED].values[()] == 2
    collector.close()
    # a real resume of the last link still counts
    store = project.store()
    last = store.run_chain(run_id_of(result.stdout))[-1]
    store.close()
    resumed = project.cli("resume", last, "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    collector = MetricsCollector(project.db)
    collector.scrape()
    assert collector.runs_resumed.values[()] == 1
    collector.close()
