"""Verbs over what attempts did to the files: ``diff`` (what an attempt changed), ``revert`` (put
the working tree back to the snapshot after — or before — an attempt) and ``gc`` (prune the
snapshot refs of old runs). Front ends (CLI, HTTP) call these; git work is in
:mod:`smithers.snapshots`, SQL in :mod:`smithers.storage.snapshots`.

>>> result = revert(store, "20261203-101500-ab12cd", "build", actor="alice")   # doctest: +SKIP
>>> result["files"]                                                            # doctest: +SKIP
['src/app.py']
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

from .errors import NoSnapshotError, RunOwnedError, UnknownNodeError, UnsavedChangesError, UserError
from .snapshots import changed_files, find_repo, patch, prune, restore, snapshot, unsaved_files
from .states import ENDED_RUN_STATUSES, EventType, RunStatus
from .storage.lease import owner_alive
from .storage.store import Store, now_ms
from .storage.target import database_files

DAY_MS = 86_400_000


def default_actor() -> str:
    """Who is asking, for the audit: the login name of this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _run(store: Store, run_id: str) -> dict[str, Any]:
    from .ops import get_run

    return get_run(store, run_id)


def find_attempt(
    store: Store, run_id: str, node_id: str, iteration: int | None = None, attempt: int | None = None, *, having: str | None = None,
) -> dict[str, Any]:
    """The attempt row asked for: by default the node's newest iteration and that iteration's
    newest attempt — the newest one whose ``having`` column (``snapshot_after``, ...) is set, when
    there is one (an attempt cancelled or abandoned with its process has no snapshot after it)."""
    _run(store, run_id)
    if not store.nodes(run_id, node_id):
        known = store.node_ids(run_id)
        hint = f"nodes of this run: {', '.join(known[:20])}" if known else "this run has no nodes yet"
        raise UnknownNodeError(f"run {run_id} has no node {node_id!r}", hint=hint)
    rows = store.attempts(run_id, node_id)
    if iteration is None and rows:
        iteration = max(r["iteration"] for r in rows)
    rows = [r for r in rows if r["iteration"] == iteration]
    if not rows:
        raise NoSnapshotError(
            f"node {node_id!r} of run {run_id} has no attempt at iteration {iteration}",
            hint="static tasks and waits change no files and take no snapshots; see: smithers node " + f"{run_id} {node_id}",
        )
    if attempt is None:
        with_snapshot = [r for r in rows if having is None or r.get(having)]
        return (with_snapshot or rows)[-1]
    for row in rows:
        if row["attempt"] == attempt:
            return row
    raise UserError(
        f"node {node_id!r} of run {run_id} has no attempt {attempt} at iteration {iteration}",
        hint=f"its attempts: {', '.join(str(r['attempt']) for r in rows)}",
    )


def _folder(run: dict[str, Any], row: dict[str, Any]) -> str:
    folder = row.get("snapshot_dir") or run.get("snapshot_dir")
    if run.get("snapshots_pruned_at_ms"):
        raise NoSnapshotError(f"the snapshots of run {run['run_id']} were pruned by smithers gc", hint="nothing to diff or revert to")
    if not folder:
        why = "snapshots were off for it (--no-snapshots)" if run.get("snapshots_off") else "it took no snapshot"
        raise NoSnapshotError(f"run {run['run_id']} has no snapshots: {why}")
    if not Path(folder).is_dir():
        raise NoSnapshotError(f"the folder whose snapshots run {run['run_id']} took is gone: {folder}")
    return str(folder)


def _name(row: dict[str, Any]) -> str:
    return f"node {row['node_id']!r} iteration {row['iteration']} attempt {row['attempt']}"


def diff(store: Store, run_id: str, node_id: str, iteration: int | None = None, attempt: int | None = None) -> dict[str, Any]:
    """What one attempt changed: ``{run_id, node_id, iteration, attempt, before, after, folder,
    files: [{path, status, additions, deletions}], patch}`` (DESIGN §10.3's ``diff --json`` keys)."""
    run = _run(store, run_id)
    row = find_attempt(store, run_id, node_id, iteration, attempt, having="snapshot_after")
    folder = _folder(run, row)
    before, after = row.get("snapshot_before"), row.get("snapshot_after")
    if after is None:
        state = "is still running" if row["status"] == "running" else "has no snapshot after it"
        raise NoSnapshotError(f"{_name(row)} of run {run_id} {state}", hint="diff shows attempts that ended with a snapshot")
    return {
        "run_id": run_id, "node_id": row["node_id"], "iteration": row["iteration"], "attempt": row["attempt"], "status": row["status"],
        "before": before, "after": after, "folder": folder,
        "files": [c.to_dict() for c in changed_files(folder, before, after)],
        "patch": patch(folder, before, after),
    }


