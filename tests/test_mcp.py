"""``smithers mcp`` driven by the MCP SDK's own stdio client: every tool, the envelope, the
schemas and annotations, and every error path as an ``{ok: false, error}`` result."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anyio
import pytest
from mcp_client import connect
from pydantic import BaseModel

from smithers.storage.store import Store

GATE = """
from pydantic import BaseModel
from smithers import Approval, Sequence, Task, workflow

class In(BaseModel):
    target: str = "prod"

class Out(BaseModel):
    path: str

@workflow(input=In)
def gate(ctx):
    \"\"\"Build, ask before shipping, then ship.\"\"\"
    return Sequence(
        Task("build", output=Out, value={"path": "built"}),
        Approval("ship", Task("push", output=Out, value={"path": f"pushed to {ctx.input.target}"}), request="Ship it?"),
    )
"""

ASKS = """
from pydantic import BaseModel
from smithers import HumanTask, Sequence, Signal, Task, workflow

class Notes(BaseModel):
    text: str

class Go(BaseModel):
    version: str

class Out(BaseModel):
    path: str

@workflow
def first(ctx):
    notes, go = ctx.output("notes"), ctx.output("go")
    return Sequence(
        HumanTask("notes", output=Notes, prompt="Write the release notes"),
        Signal("go", schema=Go),
        notes and go and Task("release", output=Out, value={"path": f"{go.version}: {notes.text}"}),
    )

@workflow
def second(ctx):
    return Task("noop", output=Out, value={"path": "."})
