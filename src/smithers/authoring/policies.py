"""Durations and retry policies."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

Duration = float | int | str


def parse_duration(value: Duration | None, *, field: str = "duration") -> float | None:
    """Seconds from ``90``, ``1.5``, ``"90s"``, ``"30m"``, ``"2h"``, ``"7d"`` or ``"250ms"``.

    >>> parse_duration("2h")
    7200.0
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected seconds or a string like '90s', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{field}: {value!r} is not a duration; use seconds or e.g. '90s', '30m', '2h', '7d'")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"{field}: must not be negative, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Retry:
    """Exponential backoff: the delay before retry n is ``initial * factor**(n-1)``, capped at ``max``,
    then moved by up to ``± jitter`` as a fraction.

    >>> Retry(initial="1s", factor=2, max="5m", jitter=0).delay(3)
    4.0
    """

    initial: Duration = 1.0
    factor: float = 2.0
    max: Duration = "5m"
    jitter: float = 0.1

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        initial = parse_duration(self.initial, field="retry.initial") or 0.0
        cap = parse_duration(self.max, field="retry.max") or 0.0
        base = min(initial * (self.factor ** max(retry_number - 1, 0)), cap)
        if self.jitter:
            spread = base * self.jitter
            base += (rng or random).uniform(-spread, spread)
        return max(base, 0.0)


DEFAULT_RETRY = Retry()
DEFAULT_AGENT_RETRIES = 3
