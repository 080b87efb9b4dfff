"""The shared attempt queue at the storage level, on both backends (the ``store`` fixture runs
each test on SQLite and on a real PostgreSQL): claims, fencing of late results, lease expiry,
hand-back, recovery, and the LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

import time

import pytest

from smithers.states import AttemptStatus
from smithers.storage.lease import Owner
from smithers.storage.queue import DONE_CHANNEL, QUEUE_CHANNEL
from smithers.storage.store import Store


def _owned_run(store: Store, run_id: str, owner: Owner) -> None:
    with store.tx(run_id) as tx:
        tx.create_run(
            workflow="w", workflow_spec="w.py", input_json="{}", source_json="{}", cwd="/tmp", max_concurrency=8, owner=owner,
        )


def _enqueue(store: Store, run_id: str, owner: Owner, *attempts: tuple[str, int]) -> None:
    with store.tx(run_id, owner_id=owner.id) as tx:
        for node_id, attempt in attempts:
            tx.start_attempt(node_id, 0, attempt)
            tx.enqueue_attempt(node_id, 0, attempt, "compute", owner.id, 1)


def _statuses(store: Store, run_id: str) -> dict[tuple[str, int], tuple[str, str | None]]:
    return {(r["node_id"], r["attempt"]): (r["status"], r["worker"]) for r in store.queue_rows(run_id)}


def test_each_ready_attempt_is_claimed_once_oldest_first(store: Store) -> None:
    owner = Owner.this_process()
    _owned_run(store, "r1", owner)
    _enqueue(store, "r1", owner, ("a", 1), ("b", 1), ("c", 1))
    first = store.claim_attempts("w1", 2, 30_000)
    second = store.claim_attempts("w2", 5, 30_000)
    assert len(first) == 2
    assert [r["node_id"] for r in second] == [({"a", "b", "c"} - {r["node_id"] for r in first}).pop()]
    assert store.claim_attempts("w3", 5, 30_000) == []
    assert {worker for _, worker in _statuses(store, "r1").values()} == {"w1", "w2"}
    assert all(r["status"] == "claimed" and r["lease_expires_at_ms"] > r["claimed_at_ms"] for r in first + second)


def test_only_attempts_of_a_running_run_still_held_by_their_owner_are_claimed(store: Store) -> None:
    owner, other = Owner.this_process(), Owner.this_process()
    _owned_run(store, "r1", owner)
    _enqueue(store, "r1", owner, ("a", 1))
    with store.tx("r1") as tx:  # another owner took the run over: the old owner's attempts are not claimable
        tx.set_owner(other, keep_cancel=False)
    assert store.claim_attempts("w1", 5, 30_000) == []
    with store.tx("r1") as tx:
        tx.set_owner(owner, keep_cancel=False)
        tx.set_run("cancelled", finished=True)
    assert store.claim_attempts("w1", 5, 30_000) == []


def test_a_result_is_kept_only_from_the_worker_that_holds_the_claim(store: Store) -> None:
    owner = Owner.this_process()
    _owned_run(store, "r1", owner)
    _enqueue(store, "r1", owner, ("a", 1))
    [row] = store.claim_attempts("w1", 1, 30_000)
    key = (row["run_id"], row["node_id"], row["iteration"], row["attempt"])
    assert not store.finish_claimed("zombie", key, ok=True, result_json="{}", error_json=None, meta_json=None, heartbeat_json=None)
    assert store.renew_claims("w1", [key], 30_000, {key: (123, '{"done": 1}')}) == {key}
    assert store.finish_claimed("w1", key, ok=True, result_json='{"x": 1}', error_json=None, meta_json='{"worker": "w1"}',
                                heartbeat_json=None)
    assert not store.finish_claimed("w1", key, ok=False, result_json=None, error_json="{}", meta_json=None, heartbeat_json=None)
    [outcome] = store.queue_outcomes("r1", owner.id)
    assert (outcome["status"], outcome["result_json"], outcome["heartbeat_json"]) == ("finished", '{"x": 1}', '{"done": 1}')
    assert store.renew_claims("w1", [key], 30_000, {}) == set()  # finished: no longer a claim


def test_a_lapsed_claim_is_abandoned_by_the_owner_and_its_late_result_dropped(store: Store) -> None:
    owner = Owner.this_process()
    _owned_run(store, "r1", owner)
    _enqueue(store, "r1", owner, ("a", 1), ("b", 1))
    rows = store.claim_attempts("w1", 2, 0)  # a lease that has already lapsed
    held = store.claim_attempts("w2", 1, 30_000)
    assert held == []  # a lapsed claim is not free for the taking: its owner decides (abandons it first)
    time.sleep(0.01)
    with store.tx("r1", owner_id=owner.id) as tx:
        expired = tx.expire_claims(owner.id)
    assert sorted(expired) == [("a", 0, 1, "w1"), ("b", 0, 1, "w1")]
    key = (rows[0]["run_id"], rows[0]["node_id"], 0, 1)
    assert not store.finish_claimed("w1", key, ok=True, result_json="{}", error_json=None, meta_json=None, heartbeat_json=None)
    assert {s for s, _ in _statuses(store, "r1").values()} == {"abandoned"}


def test_hand_back_makes_an_attempt_ready_for_another_worker(store: Store) -> None:
    owner = Owner.this_process()
    _owned_run(store, "r1", owner)
    _enqueue(store, "r1", owner, ("a", 1))
    [row] = store.claim_attempts("leaving", 1, 30_000)
    key = (row["run_id"], row["node_id"], row["iteration"], row["attempt"])
    assert store.hand_back("leaving", [key]) == 1
    assert _statuses(store, "r1") == {("a", 1): ("ready", None)}
    assert [r["worker"] for r in store.claim_attempts("staying", 1, 30_000)] == ["staying"]
    assert not store.finish_claimed("leaving", key, ok=True, result_json="{}", error_json=None, meta_json=None, heartbeat_json=None)


def test_recovery_abandons_the_old_owners_queue_and_collect_marks_committed_results(store: Store) -> None:
    owner = Owner.this_process()
    _owned_run(store, "r1", owner)
    _enqueue(store, "r1", owner, ("a", 1), ("b", 1), ("c", 1))
    claimed = {r["node_id"]: r for r in store.claim_attempts("w1", 3, 30_000)}
    for node in ("a", "b"):
        key = ("r1", node, 0, 1)
        store.finish_claimed("w1", key, ok=True, result_json="{}", error_json=None, meta_json=None, heartbeat_json=None)
    with store.tx("r1", owner_id=owner.id) as tx:  # the owner committed a's finish, not b's yet
        tx.finish_attempt("a", 0, 1, AttemptStatus.FINISHED)
        assert tx.collect_committed(owner.id) == 1
    assert _statuses(store, "r1")[("a", 1)][0] == "collected"
    with store.tx("r1") as tx:  # a new owner's recovery
        assert tx.abandon_queued() == 2
    assert {k: s for k, (s, _) in _statuses(store, "r1").items()} == {("a", 1): "collected", ("b", 1): "abandoned", ("c", 1): "abandoned"}
    late = ("r1", "c", 0, 1)
    assert "c" in claimed
    assert not store.finish_claimed("w1", late, ok=True, result_json="{}", error_json=None, meta_json=None, heartbeat_json=None)


@pytest.mark.postgres
def test_postgres_wakes_listeners_on_enqueue_and_on_a_result(pg_url: str) -> None:
    store = Store.open(pg_url)
    listener = store.listener([QUEUE_CHANNEL, DONE_CHANNEL])
    try:
        owner = Owner.this_process()
        _owned_run(store, "r1", owner)
        with store.tx("r1", owner_id=owner.id) as tx:
            tx.start_attempt("a", 0, 1)
            tx.enqueue_attempt("a", 0, 1, "compute", owner.id, 1)
            store.notify(QUEUE_CHANNEL, "r1")
        assert listener.wait(10.0) == [(QUEUE_CHANNEL, "r1")]
        [row] = store.claim_attempts("w1", 1, 30_000)
        store.finish_claimed("w1", ("r1", "a", 0, 1), ok=True, result_json="{}", error_json=None, meta_json=None, heartbeat_json=None)
        assert listener.wait(10.0) == [(DONE_CHANNEL, "r1")]
        assert row["node_id"] == "a"
    finally:
        listener.close()
        store.close()
