"""Agent cassettes in pytest: record a workflow's agent calls once, replay them in CI.

>>> from smithers.testing import cassette
>>> def test_review(tmp_path):                                        # doctest: +SKIP
...     with cassette("tests/cassettes/review.jsonl") as tape:
...         outcome = ops.start_run("review.py", store=store, raw_input={})
...     assert outcome.status == "finished"
...     assert tape.mode == "replay" and not tape.unused

The mode comes from ``mode=`` or ``SMITHERS_CASSETTE_MODE`` (``record``, ``replay`` or ``auto``,
the default): ``auto`` replays when the file exists and records it when it does not, so the
first local run records and every later run (and CI) replays; ``SMITHERS_CASSETTE_MODE=record``
re-records after a deliberate prompt change. Recording starts the file over.

Runs driven in this process (``smithers.ops.start_run``/``resume_run``) use the cassette, and so
do ``smithers up``/``resume`` subprocesses started inside the block: it sets
``SMITHERS_CASSETTE`` and ``SMITHERS_CASSETTE_MODE`` (the resolved mode) for them and restores
both afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..agents.cassette import ENV_MODE, ENV_PATH, Cassette, resolve_mode, use_cassette

__all__ = ["cassette"]


@contextlib.contextmanager
def cassette(path: str | os.PathLike[str], *, mode: str | None = None) -> Iterator[Cassette]:
    """Record or replay every agent call made inside the block; yields the :class:`Cassette`
    (``mode``, ``path``, ``recorded`` calls when recording, ``unused`` entries when replaying)."""
    resolved = resolve_mode(mode or os.environ.get(ENV_MODE) or "auto", path)
    target = Path(path).expanduser().resolve()
    tape = Cassette.for_replay(target) if resolved == "replay" else Cassette.for_record(target)
    saved = {name: os.environ.get(name) for name in (ENV_PATH, ENV_MODE)}
    os.environ[ENV_PATH], os.environ[ENV_MODE] = str(target), resolved
    try:
        with use_cassette(tape):
            yield tape
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
