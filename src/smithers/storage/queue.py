"""The shared attempt queue (``_smithers_task_queue``): task attempts a run's owner hands to workers.

A run driven by ``smithers worker`` does not execute its compute and agent attempts itself: the
owner writes the attempt row *and* a queue row in one transaction (:meth:`QueueTxMixin.enqueue_attempt`),
any worker's executor slot claims the row (:meth:`QueueStoreMixin.claim_attempts`), runs the task
and writes the result into the row (:meth:`QueueStoreMixin.finish_claimed`); the owner then commits
the attempt's finish and output exactly as for a local attempt. Only the owner writes outputs, so
every output row exists once; only the owner schedules, so ``Parallel`` and run limits hold.

A row's life::

    ready ──claim──> claimed ──result──> finished | failed ──owner committed──> collected
      ^                 │ lease expired (owner) / owner changed (adopter) ──> abandoned
      └── handed back ──┘ (worker's SIGTERM)      owner cancelled it (timeout, cancel) ──> cancelled

Every transition is a conditional ``UPDATE`` (``WHERE status = 'claimed' AND worker = ?`` and
the like), so a late writer — a zombie worker, an owner that lost its lease — changes nothing.
On SQLite, ``BEGIN IMMEDIATE`` serialises claimers (several processes on one file is supported);
on PostgreSQL the claim is ``SELECT … FOR UPDATE SKIP LOCKED``, so claimers never wait on each other.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ..states import RunStatus
from .dialect import execute_write

READY = "ready"
CLAIMED = "claimed"
FINISHED = "finished"
FAILED = "failed"
ABANDONED = "abandoned"
CANCELLED = "cancelled"
COLLECTED = "collected"
OPEN_STATUSES = (READY, CLAIMED)
QueueKey = tuple[str, str, int, int]  # run id, node id, iteration, attempt
# a worker's result for one attempt: key, ok, result_json, error_json, meta_json, heartbeat_json
FinishedAttempt = tuple[QueueKey, bool, "str | None", "str | None", "str | None", "str | None"]
# what a failed statement raises on either backend (the PostgreSQL adapter maps its errors to sqlite3's),
# for code above storage that must survive a database hiccup without naming sqlite3
DatabaseError = sqlite3.Error
DONE_STATUSES = (FINISHED, FAILED)

# wake-up channels (store.notify / store.listener): an attempt was enqueued; an attempt of a run has a result
QUEUE_CHANNEL = "smithers_queue"
DONE_CHANNEL = "smithers_done"

QUEUE_DDL = [
    """CREATE TABLE _smithers_task_queue (
        run_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        iteration INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        mode TEXT NOT NULL,
        status TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        render_no INTEGER NOT NULL DEFAULT 0,
        worker TEXT,
        lease_expires_at_ms INTEGER,
        enqueued_at_ms INTEGER NOT NULL,
        claimed_at_ms INTEGER,
        finished_at_ms INTEGER,
        heartbeat_at_ms INTEGER,
        heartbeat_json TEXT,
        result_json TEXT,
        error_json TEXT,
        meta_json TEXT,
        PRIMARY KEY (run_id, node_id, iteration, attempt)
    )""",
    "CREATE INDEX _smithers_task_queue_status ON _smithers_task_queue (status, enqueued_at_ms)",
    "CREATE INDEX _smithers_task_queue_run ON _smithers_task_queue (run_id, status)",
]

_KEY = "run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?"
_COLUMNS = (
    "run_id", "node_id", "iteration", "attempt", "mode", "status", "owner_id", "render_no", "worker", "lease_expires_at_ms",
    "enqueued_at_ms", "claimed_at_ms", "finished_at_ms", "heartbeat_at_ms", "heartbeat_json", "result_json", "error_json", "meta_json",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM _smithers_task_queue"
# a row may be claimed only while its run runs and is still owned by the owner that enqueued it
_CLAIMABLE = (
    "q.status = 'ready' AND EXISTS (SELECT 1 FROM _smithers_runs r WHERE r.run_id = q.run_id "
    f"AND r.owner_id = q.owner_id AND r.status = '{RunStatus.RUNNING}')"
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _rows(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class QueueStoreMixin:
    """The queue's reads and its worker-side writes (each its own short transaction), on a
    :class:`~smithers.storage.store.Store`."""

    __slots__ = ()
    _conn: sqlite3.Connection
    _lock: Any

    def _queue_write(self, sql: str, params: Any) -> Any:
        """One conditional write in its own transaction (``BEGIN IMMEDIATE`` … ``COMMIT``)."""
        with self.tx() as tx:  # type: ignore[attr-defined]
            return tx._conn.execute(sql, params)

    # -- executor side --------------------------------------------------------------------

    def claim_attempts(self, worker: str, limit: int, lease_ms: int) -> list[dict[str, Any]]:
        """Claim up to ``limit`` ready attempts for ``worker`` (oldest first), each leased for
        ``lease_ms``. Returns the claimed rows."""
        if limit <= 0:
            return []
        now = _now_ms()
        dialect = self.dialect  # type: ignore[attr-defined]
        with self.tx() as tx:  # type: ignore[attr-defined]
            conn = tx._conn
            if dialect == "postgresql":
                cur = conn.execute(
                    "UPDATE _smithers_task_queue SET status = 'claimed', worker = ?, claimed_at_ms = ?, lease_expires_at_ms = ? "
                    "WHERE (run_id, node_id, iteration, attempt) IN (SELECT q.run_id, q.node_id, q.iteration, q.attempt "
                    f"FROM _smithers_task_queue q WHERE {_CLAIMABLE} ORDER BY q.enqueued_at_ms LIMIT ? FOR UPDATE OF q SKIP LOCKED) "
                    f"RETURNING {', '.join(_COLUMNS)}",
                    (worker, now, now + lease_ms, limit),
                )
                return _rows(cur)
            keys = conn.execute(
                f"SELECT q.run_id, q.node_id, q.iteration, q.attempt FROM _smithers_task_queue q WHERE {_CLAIMABLE} "
                "ORDER BY q.enqueued_at_ms LIMIT ?",
                (limit,),
            ).fetchall()
            claimed = []
            for key in keys:
                conn.execute(
                    f"UPDATE _smithers_task_queue SET status = 'claimed', worker = ?, claimed_at_ms = ?, lease_expires_at_ms = ? "
                    f"WHERE {_KEY}",
                    (worker, now, now + lease_ms, *key),
                )
                claimed.extend(_rows(conn.execute(f"{_SELECT} WHERE {_KEY}", tuple(key))))
            return claimed

    def renew_claims(
        self, worker: str, keys: list[QueueKey], lease_ms: int, beats: dict[QueueKey, tuple[int, str | None]]
    ) -> set[QueueKey]:
        """Extend ``worker``'s leases on ``keys`` (with the tasks' newest heartbeats). Returns the
        keys that are still ``worker``'s; the others were taken away (cancelled, abandoned)."""
        if not keys:
            return set()
        now = _now_ms()
        kept = set()
        with self.tx() as tx:  # type: ignore[attr-defined]
            for key in keys:
                beat_at, beat_json = beats.get(key, (None, None))
                cur = tx._conn.execute(
                    "UPDATE _smithers_task_queue SET lease_expires_at_ms = ?, heartbeat_at_ms = COALESCE(?, heartbeat_at_ms), "
                    f"heartbeat_json = COALESCE(?, heartbeat_json) WHERE {_KEY} AND status = 'claimed' AND worker = ?",
                    (now + lease_ms, beat_at, beat_json, *key, worker),
                )
                if cur.rowcount == 1:
                    kept.add(key)
        return kept

    def finish_claimed(
        self, worker: str, key: QueueKey, *, ok: bool, result_json: str | None, error_json: str | None,
        meta_json: str | None, heartbeat_json: str | None,
    ) -> bool:
        """Record ``worker``'s result for the attempt it holds, and wake the run's owner. False
        (nothing written) when the row is no longer ``worker``'s: its late result is dropped."""
        # no run id: the row is the queue's, not the run's (on PostgreSQL this takes no run lock, so
        # results never wait behind the owner's batches)
        update = (
            "UPDATE _smithers_task_queue SET status = ?, finished_at_ms = ?, result_json = ?, error_json = ?, meta_json = ?, "
            f"heartbeat_json = COALESCE(?, heartbeat_json) WHERE {_KEY} AND status = 'claimed' AND worker = ?"
        )
        params = (FINISHED if ok else FAILED, _now_ms(), result_json, error_json, meta_json, heartbeat_json, *key, worker)
        if self.dialect == "postgresql":  # type: ignore[attr-defined]
            # one statement, one round trip (a worker's event loop waits on it): the write and the
            # owner's wake-up commit together, and the wake-up is sent only when the row was ours
            rows = self._conn.execute(
                f"WITH done AS ({update} RETURNING run_id) SELECT pg_notify(?, run_id) FROM done", (*params, DONE_CHANNEL)
            ).fetchall()
            return len(rows) == 1
        with self.tx() as tx:  # type: ignore[attr-defined]
            cur = tx._conn.execute(update, params)
            if cur.rowcount != 1:
                return False
            self.notify(DONE_CHANNEL, key[0])  # type: ignore[attr-defined]
        return True

    def finish_claimed_many(self, worker: str, results: list[FinishedAttempt]) -> set[QueueKey]:
        """:meth:`finish_claimed` for several attempts a worker finished at once (its slots that
        were claimed together end together): one statement on PostgreSQL, one transaction on
        SQLite. Returns the keys that were still ``worker``'s (written); the others are dropped."""
        if not results:
            return set()
        if self.dialect != "postgresql":  # type: ignore[attr-defined]
            kept = set()
            with self.tx():  # type: ignore[attr-defined]
                for key, ok, result_json, error_json, meta_json, heartbeat_json in results:
                    if self.finish_claimed(
                        worker, key, ok=ok, result_json=result_json, error_json=error_json, meta_json=meta_json,
                        heartbeat_json=heartbeat_json,
                    ):
                        kept.add(key)
            return kept
        params: list[Any] = []
        for key, ok, result_json, error_json, meta_json, heartbeat_json in results:
            params += (*key, FINISHED if ok else FAILED, result_json, error_json, meta_json, heartbeat_json)
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(results))
        rows = self._conn.execute(
            "WITH v (run_id, node_id, iteration, attempt, status, result_json, error_json, meta_json, heartbeat_json) "
            f"AS (VALUES {values}), "
            "done AS (UPDATE _smithers_task_queue q SET status = v.status, finished_at_ms = ?, result_json = v.result_json, "
            "error_json = v.error_json, meta_json = v.meta_json, heartbeat_json = COALESCE(v.heartbeat_json, q.heartbeat_json) "
            "FROM v WHERE q.run_id = v.run_id AND q.node_id = v.node_id AND q.iteration = v.iteration AND q.attempt = v.attempt "
            "AND q.status = 'claimed' AND q.worker = ? RETURNING q.run_id, q.node_id, q.iteration, q.attempt) "
            "SELECT run_id, node_id, iteration, attempt, pg_notify(?, run_id) FROM done",
            (*params, _now_ms(), worker, DONE_CHANNEL),
        ).fetchall()
        return {(r[0], r[1], r[2], r[3]) for r in rows}

    def hand_back(self, worker: str, keys: list[QueueKey]) -> int:
        """A stopping worker gives attempts it will not finish back to the queue (``ready``), so
        another worker claims them at once instead of after the lease timeout."""
        returned = 0
        with self.tx() as tx:  # type: ignore[attr-defined]
            for key in keys:
                cur = tx._conn.execute(
                    "UPDATE _smithers_task_queue SET status = 'ready', worker = NULL, claimed_at_ms = NULL, lease_expires_at_ms = NULL "
                    f"WHERE {_KEY} AND status = 'claimed' AND worker = ?",
                    (*key, worker),
                )
                returned += cur.rowcount
            if returned:
                self.notify(QUEUE_CHANNEL)  # type: ignore[attr-defined]
        return returned

    def claim_still_held(self, worker: str, key: QueueKey) -> bool:
        row = self._conn.execute(f"SELECT status, worker FROM _smithers_task_queue WHERE {_KEY}", key).fetchone()
        return row is not None and row[0] == CLAIMED and row[1] == worker

    # -- owner side (reads; writes go through QueueTxMixin inside the owner's fenced transactions) --

    def queue_outcomes(self, run_id: str, owner_id: str) -> list[dict[str, Any]]:
        """Rows of the owner's attempts that have a result (finished, failed) not yet collected."""
        return _rows(self._conn.execute(
            f"{_SELECT} WHERE run_id = ? AND owner_id = ? AND status IN ('finished', 'failed')", (run_id, owner_id)
        ))

    def queue_claims(self, run_id: str, owner_id: str) -> list[tuple[str, int, int, int, int | None, str | None]]:
        """(node id, iteration, attempt, claimed_at_ms, heartbeat_at_ms, heartbeat_json) of the owner's claimed attempts."""
        rows = self._conn.execute(
            "SELECT node_id, iteration, attempt, claimed_at_ms, heartbeat_at_ms, heartbeat_json FROM _smithers_task_queue "
            "WHERE run_id = ? AND owner_id = ? AND status = 'claimed'",
            (run_id, owner_id),
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def queue_rows(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Every queue row (of one run), oldest first: for ``smithers worker --status`` and tests."""
        if run_id is None:
            return _rows(self._conn.execute(f"{_SELECT} ORDER BY enqueued_at_ms"))
        return _rows(self._conn.execute(f"{_SELECT} WHERE run_id = ? ORDER BY enqueued_at_ms", (run_id,)))


class QueueTxMixin:
    """The owner's queue writes, inside its open (fenced) transaction."""

    __slots__ = ()
    _conn: sqlite3.Connection
    run_id: str | None
    ts: int

    def enqueue_attempt(self, node_id: str, iteration: int, attempt: int, mode: str, owner_id: str, render_no: int) -> None:
        """Put an attempt the owner just started (its attempt row is in this transaction) in the queue
        (on PostgreSQL sent with the transaction's next statement: nothing reads its result)."""
        execute_write(self._conn,
            "INSERT INTO _smithers_task_queue (run_id, node_id, iteration, attempt, mode, status, owner_id, render_no, enqueued_at_ms) "
            "VALUES (?, ?, ?, ?, ?, 'ready', ?, ?, ?)",
            (self.run_id, node_id, iteration, attempt, mode, owner_id, render_no, self.ts),
        )

    def expire_claims(self, owner_id: str) -> list[tuple[str, int, int, str | None]]:
        """Mark the owner's claimed attempts whose worker let the lease lapse ``abandoned``.
        Returns their (node id, iteration, attempt, worker)."""
        rows = self._conn.execute(
            "SELECT node_id, iteration, attempt, worker FROM _smithers_task_queue "
            "WHERE run_id = ? AND owner_id = ? AND status = 'claimed' AND lease_expires_at_ms < ?",
            (self.run_id, owner_id, self.ts),
        ).fetchall()
        for node_id, iteration, attempt, _ in rows:
            self._conn.execute(
                f"UPDATE _smithers_task_queue SET status = 'abandoned', finished_at_ms = ? WHERE {_KEY} AND status = 'claimed'",
                (self.ts, self.run_id, node_id, iteration, attempt),
            )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def close_queued(self, node_id: str, iteration: int, attempt: int, status: str) -> None:
        """The owner is done with an attempt's row: ``collected`` (its result is committed) or
        ``cancelled`` (a timeout or a cancel; a worker still running it stops at its next renewal)."""
        self._conn.execute(
            f"UPDATE _smithers_task_queue SET status = ?, finished_at_ms = COALESCE(finished_at_ms, ?) WHERE {_KEY} "
            "AND status NOT IN ('collected', 'cancelled')",
            (status, self.ts, self.run_id, node_id, iteration, attempt),
        )

    def collect_committed(self, owner_id: str) -> int:
        """Mark ``collected`` every result row of the owner whose attempt is no longer ``running``
        (the owner committed its finish or failure), in one statement. Returns how many."""
        cur = self._conn.execute(
            "UPDATE _smithers_task_queue SET status = 'collected' WHERE run_id = ? AND owner_id = ? AND status IN ('finished', 'failed') "
            "AND EXISTS (SELECT 1 FROM _smithers_attempts a WHERE a.run_id = _smithers_task_queue.run_id "
            "AND a.node_id = _smithers_task_queue.node_id AND a.iteration = _smithers_task_queue.iteration "
            "AND a.attempt = _smithers_task_queue.attempt AND a.status <> 'running')",
            (self.run_id, owner_id),
        )
        return int(cur.rowcount or 0)

    def abandon_queued(self) -> int:
        """A new owner takes the run over: every attempt the old owner queued that has no
        committed result is ``abandoned`` (its attempt row is abandoned too, by the same
        recovery), so a worker still running one drops its result. Returns how many."""
        cur = self._conn.execute(
            "UPDATE _smithers_task_queue SET status = 'abandoned', finished_at_ms = ? "
            "WHERE run_id = ? AND status IN ('ready', 'claimed', 'finished', 'failed')",
            (self.ts, self.run_id),
        )
        return int(cur.rowcount or 0)


__all__ = [
    "ABANDONED", "CANCELLED", "CLAIMED", "COLLECTED", "DONE_CHANNEL", "FAILED", "FINISHED", "QUEUE_CHANNEL", "QUEUE_DDL", "READY",
    "DatabaseError", "FinishedAttempt", "QueueKey", "QueueStoreMixin", "QueueTxMixin",
]
