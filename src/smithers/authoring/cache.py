"""``Task(..., cache=...)``: reuse a task's output across runs when its input has not changed.

``cache=True`` is ``Cache()``: the default key, no expiry, version ``"1"``. The key is a
content hash of what the task's output can depend on (see :class:`CacheKeyContext`); a run
that meets the same key again takes the stored output instead of running the task (the
attempt is recorded as ``cached``, with a ``NodeCached`` event).

>>> from pydantic import BaseModel
>>> class Summary(BaseModel):
...     text: str
>>> Cache(ttl="7d", version="2").ttl_seconds
604800.0
>>> Cache(key=lambda kc: kc.prompt or "").version
'1'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import RenderError
from .policies import Duration, parse_duration

KeyFunction = Callable[["CacheKeyContext"], str]


class Cache:
    """How a task's output is cached.

    - ``key``: a function of :class:`CacheKeyContext` returning a string; the stored key is a
      hash of that string, the output model's schema and ``version`` (so the same string under
      two node ids or two workflows shares one entry: that is what a custom key is for).
      Default: the content hash described in :class:`CacheKeyContext`.
    - ``ttl``: how long an entry is good for (seconds or ``"30m"``, ``"7d"``); ``None``: for ever.
    - ``version``: bump it to invalidate every entry of the task (a changed prompt or function
      does that by itself; a changed tool, model or outside fact does not).

    >>> Cache(ttl="30m").ttl_seconds
    1800.0
    """

    __slots__ = ("key", "ttl", "ttl_seconds", "version")

    def __init__(self, *, key: KeyFunction | None = None, ttl: Duration | None = None, version: str = "1") -> None:
        if key is not None and not callable(key):
            raise RenderError(f"Cache(key=...) must be a function of the key context returning a string, got {type(key).__name__}")
        if not isinstance(version, str) or not version:
            raise RenderError(f"Cache(version=...) must be a non-empty string, got {version!r}")
        try:
            seconds = parse_duration(ttl, field="Cache(ttl=...)")
        except ValueError as err:
            raise RenderError(str(err)) from None
        if seconds is not None and seconds <= 0:
            raise RenderError(f"Cache(ttl=...) must be positive, got {ttl!r}", hint="leave ttl out for entries that never expire")
        self.key = key
        self.ttl = ttl
        self.ttl_seconds = seconds
        self.version = version

    def __repr__(self) -> str:
        return f"Cache(ttl={self.ttl!r}, version={self.version!r}{', key=…' if self.key else ''})"


def as_cache(value: Any, task_id: str) -> Cache | None:
    """``Task(cache=...)`` normalised: ``True`` → ``Cache()``, ``False``/``None`` → no cache."""
    if value is None or value is False:
        return None
    if value is True:
        return Cache()
    if isinstance(value, Cache):
        return value
    raise RenderError(
        f"task {task_id!r}: cache= must be True, False or a Cache(...), got {type(value).__name__}",
        hint='Task(..., cache=True) or Task(..., cache=Cache(ttl="7d", version="2"))',
    )


@dataclass(frozen=True)
class CacheKeyContext:
    """What a cache key is made of; a custom ``Cache(key=...)`` function gets this.

    The default key hashes ``workflow``, ``node_id``, ``mode``, the task's input —
    ``prompt`` (agent), ``value`` (static), or for a compute task the function's code, the
    run input and ``reads`` (the outputs the render read) — ``output_schema`` and
    ``version``. ``default_key`` is that hash, for a custom key that wants to extend it.
    """

    workflow: str
    node_id: str
    iteration: int
    mode: str
    prompt: str | None
    value: Any
    input: Any
    reads: dict[str, Any] = field(repr=False)  # node id -> its outputs (JSON, oldest first) as the render saw them
    output_schema: dict[str, Any] = field(repr=False)
    version: str = "1"
    default_key: str = ""


__all__ = ["Cache", "CacheKeyContext", "as_cache"]
