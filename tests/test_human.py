"""People in the loop, through the real CLI: Approval (every on_deny policy, select, rank,
async), `needs_approval` gates, HumanTask answers, and what `ps`, `inbox` and `why` show
while a run waits."""

from __future__ import annotations

import json

import pytest

POLICY = """
from pydantic import BaseModel
from smithers import Approval, ApprovalRequest, Sequence, Task, workflow

class Out(BaseModel):
    path: str

class In(BaseModel):
    policy: str = "fail"

@workflow(input=In)
def policy(ctx):
    decision = ctx.output("ship")
    return Sequence(
        Task("build", output=Out, value={"path": "built"}),
        Approval(
            "ship",
            Task("push", output=Out, value={"path": "pushed"}),
            Task("notify", output=Out, value={"path": "notified"}),
            request=ApprovalRequest(title="Ship v1.2?", summary="3 commits", metadata={"env": "prod"}),
            on_deny=ctx.input.policy,
        ),
        decision is not None and Task("react", output=Out, value={"path": "approved" if decision.approved else "denied"}),
        Task("report", output=Out, value={"path": "reported"}),
    )
"""


def _rows(project, table: str, run_id: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in project.query(f"SELECT node_id, * FROM {table} WHERE run_id = ?", (run_id,))}


def _statuses(project, run_id: str) -> dict[str, str]:
    return dict(project.query("SELECT node_id, status FROM _smithers_nodes WHERE run_id = ?", (run_id,)))


def _run_status(project, run_id: str) -> str:
    return project.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0]


def _finish_order(project, run_id: str) -> list[str]:
    rows = project.query("SELECT node_id FROM _smithers_events WHERE run_id = ? AND type = 'NodeFinished' ORDER BY seq", (run_id,))
    return [r[0] for r in rows]


def _up(project, run_id_of, *args: str) -> tuple[str, object]:
    result = project.cli("up", *args)
    assert result.returncode == 3, result.stdout + result.stderr
    return run_id_of(result.stdout), result


# -- Approval: approve, and deny under each on_deny policy -------------------------------------


