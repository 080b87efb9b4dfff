"""The ``why`` explainer: what a run is blocked on, in words, and the commands that unblock it."""

from __future__ import annotations

import time
from typing import Any

from ..states import WAITING_NODE_STATUSES, WAITING_RUN_STATUSES, NodeStatus, RunStatus
from ..storage.store import Store
from .runs import get_run, json_or_none


def why(store: Store, run_id: str) -> dict[str, Any]:
    """What the run is blocked on and the commands that unblock it:
    ``{run_id, status, reason, blocked_on: [...], commands: [...]}``.

    ``blocked_on`` entries are ``{node_id, iteration, status, attempts, started_at_ms,
    retry_at_ms, error}`` (``error`` is the last error message, or null).
    """
    from ..storage.lease import owner_alive

    run = get_run(store, run_id)
    status = run["status"]
    resume = f"smithers resume {run_id}"
    nodes = store.nodes(run_id)
    starts = store.last_attempt_starts(run_id)

    def entry(row: dict[str, Any]) -> dict[str, Any]:
        error = json_or_none(row["error_json"])
        return {
            "node_id": row["node_id"],
            "iteration": row["iteration"],
            "status": row["status"],
            "attempts": row["attempts"],
            "started_at_ms": starts.get((row["node_id"], row["iteration"])),
            "retry_at_ms": row["retry_at_ms"],
            "error": error.get("message") if isinstance(error, dict) else None,
        }

    def result(reason: str, blocked: list[dict[str, Any]], commands: list[str]) -> dict[str, Any]:
        return {"run_id": run_id, "status": status, "reason": reason, "blocked_on": blocked, "commands": commands}

    if status in (RunStatus.FINISHED, RunStatus.CONTINUED):
        what = "finished" if status == RunStatus.FINISHED else "continued as a new run"
        return result(f"the run {what}; nothing is blocked and there is nothing to do", [], [])
    if status == RunStatus.FAILED:
        failed = [entry(r) for r in nodes if r["status"] == NodeStatus.FAILED]
        run_error = json_or_none(run["error_json"]) or {}
        if failed:
            parts = [
                f"task {f['node_id']!r}" + (f" (iteration {f['iteration']})" if f["iteration"] else "")
                + f" failed after {f['attempts']} attempt{'s' if f['attempts'] != 1 else ''}: {f['error'] or 'no error recorded'}"
                for f in failed
            ]
            reason = "; ".join(parts)
        else:
            reason = f"the run failed: {run_error.get('message') or 'no error recorded'}"
        reason += f". `{resume}` retries failed tasks with a fresh retry budget"
        return result(reason, failed, [resume])
    if status == RunStatus.CANCELLED:
        cancelled = [entry(r) for r in nodes if r["status"] == NodeStatus.CANCELLED]
        return result(f"the run was cancelled; `{resume}` continues it where it stopped", cancelled, [resume])
    if status in WAITING_RUN_STATUSES:
        from ..decisions import waiting_for

        items = waiting_for(store, run_id)
        waiting = [entry(r) for r in nodes if r["status"] in WAITING_NODE_STATUSES]
        commands = [c for item in items for c in item["commands"]]
        if owner_alive(run):
            then = f"its owner (pid {run['owner_pid']}) continues the moment it arrives"
        else:
            then = f"then `{resume}` continues it"
            if not any(item["kind"] == "timer" for item in items):
                commands.append(resume)
        if not items:  # decided, answered or delivered, and not picked up yet
            return {**result(f"what the run waited for has arrived; {then}", waiting, commands), "waiting_for": items}
        what = "; ".join(_waiting_item(item) for item in items)
        return {**result(f"the run is waiting for {what}; {then}", waiting, commands), "waiting_for": items}
    if status == RunStatus.QUEUED and not owner_alive(run):  # a cron schedule's run, not started yet
        by = f" by {run['triggered_by']}" if run.get("triggered_by") else ""
        return result(f"the run was queued{by} and has not started; `smithers supervise` starts it, or `{resume}`", [], [resume])
    # running (or a status written by a later version): is anyone actually running it?
    in_flight = [entry(r) for r in nodes if r["status"] == NodeStatus.RUNNING]
    backoff = [entry(r) for r in nodes if r["status"] == NodeStatus.PENDING and r["retry_at_ms"] is not None]
    owner = f"pid {run['owner_pid']} on {run['owner_host']}" if run["owner_pid"] else "no owner"
    if not owner_alive(run):
        who = f"the process running it ({owner}) died" if run["owner_pid"] else "no process is running it"
        reason = f"{who}; `{resume}` takes it over"
        if in_flight:
            reason += f" and retries the {len(in_flight)} task(s) that were in flight"
        return result(reason, in_flight + backoff, [resume])
    if run["cancel_requested_at_ms"]:
        return result(f"a cancel was requested; the owner ({owner}) is stopping its in-flight tasks", in_flight, [])
    parts = []
    if in_flight:
        parts.append(f"{len(in_flight)} task(s) in flight: {', '.join(e['node_id'] for e in in_flight)}")
    if backoff:
        parts.append(f"{len(backoff)} task(s) waiting to retry: {', '.join(e['node_id'] for e in backoff)}")
    detail = "; ".join(parts) if parts else "it is between tasks"
    return result(f"the run is running ({owner}); {detail}", in_flight + backoff, [])


def _waiting_item(item: dict[str, Any]) -> str:
    """One thing a waiting run waits for, in words (an item of ``decisions.waiting_for``)."""
    where = f"{item['node_id']}[{item['iteration']}]"
    kind = item["kind"]
    if kind == "approval":
        return f"approval {where} ({item.get('title')})"
    if kind == "human":
        return f"human request {item['request_id']} on {where} ({item.get('title')})"
    if kind == "signal":
        corr = f" with correlation {item['correlation_id']!r}" if item.get("correlation_id") else ""
        return f"signal {item.get('signal')!r}{corr} on {where}"
    if kind == "timer":
        due = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["fires_at_ms"] / 1000))
        return f"timer {where} due at {due}"
    if kind == "subflow":  # its child run waits: say what the child waits for
        inner = "; ".join(_waiting_item(child) for child in item["waiting_for"]) or "what has arrived (resume to pick it up)"
        return f"subflow {where}, whose child run {item['child_run_id']} is {item['child_status']} waiting for {inner}"
    return f"{kind} {where}"
