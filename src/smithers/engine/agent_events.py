"""Agent events committed in groups: a chatty agent (hundreds of tool calls and text deltas)
must not cost one store transaction per event on the event loop.

:class:`EventBuffer` keeps events in order and writes them in one transaction when
:data:`MAX_PENDING` have gathered, :data:`FLUSH_DELAY` seconds after the first of a group, or
when the attempt ends (:meth:`EventBuffer.close`, called before the attempt's coroutine
returns or raises, so every event of an attempt is committed before its outcome is).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

MAX_PENDING = 256  # events per commit at most
FLUSH_DELAY = 0.05  # seconds an event may wait for company before it is committed

Pending = list[tuple[str, dict[str, Any]]]  # (run event type, payload), in emission order


class EventBuffer:
    """Buffers ``emit(event_type, payload)`` calls and hands them to ``write`` (one store
    transaction per call) in groups. Use from the event loop; calls from other threads (a
    sync tool emitting) are handed over to the loop in order.

    A failed write (a lost lease, a database error) is not lost in a timer callback: it is
    raised by the next :meth:`emit` or by :meth:`close`, failing the attempt as a direct
    write would have."""

    def __init__(self, write: Callable[[Pending], None], *, max_pending: int = MAX_PENDING, delay: float = FLUSH_DELAY) -> None:
        self._write = write
        self._max_pending = max_pending
        self._delay = delay
        self._pending: Pending = []
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def emit(self, event_type: str, payload: dict[str, Any]) -> None:
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._add, event_type, payload)
            return
        self._raise_failed_write()
        self._add(event_type, payload)

    def _add(self, event_type: str, payload: dict[str, Any]) -> None:
        self._pending.append((event_type, payload))
        if len(self._pending) >= self._max_pending:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(self._delay, self._flush_on_timer)

    def _flush_on_timer(self) -> None:
        self._timer = None
        try:
            self.flush()
        except Exception as err:  # kept and raised in the attempt by emit()/close()
            self._error = err

    def flush(self) -> None:
        """Write what is pending now, in one transaction."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        events, self._pending = self._pending, []
        self._write(events)

    def close(self) -> None:
        """Write the rest (the attempt is ending) and raise a failure of an earlier timed write."""
        self._raise_failed_write()
        self.flush()

    def _raise_failed_write(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
