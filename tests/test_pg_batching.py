"""Fewer statements per checkpoint (issue 9, the workers' fan-out on PostgreSQL): deferred one-row
INSERTs into one table merge into one multi-row INSERT, a render's new nodes go in a few
multi-row statements, an attempt's metadata rides with its finish, a worker's result is one
statement. Each is checked for what it must keep: order against statements that touch the same
table, exactly the rows that were new, the same rows read back on both backends."""

from __future__ import annotations

import json
import sqlite3
from types import SimpleNamespace
from typing import Any

import pytest

from smithers.states import AttemptStatus, EventType
from smithers.storage.store import Store


def _run(store: Store, run_id: str = "r1") -> None:
    with store.tx(run_id) as tx:
        tx.create_run(workflow="w", workflow_spec="w.py", input_json="{}", source_json="{}", cwd="/tmp", max_concurrency=4)
        tx.event(EventType.RUN_STARTED)


def _spy(store: Store) -> list[str]:
    """Every SQL text the PostgreSQL adapter sends, one entry per statement."""
    sent: list[str] = []
    conn: Any = store._conn
    original = conn._run

    def spy(connection: Any, query: str, params: Any, ahead: list[str] | None = None) -> Any:
        sent.extend([*(ahead or []), query])
        return original(connection, query, params, ahead)

    conn._run = spy
    return sent


def test_an_attempt_inserted_and_finished_in_one_transaction_ends_finished(store: Store) -> None:
    """The finish's UPDATE names the attempts table, so the held INSERT goes first."""
    _run(store)
    with store.tx("r1") as tx:
        for n in range(3):
            tx.insert_pending_nodes([(f"n{n}", 0, "compute", "t", None, None)])
            tx.start_attempt(f"n{n}", 0, 1, {"mode": "compute"})
            tx.event(EventType.NODE_STARTED, node_id=f"n{n}", iteration=0, attempt=1)
        tx.finish_attempt("n1", 0, 1, AttemptStatus.FINISHED, meta={"mode": "compute", "worker": "w9"})
        tx.start_attempt("n1", 0, 2)
    attempts = {(a["node_id"], a["attempt"]): a for a in store.attempts("r1")}
    assert attempts[("n1", 1)]["status"] == AttemptStatus.FINISHED
    assert json.loads(attempts[("n1", 1)]["meta_json"]) == {"mode": "compute", "worker": "w9"}
    assert attempts[("n0", 1)]["status"] == attempts[("n2", 1)]["status"] == AttemptStatus.RUNNING
    assert ("n1", 2) in attempts
    assert [e["seq"] for e in store.events("r1")] == [1, 2, 3, 4]


def test_a_finish_without_meta_keeps_the_attempts_meta(store: Store) -> None:
    _run(store)
    with store.tx("r1") as tx:
        tx.insert_pending_nodes([("a", 0, "compute", "t", None, None)])
        tx.start_attempt("a", 0, 1, {"mode": "compute"})
    with store.tx("r1") as tx:
        tx.finish_attempt("a", 0, 1, AttemptStatus.FAILED, error={"type": "X", "message": "m"})
    (attempt,) = store.attempts("r1")
    assert attempt["status"] == AttemptStatus.FAILED
    assert json.loads(attempt["meta_json"]) == {"mode": "compute"}


def test_pending_nodes_go_in_chunks_and_say_which_were_new(store: Store) -> None:
    _run(store)
    with store.tx("r1") as tx:
        assert tx.insert_pending_nodes([("a", 0, "compute", "t", "A", None)]) == {("a", 0)}
    nodes = [(f"n{i}", i % 3, "compute", "t", None, {"i": i}) for i in range(250)] + [("a", 0, "compute", "t", "other", None)]
    with store.tx("r1") as tx:
        new = tx.insert_pending_nodes(nodes)
    assert new == {(f"n{i}", i % 3) for i in range(250)}
    rows = store.nodes("r1")
    assert [r["node_id"] for r in rows] == ["a", *[f"n{i}" for i in range(250)]]  # insertion order kept
    assert rows[0]["label"] == "A"  # the existing row is left alone
    assert json.loads(rows[7]["meta_json"]) == {"i": 6}


