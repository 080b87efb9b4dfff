"""The suite's one wait/poll helper: it returns what the predicate found, and a timeout names what was
awaited and the last value (or ignored exception) seen."""

from __future__ import annotations

import sqlite3

import pytest
from waiting import wait_until


def test_returns_the_first_truthy_value() -> None:
    values = iter([None, [], {"status": "finished"}])
    assert wait_until(lambda: next(values), timeout=30, interval=0) == {"status": "finished"}


def test_a_timeout_names_what_and_the_last_value_seen() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the inbox to fill; last seen: \[\]"):
        wait_until(lambda: [], timeout=0, what="the inbox to fill")


def test_with_until_the_probe_value_is_returned_and_reported() -> None:
    statuses = iter(["pending", "running", "finished"])
    assert wait_until(lambda: next(statuses), 30, "the run to finish", until=lambda s: s == "finished", interval=0) == "finished"
    with pytest.raises(AssertionError, match="waiting for the run to finish; last seen: 'running'"):
        wait_until(lambda: "running", 0, "the run to finish", until=lambda s: s == "finished")


def test_ignored_exceptions_mean_not_yet_and_are_named_on_timeout() -> None:
    calls = iter([sqlite3.OperationalError("no such table: _smithers_runs"), "ready"])

    def created_by_now() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(created_by_now, timeout=30, interval=0, ignoring=(sqlite3.Error,)) == "ready"

    def locked() -> str:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(AssertionError, match=r"last seen: OperationalError\('database is locked'\)"):
        wait_until(locked, timeout=0, what="the database", ignoring=(sqlite3.Error,))
    with pytest.raises(ValueError):  # anything not ignored propagates at once
        wait_until(lambda: int("x"), timeout=30, ignoring=(sqlite3.Error,))
