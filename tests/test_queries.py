"""The read-side verbs behind their storage seam: output tables that are gone or broken, the
preview's private database, the package's import cost and layering, and `graph --run` on a run
that waits."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Project
from pydantic import BaseModel

from smithers import queries
from smithers.errors import StorageError, UserError
from smithers.storage.store import Store

OUTPUTS = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Pair(BaseModel):
    a: int
    b: str

@workflow
def outputs(ctx):
    return Sequence(Task("first", output=Pair, value={"a": 1, "b": "x"}), Task("second", output=Pair, value={"a": 2, "b": "y"}))
"""


def _finished_run(project: Project, run_id_of: Callable[[str], str]) -> tuple[str, str]:
    """A finished run with two output rows; returns (run_id, output table name)."""
    project.write("outputs.py", OUTPUTS)
    result = project.cli("up", "outputs.py")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_id_of(result.stdout)
    (table,) = {row[0] for row in project.query("SELECT output_table FROM _smithers_nodes WHERE run_id = ?", (run_id,))}
    return run_id, table


def _by_hand(db: Path, *statements: str) -> None:
    """Change the database the way a user with the sqlite3 shell would."""
    conn = sqlite3.connect(db)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


# -- output tables: "no such table" is no output; any other database error is a StorageError --


def test_an_output_table_dropped_by_hand_reads_as_no_output(project: Project, run_id_of: Callable[[str], str]) -> None:
    run_id, table = _finished_run(project, run_id_of)
    assert [n["output"] for n in project.json("inspect", run_id)["nodes"]] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    _by_hand(project.db, f'DROP TABLE "{table}"')

    detail = project.json("inspect", run_id)
    assert [(n["id"], n["status"], n["output"]) for n in detail["nodes"]] == [("first", "finished", None), ("second", "finished", None)]
    assert [i["output"] for i in project.json("node", run_id, "first")["iterations"]] == [None]


def test_an_output_table_that_cannot_be_read_is_a_storage_error(project: Project, run_id_of: Callable[[str], str]) -> None:
    run_id, table = _finished_run(project, run_id_of)
    # the table is there but not as smithers wrote it: reading it fails for a reason other than absence
    _by_hand(project.db, f'DROP TABLE "{table}"', f'CREATE TABLE "{table}" (something_else TEXT)')

    store = Store.open(project.db)
    try:
        with pytest.raises(StorageError, match=f"output table '{table}' of run {run_id}.*no such column: run_id"):
            queries.run_detail(store, run_id)
        with pytest.raises(StorageError, match="no such column"):
            queries.node_detail(store, run_id, "first")
    finally:
        store.close()

    result = project.cli("inspect", run_id, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "" and table in result.stderr and "no such column: run_id" in result.stderr


# -- the preview's database ------------------------------------------------------------------


class Note(BaseModel):
    text: str


def test_memory_store_is_migrated_and_private() -> None:
    first, second = Store.memory(), Store.memory()
    try:
        assert first.path == Path(":memory:")
        assert first.list_runs() == [] and first.output_table_kinds() == {}
        table = first.output_table(Note)
        assert first.output_table_kinds() == {table.name: {"text": "text"}}
        assert second.output_table_kinds() == {}  # each is its own database
    finally:
        first.close()
        second.close()


def test_graph_preview_creates_no_database(project: Project) -> None:
    project.write("outputs.py", OUTPUTS)
    result = project.cli("graph", "outputs.py", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert [c["id"] for c in json.loads(result.stdout)["children"][0]["children"]] == ["first", "second"]
    assert not project.db.exists()


# -- layering ----------------------------------------------------------------------------------


def test_importing_the_read_verbs_loads_no_engine() -> None:
    probe = (
        "import sys, smithers.queries as q; "
        "assert callable(q.why) and callable(q.run_chain) and callable(q.mermaid) and callable(q.run_detail); "
        "print(sorted(m for m in sys.modules if m.startswith(('smithers.engine', 'smithers.authoring', 'smithers.ops'))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_read_verbs_hold_no_sql() -> None:
    package = Path(queries.__file__).parent
    for source in sorted(package.glob("*.py")):
        text = source.read_text(encoding="utf-8")
        for needle in ("sqlite3", "execute(", "._rows(", ".conn", "SELECT ", "_smithers_"):
            assert needle not in text, f"{source.name} holds {needle!r}: SQL belongs behind a store method in storage/"


# -- graph --run on a run that waits -----------------------------------------------------------

WAITS = """
from pydantic import BaseModel
from smithers import Approval, Parallel, Signal, Task, Timer, workflow

class Note(BaseModel):
    text: str

@workflow
def waits(ctx):
    return Parallel(
        Approval("ship", request="Ship it?"),
        Signal("built", schema=Note),
        Timer("cool", duration="1h"),
        Task("done", output=Note, value={"text": "ok"}),
    )
"""


def _task_statuses(tree: dict) -> dict[str, str]:
    found: dict[str, str] = {}
    stack = [tree]
    while stack:
        node = stack.pop()
        if node["t"] == "task":
            found[node["id"]] = node["status"]
        stack.extend(node.get("children", ()))
    return found


def test_graph_of_a_waiting_run_shows_each_wait(project: Project, run_id_of: Callable[[str], str]) -> None:
    project.write("waits.py", WAITS)
    up = project.cli("up", "waits.py")
    assert up.returncode == 3, up.stdout + up.stderr
    run_id = run_id_of(up.stdout)

    tree = json.loads(project.cli("graph", "--run", run_id, "--format", "json").stdout)
    assert _task_statuses(tree) == {
        "ship": "waiting-approval", "built": "waiting-event", "cool": "waiting-timer", "done": "finished",
    }
    chart = project.cli("graph", "--run", run_id, "--format", "mermaid")
    assert chart.returncode == 0, chart.stderr
    for status in ("waiting_approval", "waiting_event", "waiting_timer"):
        assert f"  classDef {status} " in chart.stdout
    assert "<br/>waiting-approval" in chart.stdout
    text = project.cli("graph", "--run", run_id)
    assert text.returncode == 0, text.stderr
    assert "[waiting-event]" in next(line for line in text.stdout.splitlines() if "built" in line)

    # answered waits end; the timer still waits
    assert project.cli("approve", run_id).returncode == 0
    assert project.cli("signal", run_id, "built", "--data", '{"text": "b"}').returncode == 0
    resumed = project.cli("resume", run_id)
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    tree = json.loads(project.cli("graph", "--run", run_id, "--format", "json").stdout)
    assert _task_statuses(tree) == {"ship": "finished", "built": "finished", "cool": "waiting-timer", "done": "finished"}

    # the same statuses through the verb, keyed by (node, iteration)
    store = Store.open(project.db)
    try:
        assert queries.node_statuses(store, run_id)[("cool", 0)] == "waiting-timer"
    finally:
        store.close()


def test_the_status_lists_are_the_ones_in_states() -> None:
    from smithers.states import ENDED_RUN_STATUSES, RunStatus

    assert tuple(RunStatus) == queries.RUN_STATUSES
    assert queries.TERMINAL_STATUSES == ENDED_RUN_STATUSES
    for status in RunStatus:
        queries.check_run_status(status)  # every run status is one `ps --status` accepts
    with pytest.raises(UserError, match=r"unknown run status .runing.") as raised:
        queries.check_run_status("runing")
    assert raised.value.hint == f"use one of: {', '.join(RunStatus)}"
