"""``--record FILE`` / ``--replay FILE`` for ``up`` and ``resume`` (agent cassettes, see
smithers/agents/cassette.py and docs/cassettes.md). The agents package is imported only when
one of them is given: a plain ``smithers up`` stays light."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated, Any

import typer

RecordOption = Annotated[
    str | None,
    typer.Option("--record", help="Write every agent call to this JSONL cassette (secrets scrubbed).", show_default=False),
]
ReplayOption = Annotated[
    str | None,
    typer.Option("--replay", help="Answer every agent call from this cassette; no agent starts.", show_default=False),
]


def cassette_scope(record: str | None, replay: str | None, *, append: bool) -> contextlib.AbstractContextManager[Any]:
    """The cassette the run's agent calls go through, active for the ``with`` block. ``append``:
    a resumed run adds its calls to the recording instead of starting it over."""
    if record is None and replay is None:
        if os.environ.get("SMITHERS_CASSETTE"):  # a cassette from the environment: open it now, so a bad one exits 4
            from ..agents.cassette import active_cassette

            active_cassette()
        return contextlib.nullcontext()
    from ..agents.cassette import Cassette, use_cassette
    from ..errors import CassetteFileError

    if record is not None and replay is not None:
        raise CassetteFileError("--record and --replay cannot be used together", hint="record once, then replay that file")
    cassette = Cassette.for_replay(replay) if replay is not None else Cassette.for_record(record or "", append=append)
    return use_cassette(cassette)


def cassette_args(record: str | None, replay: str | None) -> list[str]:
    """The same options for a background (``--detach``) child, with absolute paths."""
    from pathlib import Path

    args: list[str] = []
    if record is not None:
        args += ["--record", str(Path(record).expanduser().resolve())]
    if replay is not None:
        args += ["--replay", str(Path(replay).expanduser().resolve())]
    return args
