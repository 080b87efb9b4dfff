"""Resume: take the lease, then put in-flight work back in the queue.

Attempts that were ``running`` when their owner died become ``abandoned`` (they do not use
up the retry budget) and their nodes go back to ``pending``. Resuming a failed (or cancelled)
run gives its failed tasks a fresh retry budget; resuming a cancelled run continues it.

The first owner of a continue-as-new link is not resuming anything: its ``RunStarted`` says
``continuation: true`` (and ``resumed: true``, as every claim of an existing run does), so
metrics do not count the links of a chain as resumed runs. Likewise the first owner of a
``queued`` run (one a cron schedule created) records ``resumed: false``: it starts the run.
"""

from __future__ import annotations

from typing import Any

from ..states import AttemptStatus, EventType, RunStatus
from ..storage.lease import DEFAULT_STALE_MS, Owner, claim_run
from ..storage.store import Store


def recover(
    store: Store, run_id: str, owner: Owner, *, stale_ms: int = DEFAULT_STALE_MS, takeover_from: str | None = None
) -> dict[str, Any]:
    """Claim ``run_id`` for ``owner`` and reset in-flight work, in one transaction after the claim.
    ``takeover_from``: the handoff lease a supervisor took for this process (see ``storage.lease``)."""
    run = claim_run(store, run_id, owner, stale_ms=stale_ms, takeover_from=takeover_from)
    with store.tx(run_id, owner_id=owner.id) as tx:
        for node_id, iteration, attempt in tx.end_running_attempts(AttemptStatus.ABANDONED):
            tx.event(EventType.ATTEMPT_ABANDONED, node_id=node_id, iteration=iteration, attempt=attempt, reason="its owner stopped")
        tx.abandon_queued()  # attempts the old owner handed to workers: a late result of theirs is dropped
        # a run that stopped early gives its failed tasks a fresh retry budget; a finished or
        # waiting run (or one whose owner crashed) keeps them: its failures were tolerated
        # (continue_on_fail), and resuming must not re-run them and change finished results
        tx.requeue_nodes(fresh_budget_for_failed=run["status"] in (RunStatus.FAILED, RunStatus.CANCELLED))
        first_pickup = bool(run.get("continued_from")) and tx.count_events(EventType.RUN_STARTED) == 1
        # a queued run (a cron schedule's) that nobody drove yet is started here, not resumed
        never_started = run["status"] == RunStatus.QUEUED and tx.count_events(EventType.RUN_STARTED) == 0
        tx.set_run(RunStatus.RUNNING)
        extra: dict[str, Any] = {"continuation": True} if first_pickup else {}
        if run.get("triggered_by"):
            extra["triggered_by"] = run["triggered_by"]
        tx.event(EventType.RUN_STARTED, resumed=not never_started, previous_status=run["status"], owner_pid=owner.pid, **extra)
    return run