def revert(
    store: Store, run_id: str, node_id: str, iteration: int | None = None, attempt: int | None = None, *, before: bool = False,
    force: bool = False, actor: str | None = None,
) -> dict[str, Any]:
    """Put the working tree back to the snapshot after the attempt (``before``: before it). Refuses
    (:class:`UnsavedChangesError`, exit 4) when the tree holds changes no snapshot of the run holds,
    unless ``force`` — which first saves the tree as one more snapshot of the run, so nothing is
    lost either way. Emits ``RevertFinished`` and writes an audit row, in one transaction."""
    run = _run(store, run_id)
    if run["status"] == RunStatus.RUNNING and owner_alive(run):
        raise RunOwnedError(
            f"run {run_id} is running (pid {run['owner_pid']}): its tasks may be writing files",
            hint=f"wait for it, or cancel it first: smithers cancel {run_id}",
        )
    row = find_attempt(store, run_id, node_id, iteration, attempt, having="snapshot_before" if before else "snapshot_after")
    folder = _folder(run, row)
    commit = row.get("snapshot_before" if before else "snapshot_after")
    if commit is None:
        raise NoSnapshotError(f"{_name(row)} of run {run_id} has no snapshot {'before' if before else 'after'} it")
    unsaved = unsaved_files(folder, run_id)
    top = str(find_repo(folder).top)
    if unsaved and not force:
        shown = ", ".join(unsaved[:10]) + (", …" if len(unsaved) > 10 else "")
        raise UnsavedChangesError(
            f"{top} has changes that no snapshot of run {run_id} holds ({shown}); reverting would lose them",
            hint="commit or copy them first, or pass --force (the tree as it is is then saved as one more snapshot of the run)",
            details={"files": unsaved},
        )
    saved = snapshot(folder, run_id, "before revert", exclude=database_files(store)) if unsaved else None
    files = restore(folder, commit, run_id=run_id)
    who = actor or default_actor()
    detail = {
        "node_id": row["node_id"], "iteration": row["iteration"], "attempt": row["attempt"], "side": "before" if before else "after",
        "commit": commit, "folder": top, "files": files, "forced": force, "saved": saved,
    }
    with store.tx(run_id) as tx:
        tx.event(EventType.REVERT_FINISHED, node_id=row["node_id"], iteration=row["iteration"], attempt=row["attempt"], **{
            k: v for k, v in detail.items() if k not in ("node_id", "iteration", "attempt")
        }, actor=who)
        audit_id = tx.record_audit("revert", actor=who, detail=detail)
    return {"run_id": run_id, **detail, "audit_id": audit_id}


def gc(store: Store, *, older_than_ms: int = 30 * DAY_MS, dry_run: bool = False) -> dict[str, Any]:
    """Prune the snapshot refs of runs that ended more than ``older_than_ms`` ago (the commits are
    then garbage for ``git gc``). Runs that have not ended are never touched."""
    cutoff = now_ms() - older_than_ms
    pruned = []
    for run in store.runs_with_snapshots_ended_before(cutoff, tuple(sorted(ENDED_RUN_STATUSES))):
        refs: list[str] = []
        if not dry_run:
            for folder in store.snapshot_folders(run["run_id"]):
                refs.extend(prune(folder, run["run_id"]))
            with store.tx(run["run_id"]) as tx:
                tx.mark_snapshots_pruned()
        pruned.append({
            "run_id": run["run_id"], "status": run["status"], "ended_at_ms": run["finished_at_ms"] or run["updated_at_ms"],
            "folders": store.snapshot_folders(run["run_id"]), "refs": refs,
        })
    return {"older_than_ms": older_than_ms, "cutoff_ms": cutoff, "dry_run": dry_run, "pruned": pruned}


__all__ = ["default_actor", "diff", "find_attempt", "gc", "revert"]
