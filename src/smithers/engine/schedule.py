"""③ Schedule: from the ready heap, the tasks to start now within the run's and each
Parallel's concurrency limits, and when to look again (retry backoff)."""

from __future__ import annotations

from collections.abc import Callable

from .plan import RUNNABLE, Plan
from .tree import TaskDescriptor


def take_startable(
    plan: Plan,
    *,
    status_of: Callable[[tuple[str, int]], str],
    retry_at_of: Callable[[tuple[str, int]], int | None],
    free_slots: int,
    now_ms: int,
) -> tuple[list[TaskDescriptor], int | None]:
    """Pop the tasks to start now, in document order. Returns (tasks, next wake-up in epoch ms)."""
    start: list[TaskDescriptor] = []
    deferred: list[TaskDescriptor] = []
    wake: int | None = None
    while plan.ready and len(start) < free_slots:
        desc = plan.pop()
        if status_of(desc.key) not in RUNNABLE:
            continue
        retry_at = retry_at_of(desc.key)
        if retry_at is not None and retry_at > now_ms:
            deferred.append(desc)
            wake = retry_at if wake is None else min(wake, retry_at)
            continue
        if any(group.in_flight >= (group.limit or 0) for group in desc.groups):
            deferred.append(desc)
            continue
        for group in desc.groups:
            group.in_flight += 1
        start.append(desc)
    for desc in deferred:
        plan.push(desc)
    return start, wake
