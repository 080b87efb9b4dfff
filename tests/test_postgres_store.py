"""The store on both backends (DESIGN §10.2): the same public methods and semantics on a SQLite
file and on a real PostgreSQL server (tests/pgserver.py). Transactions with their events, gapless
per-run seq (even with several processes writing one run), commit-ordered global event ids,
leases and fencing, waits, cron claims, cache, history, migrations translated generically, output
tables as real tables, a kill inside a commit, LISTEN/NOTIFY."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from smithers.errors import LeaseLostError, RunOwnedError, StorageError
from smithers.states import EventType, RunStatus
from smithers.storage import schema
from smithers.storage.lease import Owner, claim_run
from smithers.storage.store import Store

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _run(store: Store, run_id: str = "r1", **kw: object) -> None:
    with store.tx(run_id) as tx:
        tx.create_run(workflow="w", workflow_spec="w.py", input_json="{}", source_json="{}", cwd="/tmp", max_concurrency=4, **kw)  # type: ignore[arg-type]
        tx.event(EventType.RUN_STARTED)


def _seqs(store: Store, run_id: str) -> list[int]:
    return [e["seq"] for e in store.events(run_id)]


class Score(BaseModel):
    value: float
    passed: bool
    note: str
    tags: list[str]


def _score_v2() -> type[BaseModel]:
    class Score(BaseModel):  # the same table, one field more
        value: float
        passed: bool
        note: str
        tags: list[str]
        big: int

    return Score


# -- the shared contract ---------------------------------------------------------------------------


def test_every_store_names_its_dialect_target_label_and_home(db_target: str, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMITHERS_HOME", str(tmp_path))
    store = Store.open(db_target)
    try:
        assert store.target == db_target
        if db_target.startswith("postgresql://"):
            assert store.dialect == "postgresql" and store.home == tmp_path.resolve() and store.label == db_target
        else:
            assert store.dialect == "sqlite" and store.home == Path(db_target).parent and store.label == db_target
    finally:
        store.close()


def test_a_bad_url_is_a_storage_error_without_the_password(pg_server) -> None:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{pg_server.port}/no_such_database"
    with pytest.raises(StorageError) as caught:
        Store.open(url)
    assert "no_such_database" in caught.value.message and "s3cret" not in caught.value.message
    assert "***" in caught.value.message


def test_default_db_target_takes_a_url_from_smithers_db(monkeypatch, tmp_path: Path) -> None:
    from smithers.storage import default_db_target

    monkeypatch.setenv("SMITHERS_DB", "postgresql://u@h/db")
    assert default_db_target() == "postgresql://u@h/db"
    monkeypatch.setenv("SMITHERS_DB", str(tmp_path / "x.db"))
    assert default_db_target() == str(tmp_path / "x.db")


# -- transactions, events, seq ---------------------------------------------------------------------


def test_a_state_change_commits_whole_with_its_events_or_not_at_all(store: Store) -> None:
    _run(store)
    with pytest.raises(RuntimeError), store.tx("r1") as tx:
        tx.set_run(RunStatus.WAITING_TIMER, wake_at_ms=123)
        tx.event(EventType.RUN_WAITING, status=RunStatus.WAITING_TIMER, wake_at_ms=123)
        raise RuntimeError("killed mid-transaction")
    assert (store.get_run("r1")["status"], store.get_run("r1")["wake_at_ms"]) == (RunStatus.RUNNING, None)
    assert _seqs(store, "r1") == [1]
    with store.tx("r1") as tx:
        tx.set_run(RunStatus.FINISHED, finished=True)
        tx.event(EventType.RUN_FINISHED)
    run = store.get_run("r1")
    assert run["status"] == RunStatus.FINISHED and run["finished_at_ms"] == run["updated_at_ms"]
    assert _seqs(store, "r1") == [1, 2] and store.last_event_seq("r1") == 2
    assert store.last_event_of("r1", (EventType.RUN_FINISHED,))["seq"] == 2


def test_nodes_keep_their_insertion_order_and_rows_have_the_same_keys(store: Store) -> None:
    _run(store)
    with store.tx("r1") as tx:
        for node in ("zeta", "alpha", "mid"):
            assert tx.insert_pending_node(node, 0, "task", "out", None)
        assert not tx.insert_pending_node("alpha", 0, "task", "out", None)  # ON CONFLICT DO NOTHING
        tx.start_attempt("alpha", 0, 1, meta={"agent": "x"})
        tx.finish_attempt("alpha", 0, 1, "finished")
        tx.set_node("alpha", 0, "finished", attempts=1)
    nodes = store.nodes("r1")
    assert [n["node_id"] for n in nodes] == ["zeta", "alpha", "mid"]
    assert "rowid" not in nodes[0] and set(nodes[0]) >= {"run_id", "node_id", "iteration", "status", "meta_json", "waiting_since_ms"}
    assert store.attempts("r1")[0]["status"] == "finished"
    assert store.gauges()["queue_depth"] == 2
    assert store.count_runs() == 1 and store.count_runs(RunStatus.RUNNING) == 1


def test_events_after_rowid_follow_commit_order(store: Store, db_target: str) -> None:
    """The global tail (metrics, SSE) must not skip an event committed late by a concurrent
    transaction: ids are handed out in commit order."""
    _run(store, "a")
    _run(store, "b")
    start = store.newest_event_rowid()
    other = Store.open(db_target)
    in_tx, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with other.tx("a") as tx:
            tx.event(EventType.NODE_PENDING, node_id="slow", iteration=0)
            in_tx.set()
            release.wait(10)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert in_tx.wait(10)
        if store.dialect == "postgresql":  # SQLite: one writer at a time, the second would wait
            with store.tx("b") as tx:
                tx.event(EventType.NODE_PENDING, node_id="fast", iteration=0)
            seen = store.events_after_rowid(start, 10)
            assert [r[4] for r in seen] == ["fast"]
            cursor = seen[-1][0]
        else:
            cursor = start
    finally:
        release.set()
        thread.join(10)
        other.close()
    later = store.events_after_rowid(cursor, 10)
    assert [r[4] for r in later][-1] == "slow"  # not skipped: its id is after the cursor
    everything = store.events_after_rowid(0, 100)
    assert [r[0] for r in everything] == sorted(r[0] for r in everything) and len({r[0] for r in everything}) == len(everything)


WRITER = """
import sys
sys.path.insert(0, {src!r})
from smithers.storage.store import Store
store = Store.open({target!r})
for i in range({n}):
    with store.tx("shared") as tx:
        tx.event("NodePending", node_id=f"{{sys.argv[1]}}-{{i}}", iteration=0)
        tx.event("NodeStarted", node_id=f"{{sys.argv[1]}}-{{i}}", iteration=0)