def test_approve_runs_the_gated_subtree_and_records_the_decision(any_project, run_id_of):
    project = any_project  # on SQLite and on PostgreSQL
    project.write("wf.py", POLICY)
    run_id, up = _up(project, run_id_of, "wf.py")
    assert f"run {run_id} waiting-approval" in up.stdout
    assert f"smithers approve {run_id} --node ship" in up.stdout
    assert f"smithers deny {run_id} --node ship" in up.stdout
    # the gated subtree and everything after the approval wait for the decision
    assert _statuses(project, run_id) == {
        "build": "finished", "ship": "waiting-approval", "push": "pending", "notify": "pending", "report": "pending",
    }
    listed = project.json("ps", "--status", "waiting-approval")
    assert [r["run_id"] for r in listed] == [run_id]
    assert project.json("ps", "--status", "finished") == []

    # approving a node that is not waiting changes nothing
    wrong = project.cli("approve", run_id, "--node", "build")
    assert wrong.returncode == 4
    assert "'build' is not waiting for an approval" in wrong.stderr
    assert project.query("SELECT status FROM _smithers_approvals WHERE run_id = ?", (run_id,)) == [("requested",)]

    approved = project.cli("approve", run_id, "--note", "looks good", "--by", "alice", "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["node_id"] == "ship"
    assert _run_status(project, run_id) == "waiting-approval"  # recorded; nothing ran yet
    assert "push" not in _finish_order(project, run_id)

    resumed = project.cli("resume", run_id, "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _finish_order(project, run_id) == ["build", "ship", "push", "notify", "react", "report"]
    out = _rows(project, "out", run_id)
    assert out["react"][-1] == "approved"
    (decision,) = project.query(
        "SELECT approved, note, decided_by, decided_at, selected, ranked FROM approval_decision WHERE run_id = ? AND node_id = 'ship'",
        (run_id,),
    )
    assert decision[:3] == (1, "looks good", "alice")
    assert decision[3] and decision[4] is None and decision[5] is None
    # decided once: a second decision is refused and nothing changes
    again = project.cli("deny", run_id, "--node", "ship")
    assert again.returncode == 4
    assert project.query("SELECT status, decided_by FROM _smithers_approvals WHERE run_id = ?", (run_id,)) == [("approved", "alice")]


@pytest.mark.parametrize("policy", ["fail", "continue", "skip"])
def test_deny_follows_on_deny(project, run_id_of, policy):
    project.write("wf.py", POLICY)
    run_id, _ = _up(project, run_id_of, "wf.py", "--input", json.dumps({"policy": policy}), "-q")
    denied = project.cli("deny", run_id, "--node", "ship", "--note", "not on a Friday", "--by", "bob")
    assert denied.returncode == 0, denied.stderr
    resumed = project.cli("resume", run_id, "-q")
    statuses = _statuses(project, run_id)
    if policy == "fail":
        assert resumed.returncode == 1, resumed.stdout
        assert "denied" in resumed.stdout and "not on a Friday" in resumed.stdout
        assert _run_status(project, run_id) == "failed"
        assert statuses["ship"] == "failed"
        assert statuses["push"] == statuses["report"] == "pending"
        assert _finish_order(project, run_id) == ["build"]
        # resuming again does not turn the denial into an approval
        assert project.cli("resume", run_id, "-q").returncode == 1
        assert "push" not in _finish_order(project, run_id)
    elif policy == "continue":
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert project.query(
            "SELECT approved, note, decided_by FROM approval_decision WHERE run_id = ? AND node_id = 'ship'", (run_id,)
        ) == [(0, "not on a Friday", "bob")]
        order = _finish_order(project, run_id)
        assert _rows(project, "out", run_id)["react"][-1] == "denied"
        assert order.index("react") < order.index("report")  # the branch on the decision comes first, as written
        # the decision is recorded, but the gated children never run: they are skipped, and what follows goes on
        assert statuses["ship"] == "finished"
        assert statuses["push"] == statuses["notify"] == "skipped"
        assert order == ["build", "ship", "react", "report"]
        assert "push" not in _rows(project, "out", run_id)
        skipped = project.query(
            "SELECT node_id, payload_json FROM _smithers_events WHERE run_id = ? AND type = 'NodeSkipped' ORDER BY seq", (run_id,)
        )
        assert [(n, json.loads(p)["reason"]) for n, p in skipped] == [("push", "approval denied"), ("notify", "approval denied")]
    else:  # skip: the approval and its gated subtree are skipped; what follows runs
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert statuses["ship"] == statuses["push"] == statuses["notify"] == "skipped"
        assert "react" not in statuses  # no decision row to branch on
        assert _finish_order(project, run_id) == ["build", "report"]
        assert project.query("SELECT status FROM _smithers_approvals WHERE run_id = ?", (run_id,)) == [("denied",)]


def test_deny_of_an_unknown_run(project):
    project.write("wf.py", POLICY)
    result = project.cli("deny", "no-such-run", "--node", "ship")
    assert result.returncode == 4
    assert "no-such-run" in result.stderr


# -- needs_approval gates ---------------------------------------------------------------------

GATES = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Out(BaseModel):
    n: int

@workflow
def gates(ctx):
    return Sequence(
        Task("prepare", output=Out, value={"n": 1}),
        Task("deploy", output=Out, value={"n": 2}, needs_approval=True, label="Deploy to prod?"),
        Task("migrate", output=Out, value={"n": 3}, needs_approval=True),
        Task("done", output=Out, value={"n": 4}),
    )
"""


def test_two_gates_in_sequence(project, run_id_of):
    project.write("wf.py", GATES)
    run_id, up = _up(project, run_id_of, "wf.py", "-q")
    assert "deploy[0]: Deploy to prod?" in up.stdout
    assert _statuses(project, run_id)["deploy"] == "waiting-approval"
    assert "deploy" not in _rows(project, "out", run_id)  # a gate comes before the task runs

    assert project.cli("approve", run_id).returncode == 0  # the only pending approval: no --node needed
    decided = project.json("why", run_id)
    assert decided["reason"].startswith("what the run waited for has arrived")
    assert decided["commands"] == [f"smithers resume {run_id}"]
    second = project.cli("resume", run_id, "-q")
    assert second.returncode == 3, second.stdout + second.stderr
    assert f"smithers approve {run_id} --node migrate" in second.stdout
    assert _finish_order(project, run_id) == ["prepare", "deploy"]

    assert project.cli("approve", run_id, "--node", "migrate").returncode == 0
    assert project.cli("resume", run_id, "-q").returncode == 0
    assert _finish_order(project, run_id) == ["prepare", "deploy", "migrate", "done"]
    assert project.query("SELECT node_id, status, gate FROM _smithers_approvals WHERE run_id = ? ORDER BY node_id", (run_id,)) == [
        ("deploy", "approved", 1), ("migrate", "approved", 1),
    ]


DENIED_GATES = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Out(BaseModel):
    n: int

@workflow
def gates(ctx):
    return Sequence(
        Task("optional", output=Out, value={"n": 1}, needs_approval=True, continue_on_fail=True),
        Task("required", output=Out, value={"n": 2}, needs_approval=True),
        Task("done", output=Out, value={"n": 3}),
    )
"""


def test_a_denied_gate_fails_the_run_unless_continue_on_fail(project, run_id_of):
    project.write("wf.py", DENIED_GATES)
    run_id, _ = _up(project, run_id_of, "wf.py", "-q")
    assert project.cli("deny", run_id, "--node", "optional").returncode == 0
    after_optional = project.cli("resume", run_id, "-q")
    assert after_optional.returncode == 3, after_optional.stdout + after_optional.stderr  # continue_on_fail: on to the next gate
    assert _statuses(project, run_id)["optional"] == "failed"
    assert project.cli("deny", run_id, "--node", "required", "--note", "no").returncode == 0
    final = project.cli("resume", run_id, "-q")
    assert final.returncode == 1, final.stdout + final.stderr
    assert "'required'" in final.stdout and "denied" in final.stdout
    assert _statuses(project, run_id) == {"optional": "failed", "required": "failed", "done": "pending"}
    assert _finish_order(project, run_id) == []


# -- select and rank ---------------------------------------------------------------------------

CHOICES = """
from pydantic import BaseModel
from smithers import Approval, Sequence, Task, workflow

class Out(BaseModel):
    text: str

@workflow
def choices(ctx):
    pick, order = ctx.output("pick"), ctx.output("order")
    return Sequence(
        Approval("pick", mode="select", options=["blue", {"key": "green", "label": "Green"}], request="Which color?"),
        Approval("order", mode="rank", options=["x", "y", "z"], request="Order these"),
        pick and order and Task("use", output=Out, value={"text": pick.selected + ":" + ",".join(order.ranked)}),
        Task("last", output=Out, value={"text": "last"}),
    )
"""


def test_select_and_rank(project, run_id_of):
    project.write("wf.py", CHOICES)
    run_id, up = _up(project, run_id_of, "wf.py", "-q")
    assert f"smithers approve {run_id} --node pick --select KEY" in up.stdout

    def approval_rows():
        return project.query("SELECT node_id, status, decision_json FROM _smithers_approvals WHERE run_id = ? ORDER BY node_id", (run_id,))

    before = approval_rows()
    for bad, message in ((["--select", "red"], "'red' is not an option"), (["--rank", "blue,green"], "--select")):
        refused = project.cli("approve", run_id, "--node", "pick", *bad)
        assert refused.returncode == 4, refused.stdout
        assert message in refused.stderr
    assert approval_rows() == before
    assert project.cli("approve", run_id, "--node", "pick", "--select", "green").returncode == 0
    waiting = project.cli("resume", run_id, "-q")
    assert waiting.returncode == 3
    assert f"smithers approve {run_id} --node order --rank x,y,z" in waiting.stdout

    before = approval_rows()
    for bad in ("x,y", "x,y,z,z"):
        refused = project.cli("approve", run_id, "--rank", bad)
        assert refused.returncode == 4, refused.stdout
        assert "must list each of" in refused.stderr
    assert approval_rows() == before
    assert project.cli("approve", run_id, "--rank", "z, x ,y").returncode == 0
    assert project.cli("resume", run_id, "-q").returncode == 0
    assert _rows(project, "out", run_id)["use"][-1] == "green:z,x,y"
    # the task mounted by the decision runs before the one written after it, though the decision was picked up by a resume
    assert _finish_order(project, run_id) == ["pick", "order", "use", "last"]
    decisions = {r[0]: r[1:] for r in project.query(
        "SELECT node_id, approved, selected, ranked FROM approval_decision WHERE run_id = ?", (run_id,)
    )}
    assert decisions["pick"] == (1, "green", None)
    assert decisions["order"][:2] == (1, None) and json.loads(decisions["order"][2]) == ["z", "x", "y"]


# -- async approval ---------------------------------------------------------------------------

ASYNC = """
import time
from pydantic import BaseModel
from smithers import Approval, Parallel, Sequence, Task, workflow

class Out(BaseModel):
    text: str

def slow():
    time.sleep(0.2)
    return {"text": "slow"}

@workflow
def background(ctx):
    review = ctx.output("review")
    return Sequence(
        Parallel(
            Approval("review", request="Review the plan?", async_=True),
            Task("lint", output=Out, run=slow),
        ),
        Task("later", output=Out, value={"text": "later"}),
        review is not None and Task("after", output=Out, value={"text": "yes" if review.approved else "no"}),
    )
"""


def test_async_approval_lets_other_work_finish(project, run_id_of):
    project.write("wf.py", ASYNC)
    run_id, up = _up(project, run_id_of, "wf.py", "-q")
    assert f"run {run_id} waiting-approval" in up.stdout
    statuses = _statuses(project, run_id)
    assert statuses == {"review": "waiting-approval", "lint": "finished", "later": "finished"}
    assert project.cli("approve", run_id, "--node", "review").returncode == 0
    resumed = project.cli("resume", run_id, "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _rows(project, "out", run_id)["after"][-1] == "yes"
    assert _finish_order(project, run_id)[-2:] == ["review", "after"]


def test_async_approval_cannot_gate_children(project):
    project.write("wf.py", """
from pydantic import BaseModel
from smithers import Approval, Task, workflow

class Out(BaseModel):
    n: int

@workflow
def wf(ctx):
    return Approval("ship", Task("push", output=Out, value={"n": 1}), async_=True)
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 4
    assert "approval 'ship': async_=True cannot gate children" in result.stderr
    assert project.query("SELECT count(*) FROM _smithers_runs") == [(0,)]


# -- human tasks ------------------------------------------------------------------------------

HUMAN = """
from typing import Literal
from pydantic import BaseModel
from smithers import HumanTask, Sequence, Task, workflow

class Triage(BaseModel):
    priority: Literal["low", "high"]
    owner: str

class Out(BaseModel):
    text: str

@workflow
def triage(ctx):
    answer = ctx.output("triage")
    return Sequence(
        HumanTask("triage", output=Triage, prompt="Who owns this, and how urgent is it?"),
        answer and Task("route", output=Out, value={"text": f"{answer.owner}/{answer.priority}"}),
    )
"""


def test_human_task_invalid_then_valid_answer(project, run_id_of):
    project.write("wf.py", HUMAN)
    run_id, up = _up(project, run_id_of, "wf.py", "-q")
    ((request_id,),) = project.query("SELECT request_id FROM _smithers_human_requests WHERE run_id = ?", (run_id,))
    assert f"(request {request_id})" in up.stdout
    assert f"smithers human answer {request_id} --value" in up.stdout

    why = project.json("why", run_id)
    assert request_id in why["reason"] and "Who owns this" in why["reason"]
    assert why["commands"][0] == f"smithers human answer {request_id} --value '{{...}}'"
    assert f"smithers resume {run_id}" in why["commands"]

    bad = project.cli("human", "answer", request_id, "--value", '{"priority": "urgent"}')
    assert bad.returncode == 4
    assert "priority" in bad.stderr and "owner" in bad.stderr  # every validation error, by field
    assert project.cli("human", "answer", "hr-00000000", "--value", "{}").returncode == 4
    (pending,) = [i for i in project.json("inbox") if i["kind"] == "human"]
    assert pending["request_id"] == request_id and pending["run_id"] == run_id

    good = project.cli("human", "answer", request_id, "--value", '{"priority": "high", "owner": "carol"}', "--by", "carol")
    assert good.returncode == 0, good.stderr
    assert project.cli("human", "answer", request_id, "--value", '{"priority": "low", "owner": "x"}').returncode == 4
    assert project.json("inbox") == []
    assert project.cli("resume", run_id, "-q").returncode == 0
    assert _rows(project, "triage", run_id)["triage"][-2:] == ("high", "carol")
    assert _rows(project, "out", run_id)["route"][-1] == "carol/high"


# -- inbox and why across everything a run can wait for ------------------------------------------

EVERYTHING = """
from pydantic import BaseModel
from smithers import Approval, HumanTask, Parallel, Signal, Timer, workflow

class Note(BaseModel):
    text: str

@workflow
def everything(ctx):
    return Parallel(
        Approval("ship", request={"title": "Ship it?", "summary": "v2"}),
        HumanTask("name", output=Note, prompt="Name the release"),
        Signal("built", schema=Note, correlation_id="b-7"),
        Timer("cool", duration="1s"),
    )
"""


def test_inbox_and_why_list_what_waits_with_commands(project, run_id_of):
    project.write("wf.py", EVERYTHING)
    first, up = _up(project, run_id_of, "wf.py")
    second, _ = _up(project, run_id_of, "wf.py", "-q")
    assert f"run {first} waiting-approval" in up.stdout
    for line in ("waiting for approval ship[0]: Ship it?", "waiting for signal built[0]", "waiting for timer cool[0]",
                 f"smithers signal {first} built --data '{{...}}' --correlation b-7"):
        assert line in up.stdout

    items = project.json("inbox")
    assert sorted((i["run_id"], i["kind"]) for i in items) == sorted(
        (run, kind) for run in (first, second) for kind in ("approval", "human", "signal")
    )
    for item in items:
        assert {"kind", "run_id", "node_id", "iteration", "since_ms", "commands"} <= set(item)
        run = item["run_id"]
        if item["kind"] == "approval":
            assert item["title"] == "Ship it?" and item["summary"] == "v2" and item["mode"] == "approve"
            assert item["commands"] == [f"smithers approve {run} --node ship", f"smithers deny {run} --node ship"]
        elif item["kind"] == "human":
            assert item["title"] == "Name the release" and item["schema"]["required"] == ["text"]
            assert item["commands"] == [f"smithers human answer {item['request_id']} --value '{{...}}'"]
        else:
            assert item["signal"] == "built" and item["correlation_id"] == "b-7"
            assert item["commands"] == [f"smithers signal {run} built --data '{{...}}' --correlation b-7"]
    text = project.cli("inbox")
    assert text.returncode == 0 and f"smithers approve {first} --node ship" in text.stdout

    why = project.json("why", first)
    assert why["status"] == "waiting-approval"
    assert sorted(i["kind"] for i in why["waiting_for"]) == ["approval", "human", "signal", "timer"]
    assert {b["node_id"]: b["status"] for b in why["blocked_on"]} == {
        "ship": "waiting-approval", "name": "waiting-approval", "built": "waiting-event", "cool": "waiting-timer",
    }
    assert "approval ship[0] (Ship it?)" in why["reason"] and "signal 'built'" in why["reason"]
    assert f"smithers approve {first} --node ship" in why["commands"]
    assert f"smithers signal {first} built --data '{{...}}' --correlation b-7" in why["commands"]
    human_why = project.cli("why", first)
    assert f"smithers deny {first} --node ship" in human_why.stdout

    # answer everything for the first run; the second still waits
    (request_id,) = [i["request_id"] for i in items if i["kind"] == "human" and i["run_id"] == first]
    assert project.cli("approve", first).returncode == 0
    assert project.cli("human", "answer", request_id, "--value", '{"text": "Aurora"}').returncode == 0
    assert project.cli("signal", first, "built", "--data", '{"text": "ok"}', "--correlation", "b-7").returncode == 0
    assert {i["run_id"] for i in project.json("inbox")} == {second}
    done = project.cli("resume", first, "-q")  # by now the 1 s timer is due
    assert done.returncode == 0, done.stdout + done.stderr
    assert project.json("why", first)["commands"] == []
    # a cancelled run's waits leave the inbox (they come back if it is resumed)
    assert project.cli("cancel", second).returncode == 0
    assert project.json("inbox") == []


# -- a Subflow whose child waits ---------------------------------------------------------------

CHILD_WAITS = """
from pydantic import BaseModel
from smithers import Approval, Sequence, Task, workflow

class Out(BaseModel):
    path: str

@workflow
def child(ctx):
    return Sequence(
        Task("prep", output=Out, value={"path": "prepped"}),
        Approval("ok", request="Let the child go on?"),
        Task("result", output=Out, value={"path": "child-done"}),
    )
"""

PARENT_OF_WAITING = """
from pydantic import BaseModel
from smithers import Sequence, Subflow, Task, workflow

class Out(BaseModel):
    path: str

@workflow
def parent(ctx):
    return Sequence(
        Task("before", output=Out, value={"path": "before"}),
        Subflow("kid", workflow="child.py", output=Out),
        Task("after", output=Out, value={"path": "after"}),
    )
"""


def test_a_subflow_whose_child_waits_makes_the_parent_wait(project, run_id_of):
    project.write("child.py", CHILD_WAITS)
    project.write("parent.py", PARENT_OF_WAITING)
    parent_id, up = _up(project, run_id_of, "parent.py")  # exit 3: the parent waits, it does not fail
    child_id = f"{parent_id}.kid.0"
    assert f"run {parent_id} waiting-approval" in up.stdout
    assert f"smithers approve {child_id} --node ok" in up.stdout  # the child's answer is the parent's next step
    assert _run_status(project, parent_id) == "waiting-approval"
    assert _run_status(project, child_id) == "waiting-approval"
    assert _statuses(project, parent_id) == {"before": "finished", "kid": "waiting-approval", "after": "pending"}
    assert _statuses(project, child_id) == {"prep": "finished", "ok": "waiting-approval", "result": "pending"}

    why = project.json("why", parent_id)
    assert child_id in why["reason"] and "approval ok[0]" in why["reason"]
    (item,) = why["waiting_for"]
    assert (item["kind"], item["node_id"], item["child_run_id"], item["child_status"]) == ("subflow", "kid", child_id, "waiting-approval")
    assert f"smithers approve {child_id} --node ok" in why["commands"]
    assert f"smithers resume {parent_id}" in why["commands"]

    # resuming before the child's wait is answered: both wait again, nothing runs twice
    early = project.cli("resume", parent_id, "-q")
    assert early.returncode == 3, early.stdout + early.stderr
    assert _statuses(project, parent_id)["kid"] == "waiting-approval"
    assert _finish_order(project, child_id) == ["prep"]

    undecided = project.cli("supervise", "--once", "--dry-run")
    assert parent_id not in undecided.stdout  # nothing has arrived for the child: nothing to resume
    assert project.cli("approve", child_id, "--node", "ok").returncode == 0
    dry = project.cli("supervise", "--once", "--dry-run")  # the child's decision is the parent's reason to go on
    assert f"skipped {parent_id}: dry run (would_resume=subflow child run {child_id}: approval decided)" in dry.stdout, dry.stdout
    done = project.cli("resume", parent_id, "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _run_status(project, parent_id) == _run_status(project, child_id) == "finished"
    assert _finish_order(project, child_id) == ["prep", "ok", "result"]
    assert _finish_order(project, parent_id) == ["before", "kid", "after"]
    assert _rows(project, "out", parent_id)["kid"][-1] == "child-done"
    # the parent's attempts while the child waited were suspended, not failed: no retry budget used
    attempts = project.query(
        "SELECT attempt, status FROM _smithers_attempts WHERE run_id = ? AND node_id = 'kid' ORDER BY attempt", (parent_id,)
    )
    assert attempts == [(1, "suspended"), (2, "suspended"), (3, "finished")]
    suspended = project.query(
        "SELECT attempt, payload_json FROM _smithers_events WHERE run_id = ? AND type = 'AttemptSuspended' ORDER BY seq", (parent_id,)
    )
    assert [(a, json.loads(p)["child_run_id"]) for a, p in suspended] == [(1, child_id), (2, child_id)]