"""

READ_TOOLS = {
    "list_workflows", "list_runs", "get_run", "explain_run", "get_run_events", "get_node", "get_chat_transcript", "list_pending",
    "get_diff",
}
ALL_TOOLS = READ_TOOLS | {
    "run_workflow", "approve", "deny", "send_signal", "answer_human", "cancel_run", "resume_run", "fork_run", "revert_attempt",
}


@pytest.fixture
def proj(tmp_path: Path) -> tuple[Path, Path]:
    """A project with two workflow files and a broken one; the database is NOT where discovery would
    look (state/runs.db), so every test also checks that --db is honoured."""
    flows = tmp_path / ".smithers" / "workflows"
    flows.mkdir(parents=True)
    (flows / "gate.py").write_text(textwrap.dedent(GATE))
    (flows / "asks.py").write_text(textwrap.dedent(ASKS))
    (flows / "broken.py").write_text("def oops(:\n")
    (tmp_path / "state").mkdir()
    return tmp_path, tmp_path / "state" / "runs.db"


def run(scenario) -> None:
    anyio.run(scenario)


def test_tools_have_typed_schemas_and_annotations(proj):
    root, db = proj

    async def scenario():
        async with connect(root, db) as client:
            tools = {t.name: t for t in (await client.session.list_tools()).tools}
            assert set(tools) == ALL_TOOLS
            for name, tool in tools.items():
                assert tool.description, name
                assert set(tool.output_schema["properties"]) == {"ok", "data", "error"}, name
                assert tool.input_schema["type"] == "object"
                assert tool.annotations.read_only_hint is (name in READ_TOOLS), name
            assert tools["deny"].annotations.destructive_hint and tools["cancel_run"].annotations.destructive_hint
            assert tools["revert_attempt"].annotations.destructive_hint and not tools["fork_run"].annotations.destructive_hint
            assert not tools["approve"].annotations.destructive_hint and not tools["run_workflow"].annotations.destructive_hint
            assert tools["get_run_events"].input_schema["properties"]["limit"]["maximum"] == 1000
            assert "run_id" in tools["get_run"].input_schema["required"]

    run(scenario)


def test_run_watch_and_approve_a_workflow(proj):
    root, db = proj

    async def scenario():
        async with connect(root, db) as client:
            found = await client.data("list_workflows")
            by_name = {w["name"]: w for w in found["workflows"]}
            assert set(by_name) == {"gate", "first", "second"}
            assert by_name["gate"]["description"] == "Build, ask before shipping, then ship."
            assert by_name["gate"]["input_schema"]["properties"]["target"]["default"] == "prod"
            assert by_name["first"]["spec"].endswith("asks.py:first") and by_name["gate"]["spec"].endswith("gate.py")
            assert [(p["path"].endswith("broken.py"), p["code"]) for p in found["problems"]] == [(True, "WORKFLOW_LOAD")]

            started = await client.data("run_workflow", spec=".smithers/workflows/gate.py", input={"target": "staging"})
            run_id = started["run_id"]
            assert started["pid"] > 0 and Path(started["log"]).parent.is_dir()
            detail = await client.until("get_run", lambda d: d["status"] == "waiting-approval", run_id=run_id)
            assert detail["input"] == {"target": "staging"} and detail["owner_alive"] is False
            assert {n["id"]: n["status"] for n in detail["nodes"]}["build"] == "finished"
            assert detail["waiting_for"][0]["node_id"] == "ship"

            assert [r["run_id"] for r in (await client.data("list_runs"))["runs"]] == [run_id]
            assert (await client.data("list_runs", status="finished"))["runs"] == []
            why = await client.data("explain_run", run_id=run_id)
            assert why["status"] == "waiting-approval" and "ship" in why["reason"]
            assert any(f"smithers approve {run_id}" in c for c in why["commands"])
            pending = await client.data("list_pending", run_id=run_id)
            assert [(i["kind"], i["node_id"]) for i in pending["items"]] == [("approval", "ship")]

            node = await client.data("get_node", run_id=run_id, node_id="build")
            assert node["iterations"][0]["output"]["path"] == "built"
            transcript = await client.data("get_chat_transcript", run_id=run_id)
            assert transcript["events"] == [] and transcript["more"] is False

            decided = await client.data("approve", run_id=run_id, node_id="ship", note="go", by="agent")
            assert decided["approved"] is True and decided["node_id"] == "ship" and decided["resumed"] is True
            done = await client.until("get_run", lambda d: d["status"] == "finished", run_id=run_id)
            assert {n["id"]: n["output"] for n in done["nodes"]}["push"]["path"] == "pushed to staging"

            # events page by page: the pages join up to exactly the run's events, in order
            seen, after, pages = [], 0, 0
            while True:
                page = await client.data("get_run_events", run_id=run_id, after_seq=after, limit=3)
                seen += page["events"]
                pages += 1
                assert page["next_after_seq"] == (page["events"][-1]["seq"] if page["events"] else after)
                after = page["next_after_seq"]
                if not page["more"]:
                    break
            store = Store.open(db)
            try:
                assert [e["seq"] for e in seen] == [e["seq"] for e in store.events(run_id)]
            finally:
                store.close()
            assert pages > 2 and seen[0]["type"] == "RunStarted"
            only = await client.data("get_run_events", run_id=run_id, type="Approval")
            assert {e["type"] for e in only["events"]} == {"ApprovalRequested", "ApprovalDecided", "ApprovalGranted"}

            # a finished run can be neither resumed nor cancelled
            assert (await client.error("resume_run", run_id=run_id))["code"] == "RUN_NOT_RESUMABLE"
            refused = await client.error("cancel_run", run_id=run_id)
            assert refused["code"] == "RUN_NOT_ACTIVE" and "finished" in refused["message"]

    run(scenario)


def test_human_answer_signal_deny_cancel_and_resume(proj):
    root, db = proj

    async def scenario():
        async with connect(root, db) as client:
            run_id = (await client.data("run_workflow", spec=".smithers/workflows/asks.py:first"))["run_id"]
            await client.until("get_run", lambda d: d["status"] == "waiting-approval", run_id=run_id)
            item = (await client.data("list_pending", run_id=run_id))["items"][0]
            assert item["kind"] == "human"
            wrong = await client.error("answer_human", request_id=item["request_id"], value={"txt": 1})
            assert wrong["code"] == "INVALID_INPUT" and "text" in wrong["message"]
            answered = await client.data("answer_human", request_id=item["request_id"], value={"text": "first"}, by="agent")
            assert answered["run_id"] == run_id and answered["status"] == "answered"
            await client.until("get_run", lambda d: d["status"] == "waiting-event", run_id=run_id)
            sent = await client.data("send_signal", run_id=run_id, name="go", data={"version": "1.0"})
            assert sent["duplicate"] is False and sent["seq"] >= 1
            done = await client.until("get_run", lambda d: d["status"] == "finished", run_id=run_id)
            assert {n["id"]: n["output"] for n in done["nodes"]}["release"] == {"path": "1.0: first"}

            denied_run = (await client.data("run_workflow", spec=".smithers/workflows/gate.py"))["run_id"]
            await client.until("get_run", lambda d: d["status"] == "waiting-approval", run_id=denied_run)
            denied = await client.data("deny", run_id=denied_run, node_id="ship", note="not today")
            assert denied["approved"] is False
            await client.until("get_run", lambda d: d["status"] == "failed", run_id=denied_run)
            assert "ship" in (await client.data("explain_run", run_id=denied_run))["reason"]

            cancelled_run = (await client.data("run_workflow", spec=".smithers/workflows/gate.py", run_id="my-run"))["run_id"]
            assert cancelled_run == "my-run"
            await client.until("get_run", lambda d: d["status"] == "waiting-approval", run_id="my-run")
            assert (await client.data("cancel_run", run_id="my-run"))["status"] == "cancelled"
            resumed = await client.data("resume_run", run_id="my-run")
            assert resumed["run_id"] == "my-run"
            await client.until("get_run", lambda d: d["status"] == "waiting-approval", run_id="my-run")
            assert (await client.error("run_workflow", spec=".smithers/workflows/gate.py", run_id="my-run"))["code"] == "RUN_EXISTS"

    run(scenario)


def test_errors_are_results_with_stable_codes(proj):
    root, db = proj

    async def scenario():
        async with connect(root, db) as client:
            for tool, args in [
                ("get_run", {}), ("explain_run", {}), ("get_run_events", {}), ("get_node", {"node_id": "x"}),
                ("get_chat_transcript", {}), ("list_pending", {}), ("approve", {}), ("deny", {}), ("cancel_run", {}),
                ("resume_run", {}), ("send_signal", {"name": "go"}),
            ]:
                error = await client.error(tool, run_id="no-such-run", **args)
                assert error["code"] == "UNKNOWN_RUN" and "no-such-run" in error["message"], (tool, error)
            assert (await client.error("answer_human", request_id="hr-nope", value={}))["code"] == "USAGE"

            missing = await client.error("run_workflow", spec="nowhere.py")
            assert missing["code"] == "WORKFLOW_LOAD" and "nowhere.py" in missing["message"]
            bad_input = await client.error("run_workflow", spec=".smithers/workflows/gate.py", input={"target": 3})
            assert bad_input["code"] == "INVALID_INPUT" and "target" in bad_input["message"]
            several = await client.error("run_workflow", spec=".smithers/workflows/asks.py")
            assert several["code"] == "WORKFLOW_LOAD" and "first" in several["message"]
            assert (await client.error("list_runs", status="runing"))["code"] == "USAGE"

            # arguments that do not match the input schema
            for tool, args, field in [
                ("get_run", {}, "run_id"), ("get_run_events", {"run_id": "r", "limit": 0}, "limit"),
                ("list_runs", {"limit": "many"}, "limit"), ("approve", {"run_id": "r", "rank": "a,b"}, "rank"),
            ]:
                result = await client.session.call_tool(tool, args)
                body = result.structured_content
                assert result.is_error and body["ok"] is False and body["error"]["code"] == "INVALID_ARGUMENTS", body
                assert field in body["error"]["message"]
            unknown = await client.session.call_tool("drop_tables", {})
            assert unknown.is_error and unknown.structured_content["error"]["code"] == "UNKNOWN_TOOL"

            # nothing pending: deny and approve say so; an unknown node is UNKNOWN_NODE
            run_id = (await client.data("run_workflow", spec=".smithers/workflows/gate.py"))["run_id"]
            await client.until("get_run", lambda d: d["status"] == "waiting-approval", run_id=run_id)
            nothing = await client.error("deny", run_id=run_id, node_id="build")
            assert nothing["code"] == "USAGE" and "not waiting" in nothing["message"]
            assert (await client.error("approve", run_id=run_id, node_id="nope"))["code"] == "UNKNOWN_NODE"
            assert (await client.error("get_node", run_id=run_id, node_id="nope"))["code"] == "UNKNOWN_NODE"
            assert (await client.error("get_chat_transcript", run_id=run_id, node_id="nope"))["code"] == "UNKNOWN_NODE"
            # the server still answers after all of that
            assert (await client.data("list_runs"))["runs"][0]["run_id"] == run_id

    run(scenario)


def test_list_workflows_takes_extra_paths(proj, tmp_path_factory):
    root, db = proj
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "solo.py").write_text(textwrap.dedent(GATE).replace("def gate", "def solo"))

    async def scenario():
        async with connect(root, db) as client:
            found = await client.data("list_workflows", paths=[str(elsewhere), str(elsewhere / "solo.py")])
            names = [w["name"] for w in found["workflows"]]
            assert names.count("solo") == 1 and "gate" in names

    run(scenario)



def test_a_broken_database_is_an_error_result_not_a_crash(tmp_path):
    """The database path is a folder: every call answers STORAGE naming it, and the server goes on."""
    (tmp_path / "db-is-a-folder").mkdir()

    async def scenario():
        async with connect(tmp_path, tmp_path / "db-is-a-folder") as client:
            for _ in range(2):
                error = await client.error("list_runs")
                assert error["code"] == "STORAGE" and "db-is-a-folder" in error["message"]

    run(scenario)


class Nothing(BaseModel):
    pass


def test_an_unexpected_exception_is_an_internal_result():
    from smithers.mcp.server import enveloped

    def broken() -> Nothing:
        raise KeyError("boom")

    result = enveloped(broken)()
    assert result.is_error and result.structured_content["error"]["code"] == "INTERNAL"
    assert "KeyError" in result.structured_content["error"]["message"] and "bug" in result.structured_content["error"]["hint"]


WRITER = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Out(BaseModel):
    text: str

def draft():
    Path("notes.txt").write_text("draft\\n")
    return {"text": "draft"}

def final():
    Path("notes.txt").write_text("final\\n")
    return {"text": "final"}

@workflow
def writer(ctx):
    return Sequence(Task("draft", output=Out, run=draft), Task("final", output=Out, run=final))
"""