store.close()
"""


def test_processes_writing_one_run_at_once_keep_its_seq_gapless(store: Store, db_target: str, tmp_path: Path) -> None:
    _run(store, "shared")
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(src=SRC, target=db_target, n=40))
    procs = [subprocess.Popen([sys.executable, str(script), f"w{k}"], stderr=subprocess.PIPE, text=True) for k in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    seqs = _seqs(store, "shared")
    assert seqs == list(range(1, 1 + 1 + 3 * 40 * 2))
    events = store.events("shared")
    for pending, started in zip(events[1::2], events[2::2], strict=True):  # each transaction's events stay together
        assert pending["node_id"] == started["node_id"]


# -- leases and fencing ----------------------------------------------------------------------------


def test_a_live_owner_is_refused_and_a_lost_lease_fences_writes(store: Store) -> None:
    _run(store)
    me = Owner.this_process()
    claim_run(store, "r1", me)
    thief = Owner(id="thief.example:1:0:abcd", host="thief.example", pid=1)
    with pytest.raises(RunOwnedError):
        claim_run(store, "r1", thief)
    with store.tx("r1") as tx:
        tx.set_owner(thief, keep_cancel=False)
    with pytest.raises(LeaseLostError), store.tx("r1", owner_id=me.id) as tx:
        tx.event(EventType.NODE_PENDING, node_id="x", iteration=0)
    assert _seqs(store, "r1") == [1]
    with store.tx("r1") as tx:
        assert tx.renew_lease(thief.id) == (True, False)
        tx.request_cancel()
        assert tx.renew_lease(thief.id) == (True, True)
        tx.release_owner(thief.id)
    assert store.get_run("r1")["owner_id"] is None


# -- waits -----------------------------------------------------------------------------------------


def test_approvals_human_requests_signals_and_timers(store: Store) -> None:
    _run(store)
    with store.tx("r1") as tx:
        tx.insert_pending_node("gate", 0, "approval", "approval", None)
        tx.mark_waiting("gate", 0, "waiting-approval", meta={"signal": "go", "schema": {"type": "object"}})
        tx.request_approval("gate", 0, {"title": "ok?"}, gate=True)
        tx.request_human("h1", "gate", 0, "why?", {"type": "string"})
        tx.create_timer("gate", 0, 5_000)
        assert tx.add_signal("go", None, '{"a": 1}', "k1", "me") == 1
        assert tx.add_signal("go", "c1", '{"a": 2}', "k2", None) == 2
        assert tx.pending_signal_with_key("k1") == 1
    assert store.count_requested_approvals("r1", "gate") == 1
    assert store.requested_approvals("r1")[0]["node_status"] == "waiting-approval"
    assert store.requested_approvals_of_live_runs()[0]["node_id"] == "gate"
    assert store.next_signal("r1", "go", None) == (1, {"a": 1})  # `? IS NULL` binds without a type
    assert store.next_signal("r1", "go", "c1") == (2, {"a": 2})
    assert store.signal_schema("r1", "go") == {"type": "object"}
    assert store.timer_for("r1", "gate", 0) == 5_000
    with store.tx("r1") as tx:
        assert tx.record_decision("gate", 0, approved=True, decision={"note": "fine"}, by="ann")
        assert not tx.record_decision("gate", 0, approved=False, decision={}, by="bob")
        assert tx.answer_human("h1", "because", by="ann")
        tx.consume_signal(1, "gate", 0)
        tx.fire_timer("gate", 0, 6_000)
    assert store.approval_row("r1", "gate", 0)["status"] == "approved"
    assert store.decided_approval("r1") == {"node_id": "gate", "iteration": 0, "status": "approved"}
    assert store.answered_human_request("r1")["request_id"] == "h1"
    assert store.human_request_status("h1") == "answered"
    assert store.next_signal("r1", "go", None) is None


# -- cron, cache, scores, audit, memory threads -------------------------------------------------------


def test_one_cron_claim_wins(store: Store, db_target: str) -> None:
    with store.tx() as tx:
        tx.insert_schedule(
            schedule_id="s1", name="n", pattern="* * * * *", timezone="UTC", workflow_spec="w.py", workflow_name="w", input_json="{}",
            cwd="/tmp", max_concurrency=1, next_run_at_ms=1000,
        )
    other = Store.open(db_target)
    try:
        wins = []
        for s, run_id in ((store, "ra"), (other, "rb")):
            with s.tx(run_id) as tx:
                wins.append(tx.claim_tick("s1", expected_next_ms=1000, fired_for_ms=1000, next_run_at_ms=2000, run_id=run_id))
    finally:
        other.close()
    assert wins == [True, False]
    assert store.schedule("s1")["last_run_id"] == "ra" and store.schedule("s1")["enabled"] is True
    assert [s["id"] for s in store.due_schedules(5000)] == ["s1"]


def test_cache_scores_audit_and_threads(store: Store) -> None:
    _run(store)
    with store.tx("r1") as tx:
        tx.put_cache_entry("k", workflow="w", node_id="n", output_table="t", output_json='{"x":1}', output_schema_hash="h",
                           expires_at_ms=None)
        tx.note_cache_hit("k")
        assert tx.record_score("n", 0, 1, "len", value=0.5, reason=None, meta={"m": 1}, error=None, latency_ms=3)
        assert not tx.record_score("n", 0, 1, "len", value=0.9, reason=None, meta=None, error=None, latency_ms=3)
        first = tx.record_audit("rewind", actor="ann", detail={"frame_no": 3})
        second = tx.record_audit("revert", actor="ann", detail={})
        assert tx.memory_append_message("global", "t", "user", "hi") < tx.memory_append_message("global", "t", "assistant", "yo")
    assert second == first + 1
    assert store.cache_entry("k", 0)["output_json"] == '{"x":1}'
    assert store.cache_entries()[0]["hits"] == 1 and store.cache_entries()[0]["output_bytes"] == 7
    assert store.scores("r1")[0]["value"] == 0.5 and store.scores("r1")[0]["meta"] == {"m": 1}
    assert [a["action"] for a in store.audit_rows("r1")] == ["rewind", "revert"]
    assert [m["content"] for m in store.memory_messages("global", "t")] == ["hi", "yo"]
    assert store.memory_threads("global")[0]["messages"] == 2
    with store.tx() as tx:
        assert tx.clear_cache(workflow="w") == 1


# -- output tables and history ---------------------------------------------------------------------


def test_output_tables_are_real_tables_that_grow_columns(store: Store) -> None:
    _run(store)
    table = store.output_table(Score)
    with store.tx("r1") as tx:
        tx.write_output(table, "judge", 0, Score(value=0.25, passed=True, note="50% ok", tags=["a"]))
    score_v2 = _score_v2()
    wider = store.output_table(score_v2)  # a new field: ADD COLUMN, nothing dropped
    with store.tx("r1") as tx:
        tx.write_output(wider, "judge", 1, score_v2(value=1.5, passed=False, note="n", tags=[], big=1_796_000_000_000))
    rows = store.read_output_rows("score", "r1", "judge")
    assert next(table.decode(r) for r in rows) == Score(value=0.25, passed=True, note="50% ok", tags=["a"])
    assert wider.decode(rows[1]).big == 1_796_000_000_000  # type: ignore[attr-defined]
    assert list(rows[0]) == ["run_id", "node_id", "iteration", "value", "passed", "note", "tags", "big"]
    assert store.read_output_rows("never_created", "r1", "judge") == []
    assert store.run_output_rows("never_created", "r1") is None


def test_history_writes_go_on_past_a_missing_table_inside_their_transaction(store: Store) -> None:
    _run(store)
    _run(store, "fork")
    table = store.output_table(Score)
    with store.tx("r1") as tx:
        tx.insert_pending_node("judge", 0, "task", "score", None)
        tx.write_output(table, "judge", 0, Score(value=1, passed=True, note="", tags=[]))
        tx.set_node("judge", 0, "finished")
    with store.tx("fork") as tx:
        assert not tx.copy_output_from("r1", "gone_table", "judge", 0)  # a missing table: False, the transaction goes on
        assert tx.copy_output_from("r1", "score", "judge", 0)
        tx.copy_node_from("r1", "judge", 0, "finished")
        tx.event(EventType.NODE_FINISHED, node_id="judge", iteration=0)
    assert len(store.read_output_rows("score", "fork", "judge")) == 1
    with store.tx("r1") as tx:
        assert tx.reset_node("judge", 0, "gone_table") is None
        removed = tx.reset_node("judge", 0, "score")
        tx.event(EventType.NODE_PENDING, node_id="judge", iteration=0)
    assert removed is not None and removed["passed"] == 1
    assert store.nodes("r1", "judge")[0]["status"] == "pending" and store.read_output_rows("score", "r1", "judge") == []
    with store.tx("r1") as tx:
        tx.add_frame(0, True, {"put": [], "del": []})
        tx.add_frame(1, False, {"n": [["judge", 0, "finished", 1]]})
        assert tx.next_frame_no() == 2
    assert store.frame_count("r1") == 2 and [f["frame_no"] for f in store.frames_from_keyframe("r1", 1)] == [0, 1]


# -- migrations --------------------------------------------------------------------------------------


def test_a_new_portable_migration_works_on_both_without_extra_code(db_target: str, monkeypatch) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, (99, "a later feature", [
        """CREATE TABLE _smithers_later (
            id TEXT PRIMARY KEY,
            n INTEGER NOT NULL,
            ratio REAL,
            blob BLOB,
            at_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX _smithers_later_at ON _smithers_later (at_ms)",
        "ALTER TABLE _smithers_runs ADD COLUMN later_ms INTEGER",
    ])])
    import smithers.storage.store as store_module

    monkeypatch.setattr(store_module, "MIGRATIONS", schema.MIGRATIONS)
    store = Store.open(db_target)
    try:
        conn = store._conn
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO _smithers_later (id, n, ratio, blob, at_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            ("a", 2**40, 0.5, b"\x00\x01", 1_796_000_000_000),
        )
        conn.execute("COMMIT")
        assert conn.execute("SELECT n, ratio, blob, at_ms FROM _smithers_later").fetchall() == [
            (2**40, 0.5, b"\x00\x01", 1_796_000_000_000)
        ]
        versions = [r[0] for r in conn.execute("SELECT version FROM _smithers_migrations ORDER BY version")]
        assert versions == [m[0] for m in schema.MIGRATIONS]
    finally:
        store.close()
    Store.open(db_target).close()  # a second open applies nothing twice


