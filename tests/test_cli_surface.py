"""The command's surface: --version, one JSON document from `up --json`, `cancel` of a run
that is over, option choices in --help, usage errors, and the tables."""

from __future__ import annotations

import json
import re
from importlib.metadata import version

import pytest
from conftest import Project


def test_version_prints_the_installed_version(project: Project) -> None:
    for flag in ("--version", "-V"):
        result = project.cli(flag)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"smithers {version('smithers-orchestrator')}\n"
        assert result.stderr == ""


CHAIN = """
from pydantic import BaseModel
from smithers import ContinueAsNew, Sequence, Task, workflow

class Count(BaseModel):
    gen: int

@workflow
def chain(ctx):
    gen = (ctx.carried or {}).get("gen", 1)
    return Sequence(
        Task("work", output=Count, value={"gen": gen}),
        gen < 3 and ContinueAsNew({"gen": gen + 1}),
    )
"""

FAILS = """
from pydantic import BaseModel
from smithers import Task, workflow

class Out(BaseModel):
    n: int

def boom():
    raise RuntimeError("boom")

@workflow
def fails(ctx):
    return Task("boom", output=Out, run=boom)
"""

WAITS = """
from pydantic import BaseModel
from smithers import Sequence, Signal, Task, workflow

class Note(BaseModel):
    text: str

@workflow
def waits(ctx):
    return Sequence(Task("first", output=Note, value={"text": "hi"}), Signal("go", schema=Note))
"""

ONE = """
from pydantic import BaseModel
from smithers import Task, workflow

class Note(BaseModel):
    text: str

@workflow
def one(ctx):
    return Task("only", output=Note, value={"text": "hi"})
"""


@pytest.mark.parametrize(
    ("source", "code", "status", "chain_length"),
    [(ONE, 0, "finished", 1), (CHAIN, 0, "finished", 3), (FAILS, 1, "failed", 1), (WAITS, 3, "waiting-event", 1)],
    ids=["finished", "continue-as-new", "failed", "waiting"],
)
def test_up_json_prints_exactly_one_document(project: Project, source: str, code: int, status: str, chain_length: int) -> None:
    project.write("wf.py", source)
    result = project.cli("up", "wf.py", "--json")
    assert result.returncode == code, result.stderr
    document = json.loads(result.stdout)  # the whole of stdout is one JSON value
    assert document["status"] == status
    assert len(document["chain"]) == chain_length
    assert document["chain"][-1] == document["run_id"]
    if status == "failed":
        assert "boom" in document["error"]["message"]
    if status.startswith("waiting"):
        assert [item["node_id"] for item in document["waiting"]] == ["go"]


