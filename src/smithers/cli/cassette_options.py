"""``--record FILE`` / ``--replay FILE`` for ``up`` and ``resume`` (agent cassettes, see
smithers/agents/cassette.py and docs/cassettes.md). The agents package is imported only when
a cassette is used: a plain ``smithers up`` stays light."""

from __future__ import annotations

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


class OpenCassette:
    """The cassette of this command's runs, active from :func:`open_cassette` until :meth:`close`."""

    def __init__(self, cassette: Any = None, token: Any = None) -> None:
        self._cassette = cassette
        self._token = token

    def close(self) -> None:
        if self._cassette is None:
            return
        from ..agents.cassette import deactivate

        deactivate(self._cassette, self._token)
        self._cassette = None


def open_cassette(record: str | None, replay: str | None, *, append: bool, background: bool = False) -> OpenCassette:
    """Open and activate the cassette the options ask for (nothing without them). ``append``: a
    resumed run adds its calls to the recording. ``background`` (``up --detach``): the child
    process gets it through ``SMITHERS_CASSETTE``/``SMITHERS_CASSETTE_MODE`` instead."""
    if record is None and replay is None:
        if os.environ.get("SMITHERS_CASSETTE"):  # a cassette from the environment: open it now, so a bad one exits 4
            from ..agents.cassette import active_cassette

            active_cassette()
        return OpenCassette()
    from ..agents.cassette import ENV_MODE, ENV_PATH, Cassette, activate
    from ..errors import CassetteFileError

    if record is not None and replay is not None:
        raise CassetteFileError("--record and --replay cannot be used together", hint="record once, then replay that file")
    if background:
        cassette = Cassette.for_replay(replay) if replay is not None else Cassette.for_record(record or "", append=append)
        cassette.close()  # checked (and a new recording started over) here; the child opens it again
        os.environ[ENV_PATH], os.environ[ENV_MODE] = str(cassette.path), cassette.mode
        return OpenCassette()
    cassette = Cassette.for_replay(replay) if replay is not None else Cassette.for_record(record or "", append=append)
    return OpenCassette(cassette, activate(cassette))
