"""Resume: take the lease, then put in-flight work back in the queue.

Attempts that were ``running`` when their owner died become ``abandoned`` (they do not use
up the retry budget) and their nodes go back to ``pending``. Resuming a failed (or cancelled)
run gives its failed tasks a fresh retry budget; resuming a cancelled run continues it.
"""

from __future__ import annotations

from ..storage.lease import DEFAULT_STALE_MS, Owner, claim_run
from ..storage.store import Store


def recover(
    store: Store, run_id: str, owner: Owner, *, stale_ms: int = DEFAULT_STALE_MS, takeover_from: str | None = None
) -> dict:
    """Claim ``run_id`` for ``owner`` and reset in-flight work, in one transaction after the claim.
    ``takeover_from``: the handoff lease a supervisor took for this process (see ``storage.lease``)."""
    run = claim_run(store, run_id, owner, stale_ms=stale_ms, takeover_from=takeover_from)
    with store.tx(run_id, owner_id=owner.id) as tx:
        abandoned = tx.execute(
            "SELECT node_id, iteration, attempt FROM _smithers_attempts WHERE run_id = ? AND status = 'running'", (run_id,)
        ).fetchall()
        for node_id, iteration, attempt in abandoned:
            tx.execute(
                "UPDATE _smithers_attempts SET status = 'abandoned', finished_at_ms = ? "
                "WHERE run_id = ? AND node_id = ? AND iteration = ? AND attempt = ?",
                (tx.ts, run_id, node_id, iteration, attempt),
            )
            tx.event("AttemptAbandoned", node_id=node_id, iteration=iteration, attempt=attempt, reason="its owner stopped")
        tx.execute(
            "UPDATE _smithers_nodes SET status = 'pending', retry_at_ms = NULL, updated_at_ms = ? "
            "WHERE run_id = ? AND status IN ('running', 'cancelled')",
            (tx.ts, run_id),
        )
        if run["status"] in ("failed", "cancelled"):
            # a run that stopped early gives its failed tasks a fresh retry budget; a finished or
            # waiting run (or one whose owner crashed) keeps them: its failures were tolerated
            # (continue_on_fail), and resuming must not re-run them and change finished results
            tx.execute(
                "UPDATE _smithers_nodes SET status = 'pending', failures = 0, retry_at_ms = NULL, updated_at_ms = ? "
                "WHERE run_id = ? AND status = 'failed'",
                (tx.ts, run_id),
            )
        tx.set_run("running")
        tx.event("RunStarted", resumed=True, previous_status=run["status"], owner_pid=owner.pid)
    return run