def test_a_continued_run_is_not_resumed(project: Project) -> None:
    project.write("wf.py", CHAIN)
    started = project.cli("up", "wf.py", "--run-id", "head", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["chain"][0] == "head"
    for args in (("resume", "head"), ("up", "wf.py", "--run-id", "head", "--resume")):
        again = project.cli(*args, "--json")
        assert again.returncode == 4, again.stderr  # `head` continued as a new run: it is over
        assert "continued as a new run" in again.stderr
        assert again.stdout == ""


def _snapshot(project: Project, run_id: str) -> tuple[list[tuple], list[tuple]]:
    runs = project.query("SELECT * FROM _smithers_runs WHERE run_id = ?", (run_id,))
    events = project.query("SELECT seq, type FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,))
    return runs, events


@pytest.mark.parametrize(
    ("source", "status"), [(ONE, "finished"), (FAILS, "failed"), (WAITS, "cancelled"), (CHAIN, "continued")],
    ids=["finished", "failed", "cancelled", "continued"],
)
def test_cancel_of_a_run_that_is_over_changes_nothing_and_exits_4(project: Project, source: str, status: str) -> None:
    project.write("wf.py", source)
    project.cli("up", "wf.py", "--run-id", "r1", "--quiet")
    if status == "cancelled":  # a waiting run, nobody holding it: cancel marks it at once
        first = project.cli("cancel", "r1")
        assert first.returncode == 0, first.stdout + first.stderr
        assert first.stdout == "run r1: cancelled\n"
    before = _snapshot(project, "r1")
    assert project.query("SELECT status FROM _smithers_runs WHERE run_id = 'r1'") == [(status,)]
    result = project.cli("cancel", "r1")
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stdout == f"run r1: {status} (already over; nothing changed)\n"
    as_json = project.cli("cancel", "r1", "--json")
    assert as_json.returncode == 4
    assert json.loads(as_json.stdout) == {"run_id": "r1", "status": status}
    assert _snapshot(project, "r1") == before


def test_cancel_of_an_unknown_run_exits_4(project: Project) -> None:
    project.write("wf.py", ONE)
    project.cli("up", "wf.py", "--quiet")
    result = project.cli("cancel", "nope")
    assert result.returncode == 4
    assert "nope" in result.stderr


def test_choices_show_in_help_and_a_bad_choice_exits_4(project: Project) -> None:
    statuses = "queued|running|waiting-approval|waiting-event|waiting-timer|finished|failed|cancelled|continued"
    assert statuses in project.cli("ps", "--help").stdout
    assert "tree|mermaid|json" in project.cli("graph", "--help").stdout
    project.write("wf.py", ONE)
    for args, bad in ((("ps", "--status", "runing"), "runing"), (("graph", "wf.py", "--format", "svg"), "svg")):
        result = project.cli(*args)
        assert result.returncode == 4, result.stderr
        assert bad in result.stderr and "is not one of" in result.stderr
        assert result.stdout == ""
    # events --type takes a type or a prefix of one, and lists the prefixes
    project.cli("up", "wf.py", "--run-id", "r1", "--quiet")
    listed = re.search(r"prefix of one: ([A-Za-z, ]+)\.", " ".join(project.cli("events", "--help").stdout.split()))
    assert listed, "events --help lists the type prefixes"
    prefixes = listed.group(1).split(", ")
    assert prefixes == sorted(prefixes)
    assert {"Agent", "Approval", "Attempt", "Frame", "Human", "Loop", "Memory", "Node", "Run"} <= set(prefixes)
    assert project.cli("events", "r1", "--type", "Node").stdout.count("Node") == 3
    unknown = project.cli("events", "r1", "--type", "Nodes")
    assert unknown.returncode == 4 and "'Nodes' is neither an event type nor the start of one" in unknown.stderr
    # other usage errors keep the documented code too: a missing argument, an unknown option, a bad number
    assert project.cli("inspect").returncode == 4
    assert project.cli("ps", "--no-such-option").returncode == 4
    assert project.cli("up", "wf.py", "--max-concurrency", "many").returncode == 4


def test_tables_have_the_documented_columns(project: Project) -> None:
    project.write("wf.py", ONE)
    project.cli("up", "wf.py", "--run-id", "r1", "--quiet")
    project.write("waits.py", WAITS)
    project.cli("up", "waits.py", "--run-id", "r2", "--quiet")

    header, *rows = project.cli("ps").stdout.splitlines()
    assert header.split() == ["RUN", "ID", "WORKFLOW", "STATUS", "CREATED", "ELAPSED"]
    assert [row.split()[:3] for row in rows] == [["r2", "waits", "waiting-event"], ["r1", "one", "finished"]]
    # aligned: every row's status starts in the STATUS column
    column = header.index("STATUS")
    assert [row[column:].split()[0] for row in rows] == ["waiting-event", "finished"]

    lines = project.cli("inspect", "r1").stdout.splitlines()
    nodes = lines.index(next(line for line in lines if line.startswith("NODE")))
    assert lines[nodes].split() == ["NODE", "ITER", "STATUS", "ATTEMPTS", "TOOK", "OUTPUT", "/", "ERROR"]
    assert lines[nodes + 1].split()[:4] == ["only", "0", "finished", "1"]
    assert lines[nodes + 1].endswith('{"text": "hi"}')  # a cell is text, never Rich markup

    inbox = project.cli("inbox").stdout.splitlines()
    assert inbox[0].split() == ["KIND", "RUN", "ID", "NODE", "WAITING", "FOR", "ANSWER", "WITH"]
    assert inbox[1].split()[:3] == ["signal", "r2", "go[0]"]
    assert "smithers signal r2 go --data" in inbox[1]
    # no colour codes in a pipe
    assert "\x1b[" not in "\n".join([*rows, *lines, *inbox])


IMPORTED_BY = """
import json, sys
from smithers.cli.main import main
code = main(sys.argv[1:])
sys.stdout.write("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _modules_after(project: Project, *args: str) -> set[str]:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY, *args], cwd=project.root, env=project.env(), capture_output=True, text=True, timeout=60,
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["code"] == 0, result.stderr
    return set(report["modules"])


def test_read_commands_load_neither_the_engine_nor_other_commands(project: Project) -> None:
    project.write("wf.py", ONE)
    project.cli("up", "wf.py", "--run-id", "r1", "--quiet")
    for args in (("ps",), ("inspect", "r1"), ("ps", "--status", "finished", "--json")):
        loaded = _modules_after(project, *args)
        assert "smithers.cli.commands_read" in loaded
        assert not {"smithers.cli.commands_run", "smithers.cli.commands_human", "smithers.cli.commands_serve"} & loaded, args
        assert not any(name.startswith(("smithers.engine", "smithers.ops", "asyncio", "anyio")) for name in loaded), args
        assert "typer._adapters" not in loaded, args  # options parsed without building pydantic adapters
        assert "pydantic" not in loaded, args  # nor pydantic at all: reading runs needs no models
    everything = _modules_after(project, "--help")
    assert {"smithers.cli.commands_run", "smithers.cli.commands_read", "smithers.cli.commands_serve"} <= everything
    assert "smithers.engine.loop" not in everything


def test_one_format_for_durations_and_statuses() -> None:
    from smithers.cli.format import STATUS_STYLE, duration, error_text, short, took
    from smithers.states import AttemptStatus, NodeStatus, RunStatus

    assert [duration(ms) for ms in (14, 2_500, 187_000, 3_720_000)] == ["14ms", "2.5s", "3m07s", "1h02m"]
    assert took(None, 5) == "" and took(1_000, 1_014) == "14ms"
    assert short({"a": "x" * 100}, 20) == '{"a": "' + "x" * 12 + "…"
    assert error_text({"type": "ValueError", "message": "kaboom"}) == "ValueError: kaboom"
    assert error_text({"type": "RunError", "message": "stopped"}) == "stopped"
    # every status the store can hold has a colour
    assert {*RunStatus, *NodeStatus, *AttemptStatus} <= set(STATUS_STYLE)