def test_time_travel_tools_diff_revert_and_fork(proj):
    """get_diff, revert_attempt and fork_run (DESIGN §10.5, once §10.3 exists) call the verbs behind
    `smithers diff`, `revert` and `fork`: the same files, the same refusal, a queued or running fork."""
    root, db = proj
    (root / ".smithers" / "workflows" / "writer.py").write_text(textwrap.dedent(WRITER))

    async def scenario():
        async with connect(root, db) as client:
            run_id = (await client.data("run_workflow", spec=".smithers/workflows/writer.py"))["run_id"]
            await client.until("get_run", lambda d: d["status"] == "finished", run_id=run_id)

            diff = await client.data("get_diff", run_id=run_id, node_id="final")
            assert [(f["path"], f["status"], f["additions"], f["deletions"]) for f in diff["files"]] == [("notes.txt", "modified", 1, 1)]
            assert "-draft" in diff["patch"] and "+final" in diff["patch"]
            assert (await client.error("get_diff", run_id=run_id, node_id="nope"))["code"] == "UNKNOWN_NODE"

            (root / "notes.txt").write_text("my own edit\n")  # held by no snapshot: a revert would lose it
            refused = await client.error("revert_attempt", run_id=run_id, node_id="final", before=True)
            assert refused["code"] == "UNSAVED_CHANGES" and "notes.txt" in refused["message"]
            assert (root / "notes.txt").read_text() == "my own edit\n"
            reverted = await client.data("revert_attempt", run_id=run_id, node_id="final", before=True, force=True)
            assert reverted["files"] == ["notes.txt"] and (root / "notes.txt").read_text() == "draft\n"

            queued = await client.data("fork_run", run_id=run_id, frame_no=1, label="again")
            assert queued["forked_from"] == run_id and queued["status"] == "queued"
            started = await client.data("fork_run", run_id=run_id, frame_no=1, run=True)
            done = await client.until("get_run", lambda d: d["status"] == "finished", run_id=started["run_id"])
            assert {n["id"]: n["output"]["text"] for n in done["nodes"]} == {"draft": "draft", "final": "final"}
            assert (await client.error("fork_run", run_id=run_id, frame_no=999))["code"] == "UNKNOWN_FRAME"

    run(scenario)