OPENER = """
import sys
sys.path.insert(0, {src!r})
from smithers.storage.store import Store
Store.open({target!r}).close()
"""


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(db_target: str, tmp_path: Path) -> None:
    script = tmp_path / "opener.py"
    script.write_text(OPENER.format(src=SRC, target=db_target))
    procs = [subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = Store.open(db_target)
    try:
        versions = [r[0] for r in store._conn.execute("SELECT version FROM _smithers_migrations ORDER BY version")]
        assert versions == [m[0] for m in schema.MIGRATIONS]
    finally:
        store.close()


# -- whole runs, in process ------------------------------------------------------------------------

WORKFLOW = """
import asyncio
from pydantic import BaseModel
from smithers import Loop, Parallel, Sequence, Task, workflow

class Out(BaseModel):
    n: int
    ok: bool = True

async def work(tc):
    await asyncio.sleep(0)
    return {"n": len(tc.node_id)}

@workflow
def chain(ctx):
    return Sequence(
        Task("first", output=Out, value={"n": 1}),
        Parallel(Task("left", output=Out, run=work), Task("right", output=Out, run=work)),
        Task("last", output=Out, value={"n": (ctx.output("left").n if ctx.output("left") else 0) + 1}),
    )
"""


def test_a_workflow_runs_to_the_end_on_both(db_target: str, tmp_path: Path, monkeypatch) -> None:
    from smithers.ops import start_run

    monkeypatch.setenv("SMITHERS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wf.py").write_text(WORKFLOW)
    store = Store.open(db_target)
    try:
        outcome = start_run(str(tmp_path / "wf.py"), store=store, raw_input=None)
        assert outcome.status == RunStatus.FINISHED
        rows = {r["node_id"]: r["n"] for r in store.run_output_rows("out", outcome.run_id) or []}
        assert rows == {"first": 1, "left": 4, "right": 5, "last": 5}
        seqs = _seqs(store, outcome.run_id)
        assert seqs == list(range(1, len(seqs) + 1))
        assert {n["status"] for n in store.nodes(outcome.run_id)} == {"finished"}
    finally:
        store.close()


FAULTED = """
import sys
sys.path.insert(0, {src!r})
from smithers.ops import start_run
from smithers.storage.store import Store
store = Store.open({target!r})
start_run({spec!r}, store=store, raw_input=None, run_id="faulted")
"""


@pytest.mark.slow
def test_a_kill_inside_a_commit_leaves_whole_state_changes_and_resume_finishes(db_target: str, tmp_path: Path, monkeypatch) -> None:
    from smithers.ops import resume_run

    monkeypatch.setenv("SMITHERS_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wf.py").write_text(WORKFLOW)
    script = tmp_path / "faulted.py"
    script.write_text(FAULTED.format(src=SRC, target=db_target, spec=str(tmp_path / "wf.py")))
    env = {**os.environ, "SMITHERS_FAULT_BEFORE_COMMIT": "6", "SMITHERS_HOME": str(tmp_path)}
    killed = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    store = Store.open(db_target)
    try:
        seqs = _seqs(store, "faulted")
        assert seqs == list(range(1, len(seqs) + 1))
        finished_events = {e["node_id"] for e in store.events("faulted") if e["type"] == EventType.NODE_FINISHED}
        rows = {r["node_id"] for r in store.run_output_rows("out", "faulted") or []}
        assert rows == finished_events == {n["node_id"] for n in store.nodes("faulted") if n["status"] == "finished"}
        assert len(rows) < 4  # it did die part-way
        outcome = resume_run("faulted", store=store)
        assert outcome.status == RunStatus.FINISHED
        assert sorted(r["node_id"] for r in store.run_output_rows("out", "faulted") or []) == ["first", "last", "left", "right"]
    finally:
        store.close()


# -- wake-ups ------------------------------------------------------------------------------------------


def test_notify_wakes_a_listener_at_commit_and_sqlite_just_sleeps(store: Store) -> None:
    listener = store.listener(["smithers_test"])
    try:
        if store.dialect == "sqlite":
            started = time.monotonic()
            assert listener.wait(0.05) == [] and time.monotonic() - started >= 0.04
            with store.tx():  # a no-op, inside a transaction
                store.notify("smithers_test", "x")
            return
        with store.tx("r1"):
            store.notify("smithers_test", "one")
            store.notify("smithers_test", "two")
        got = listener.wait(5)
        got += listener.wait(0.2) if len(got) < 2 else []
        assert got == [("smithers_test", "one"), ("smithers_test", "two")]
        with pytest.raises(RuntimeError), store.tx("r1"):  # rolled back: nothing is delivered
            store.notify("smithers_test", "never")
            raise RuntimeError
        assert listener.wait(0.2) == []
    finally:
        listener.close()


def test_rows_read_back_as_sqlite_gives_them(store: Store) -> None:
    """Integers stay ints (SUM() on PostgreSQL is numeric), JSON text stays text."""
    _run(store)
    with store.tx("r1") as tx:
        tx.memory_set("global", "a", value_json=json.dumps("x"), value_text="x", expires_at_ms=None)
        tx.memory_set("global", "b", value_json=json.dumps("y"), value_text="y", expires_at_ms=None)
    (namespace,) = store.memory_namespaces(0)
    assert namespace == {"namespace": "global", "facts": 2, "messages": 0} and type(namespace["facts"]) is int


def test_a_failing_write_rolls_the_whole_transaction_back_and_the_store_goes_on(store: Store) -> None:
    """On PostgreSQL a write whose answer nobody reads travels with the next statement or the
    COMMIT: its failure still fails the transaction, whole, and the connection stays usable."""
    _run(store)
    with store.tx("r1") as tx:
        tx.insert_pending_node("n", 0, "task", "out", None)
        tx.start_attempt("n", 0, 1)
    with pytest.raises(sqlite3.IntegrityError), store.tx("r1") as tx:
        tx.event(EventType.NODE_STARTED, node_id="n", iteration=0, attempt=1)
        tx.start_attempt("n", 0, 1)  # the same attempt again: a primary-key violation
    assert _seqs(store, "r1") == [1] and len(store.attempts("r1")) == 1
    with store.tx("r1") as tx:
        tx.event(EventType.NODE_STARTED, node_id="n", iteration=0, attempt=1)
    assert _seqs(store, "r1") == [1, 2]


def test_the_ddl_translation() -> None:
    from smithers.storage.postgres import translate_ddl, translate_placeholders

    assert translate_ddl("CREATE TABLE _smithers_x (a TEXT PRIMARY KEY, n INTEGER, r REAL, b BLOB)") == [
        "CREATE TABLE _smithers_x (a TEXT PRIMARY KEY, n BIGINT, r DOUBLE PRECISION, b BYTEA,"
        "\n    rowid BIGINT GENERATED BY DEFAULT AS IDENTITY\n)"
    ]
    assert translate_ddl("CREATE TABLE _smithers_y (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)") == [
        "CREATE TABLE _smithers_y (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v TEXT)"
    ]
    assert translate_ddl('CREATE TABLE IF NOT EXISTS "user_table" ("INTEGER" INTEGER, "blob" TEXT)') == [
        'CREATE TABLE IF NOT EXISTS "user_table" ("INTEGER" BIGINT, "blob" TEXT)'  # names are never types; no rowid
    ]
    assert translate_ddl("INSERT OR IGNORE INTO t (a) VALUES (1)") == ["INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING"]
    fts = translate_ddl("CREATE VIRTUAL TABLE f USING fts5(key, value, tokenize = 'unicode61 remove_diacritics 2')")
    assert fts[0].startswith("CREATE TABLE f (rowid BIGINT PRIMARY KEY, key TEXT, value TEXT, tsv tsvector GENERATED ALWAYS AS (")
    assert "'A'" in fts[0] and "'B'" in fts[0] and fts[1] == "CREATE INDEX f_tsv ON f USING GIN (tsv)"
    with pytest.raises(ValueError, match="INSERT OR REPLACE"):
        translate_ddl("INSERT OR REPLACE INTO t (a) VALUES (1)")
    assert translate_placeholders("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '5%'") == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE '5%%'"
    )


def test_missing_server_binaries_fail_saying_what_to_install(monkeypatch) -> None:
    import pgserver

    monkeypatch.setattr(pgserver.glob, "glob", lambda pattern: [])
    with pytest.raises(pgserver.PgServerMissing, match=r"apt-get install postgresql"):
        pgserver.PgServer.start()


def test_a_lost_connection_is_replaced_between_transactions(pg_url: str) -> None:
    """A long-lived store (a worker) outlives its server connection being killed."""
    store = Store.open(pg_url)
    try:
        _run(store)
        pid = store._conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        killer = Store.open(pg_url)
        killer._conn.execute("SELECT pg_terminate_backend(?)", (pid,))
        killer.close()
        import psycopg

        with pytest.raises(psycopg.OperationalError):  # the statement on the dead connection fails
            store.get_run("r1")
        assert store.get_run("r1")["status"] == RunStatus.RUNNING  # the next one reconnects
        with store.tx("r1") as tx:
            tx.event(EventType.RUN_FINISHED)
        assert _seqs(store, "r1") == [1, 2]
    finally:
        store.close()
