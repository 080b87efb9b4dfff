"""The one wait/poll helper of the suite: poll a condition until it holds or a generous deadline
passes, then fail naming what was awaited and the last value seen.

The deadline is a safety net against hangs, never an assertion about speed: tests check behaviour,
durations belong in ``bench/``. Keep timeouts generous (the machine may be loaded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_UNSEEN = object()


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    what: str = "condition",
    *,
    until: Callable[[T], object] | None = None,
    interval: float = 0.03,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    ``until``: then ``predicate`` is a probe (say, the run's node statuses) and ``until(value)`` decides;
    the failure then shows the last probed value, not just a falsy one.
    ``ignoring``: exception types that mean "not yet" (e.g. ``sqlite3.Error`` while another process
    is still creating the database); the last one is named in the failure. After ``timeout`` seconds
    raise an AssertionError naming ``what`` and the last value (or exception) seen."""
    deadline = time.monotonic() + timeout
    last: object = _UNSEEN
    while True:
        try:
            value = predicate()
        except ignoring as error:
            last = error
        else:
            if until(value) if until is not None else value:
                return value
            last = value
        if time.monotonic() >= deadline:
            seen = "nothing (never evaluated)" if last is _UNSEEN else repr(last)
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last seen: {seen}")
        time.sleep(interval)