def test_a_batch_sends_its_events_and_new_rows_as_one_insert_per_table(pg_url: str) -> None:
    store = Store.open(pg_url)
    try:
        _run(store)
        with store.tx("r1") as tx:
            tx.set_owner(SimpleNamespace(id="owner", host="h", pid=1), keep_cancel=False)
        sent = _spy(store)
        with store.batch("r1", owner_id="owner"):  # the fence reads the run's newest seq: no read inside after it
            for n in range(5):
                with store.tx("r1") as tx:
                    tx.start_attempt(f"n{n}", 0, 1, {"mode": "compute"})
                    tx.set_node(f"n{n}", 0, "running", attempts=1)
                    tx.event(EventType.NODE_STARTED, node_id=f"n{n}", iteration=0, attempt=1)
                    tx.enqueue_attempt(f"n{n}", 0, 1, "compute", "owner", 1)
                    store.notify("smithers_queue", "r1")
        inserts = [s for s in sent if s.lstrip().upper().startswith("INSERT")]
        assert sorted(s.split("(")[0].split()[-1] for s in inserts) == ["_smithers_attempts", "_smithers_events", "_smithers_task_queue"]
        assert all(s.count("'r1'") == 5 for s in inserts)
        assert len(store.queue_rows("r1")) == 5
        assert [e["seq"] for e in store.events("r1")] == [1, 2, 3, 4, 5, 6]
        ids = [row[0] for row in store.events_after_rowid(0, 100)]
        assert len(ids) == 6 and ids == sorted(ids)
    finally:
        store.close()


def test_a_failed_merged_insert_rolls_the_whole_transaction_back(store: Store) -> None:
    _run(store)
    with pytest.raises(sqlite3.IntegrityError), store.tx("r1") as tx:
        tx.start_attempt("a", 0, 1)
        tx.event(EventType.NODE_STARTED, node_id="a", iteration=0, attempt=1)
        tx.start_attempt("a", 0, 1)  # the same key twice: the (merged) insert fails
        tx.count_events(EventType.NODE_STARTED)  # a statement whose answer is read sends the held rows
    assert store.attempts("r1") == []
    assert [e["seq"] for e in store.events("r1")] == [1]
    with store.tx("r1") as tx:  # the store goes on
        tx.start_attempt("a", 0, 1)
    assert len(store.attempts("r1")) == 1


def test_a_workers_results_written_together_keep_only_its_own_claims(store: Store) -> None:
    """finish_claimed_many: one statement on PostgreSQL; a row another worker holds (or nobody
    holds any more) is left alone and not reported kept."""
    _run(store)
    with store.tx("r1") as tx:
        tx.set_owner(SimpleNamespace(id="owner", host="h", pid=1), keep_cancel=False)
        for n in range(4):
            tx.enqueue_attempt(f"n{n}", 0, 1, "compute", "owner", 1)
    claimed = store.claim_attempts("w1", 3, 30_000)
    assert len(claimed) == 3
    mine = [(r["run_id"], r["node_id"], r["iteration"], r["attempt"]) for r in claimed]
    other = next((f"n{n}", 0, 1) for n in range(4) if ("r1", f"n{n}", 0, 1) not in mine)
    assert store.claim_attempts("w2", 1, 30_000)[0]["node_id"] == other[0]
    results = [
        (mine[0], True, '{"i": 0}', None, '{"worker": "w1"}', None),
        (mine[1], False, None, '{"type": "E", "message": "it\'s broken"}', None, '{"beat": 1}'),
        (("r1", other[0], 0, 1), True, '{"i": 9}', None, None, None),  # w2's claim
        (("r1", "missing", 0, 1), True, "{}", None, None, None),
    ]
    assert store.finish_claimed_many("w1", results) == {mine[0], mine[1]}
    rows = {r["node_id"]: r for r in store.queue_rows("r1")}
    assert rows[mine[0][1]]["status"] == "finished" and json.loads(rows[mine[0][1]]["result_json"]) == {"i": 0}
    assert rows[mine[0][1]]["meta_json"] == '{"worker": "w1"}'
    assert rows[mine[1][1]]["status"] == "failed" and json.loads(rows[mine[1][1]]["error_json"])["message"] == "it's broken"
    assert rows[mine[1][1]]["heartbeat_json"] == '{"beat": 1}'
    assert rows[mine[2][1]]["status"] == "claimed"  # not in this batch
    assert rows[other[0]]["status"] == "claimed" and rows[other[0]]["result_json"] is None
    assert store.finish_claimed_many("w1", []) == set()
