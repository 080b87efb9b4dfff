"""Scorers (DESIGN §10.6): real runs of the real CLI. A scorer runs after its task, off the
critical path; its score (or its error) is one `_smithers_scores` row committed with its
`ScoreRecorded` event; a scorer never fails the run; sampling is a deterministic ratio;
missing scores are computed on resume; `smithers scores`, the node JSON and the metrics show them."""

from __future__ import annotations

import json
import signal

import pytest
from conftest import Project
from prometheus_client.parser import text_string_to_metric_families

from smithers.authoring.scoring import is_sampled
from smithers.observability.metrics import render_metrics

BASIC = """
import asyncio
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.scorers import Score, latency, schema_adherence, scorer

class Out(BaseModel):
    n: int

@scorer
def ratio(inp):
    return Score(inp.output.n / 10, reason=f"n={inp.output.n}", meta={"seen_input": inp.input})

@scorer
def broken(inp):
    raise RuntimeError("the scorer itself is broken")

@scorer(name="async-check")
async def async_check(inp):
    await asyncio.sleep(0)
    return inp.attempt == 1 and inp.node == "second"

def out_of_range(inp):  # a plain function works too
    return 3.5

@scorer(timeout="200ms")
async def hangs(inp):
    await asyncio.sleep(3600)

def compute(tc):
    return {"n": 7}

@workflow
def scored(ctx):
    return Sequence(
        Task("first", output=Out, value={"n": 4}, scorers=[ratio, broken, latency(target="30s"), hangs]),
        Task("second", output=Out, run=compute, scorers=[ratio, async_check, schema_adherence(), out_of_range]),
    )
"""


def scores_of(project: Project, run_id: str) -> dict[tuple[str, str], tuple]:
    rows = project.query(
        "SELECT node_id, scorer, value, reason, error_json, attempt, latency_ms, meta_json FROM _smithers_scores WHERE run_id = ?",
        (run_id,),
    )
    return {(r[0], r[1]): r[2:] for r in rows}


def test_scorers_record_scores_and_errors_without_failing_the_run(project: Project) -> None:
    project.write("wf.py", BASIC)
    up = project.cli("up", "wf.py", "--run-id", "r1", "--input", '{"topic": "x"}', "-q")
    assert up.returncode == 0, up.stdout + up.stderr
    assert project.query("SELECT status FROM _smithers_runs WHERE run_id = 'r1'") == [("finished",)]
    scores = scores_of(project, "r1")
    assert set(scores) == {
        ("first", "ratio"), ("first", "broken"), ("first", "latency"), ("first", "hangs"),
        ("second", "ratio"), ("second", "async-check"), ("second", "schema_adherence"), ("second", "out_of_range"),
    }
    assert scores[("first", "ratio")][:2] == (0.4, "n=4")
    assert json.loads(scores[("first", "ratio")][5]) == {"seen_input": {"topic": "x"}}  # the run's input
    assert scores[("second", "ratio")][0] == 0.7
    assert scores[("second", "async-check")][0] == 1.0
    assert scores[("second", "schema_adherence")][0] == 1.0
    assert scores[("first", "latency")][0] == 1.0
    value, reason, error_json, attempt, latency_ms, _ = scores[("first", "broken")]
    assert value is None and reason is None and attempt == 1 and latency_ms >= 0
    error = json.loads(error_json)
    assert error["type"] == "RuntimeError" and error["message"] == "the scorer itself is broken" and "Traceback" in error["traceback"]
    hung = json.loads(scores[("first", "hangs")][2])
    assert hung["type"] == "ScorerTimeout" and "longer than 0.2s" in hung["message"]
    bad = json.loads(scores[("second", "out_of_range")][2])
    assert bad["type"] == "ValueError" and "outside [0, 1]" in bad["message"]
    # one ScoreRecorded per row, naming the same node, attempt and scorer; all before the run ended
    events = project.query(
        "SELECT seq, type, node_id, attempt, payload_json FROM _smithers_events WHERE run_id = 'r1' ORDER BY seq"
    )
    recorded = [(e[2], json.loads(e[4])["scorer"], e[3]) for e in events if e[1] == "ScoreRecorded"]
    assert sorted(recorded) == sorted((node, scorer, 1) for node, scorer in scores)
    finished_seq = next(e[0] for e in events if e[1] == "RunFinished")
    assert all(e[0] < finished_seq for e in events if e[1] == "ScoreRecorded")
    broken = next(json.loads(e[4]) for e in events if e[1] == "ScoreRecorded" and json.loads(e[4])["scorer"] == "broken")
    assert broken["value"] is None and broken["error"]["type"] == "RuntimeError"


SLOW = """
import asyncio, os, pathlib
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.scorers import Score, scorer

class Out(BaseModel):
    n: int

MARK = pathlib.Path("second-started")

@scorer
async def waits_for_second(inp):
    # holds its score until the next task has run: a scorer that blocked scheduling would never see it
    for _ in range(400):
        if MARK.exists():
            return Score(1.0, reason="the next task ran while this scorer was still working")
        await asyncio.sleep(0.025)
    return Score(0.0, reason="the next task did not start while this scorer ran")

def second(tc):
    MARK.write_text("x")
    return {"n": 2}

@workflow
def slow(ctx):
    return Sequence(
        Task("first", output=Out, value={"n": 1}, scorers=[waits_for_second]),
        Task("second", output=Out, run=second),
    )
"""


def test_a_scorer_runs_off_the_critical_path_and_the_run_waits_for_it_to_land(project: Project) -> None:
    project.write("wf.py", SLOW)
    up = project.cli("up", "wf.py", "--run-id", "s", "-q")
    assert up.returncode == 0, up.stdout + up.stderr
    assert scores_of(project, "s")[("first", "waits_for_second")][0] == 1.0
    seq = {
        (t, n): q for q, t, n in project.query("SELECT seq, type, node_id FROM _smithers_events WHERE run_id = 's' AND type IN "
                                               "('NodeFinished', 'NodeStarted', 'ScoreRecorded', 'RunFinished')")
    }
    # the next task started after the first finished and before its score was recorded; the run ended last
    assert seq[("NodeFinished", "first")] < seq[("NodeStarted", "second")] < seq[("ScoreRecorded", "first")] < seq[("RunFinished", None)]
    assert seq[("NodeFinished", "second")] < seq[("RunFinished", None)]


SAMPLED = """
from pydantic import BaseModel
from smithers import Parallel, Task, workflow
from smithers.scorers import scorer

class Out(BaseModel):
    n: int

@scorer(sampling=0.5)
def half(inp):
    return 1.0

@scorer(sampling=0.0)
def never(inp):
    return 1.0

@workflow
def sampled(ctx):
    return Parallel(*[Task(f"t{i}", output=Out, value={"n": i}, scorers=[half, never]) for i in range(40)])
"""


def test_sampling_scores_a_deterministic_share_of_attempts(project: Project) -> None:
    project.write("wf.py", SAMPLED)
    up = project.cli("up", "wf.py", "--run-id", "samp", "-q")
    assert up.returncode == 0, up.stdout + up.stderr
    scored = {node for node, scorer in scores_of(project, "samp") if scorer == "half"}
    expected = {f"t{i}" for i in range(40) if is_sampled(0.5, "samp", f"t{i}", 0, 1, "half")}
    assert scored == expected
    assert 5 < len(scored) < 35  # a ratio, not all or nothing
    assert not any(scorer == "never" for _, scorer in scores_of(project, "samp"))


RESUME = """
import os, pathlib, signal
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.scorers import scorer

class Out(BaseModel):
    n: int

CALLS = pathlib.Path("calls.log")

def note(name):
    with CALLS.open("a") as f:
        f.write(name + "\\n")

@scorer
def steady(inp):
    note("steady")
    return 1.0

@scorer
def dies_once(inp):
    note("dies_once")
    marker = pathlib.Path("died")
    if not marker.exists():
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies after the task committed, before this score did
    return 0.5

def after_a_is_scored(tc):
    import sqlite3, time
    for _ in range(400):  # the kill below must come after a's score committed (scorers run concurrently)
        with sqlite3.connect(os.environ["SMITHERS_DB"]) as db:
            if db.execute("SELECT 1 FROM _smithers_scores WHERE node_id = 'a'").fetchone():
                return {"n": 2}
        time.sleep(0.025)
    raise RuntimeError("a was never scored")

@workflow
def resumable(ctx):
    return Sequence(
        Task("a", output=Out, value={"n": 1}, scorers=[steady]),
        Task("b", output=Out, run=after_a_is_scored, scorers=[dies_once]),
    )
"""


def test_a_score_missing_after_a_kill_is_computed_on_resume(project: Project) -> None:
    project.write("wf.py", RESUME)
    up = project.cli("up", "wf.py", "--run-id", "k", "-q")
    assert up.returncode == -signal.SIGKILL, up.stdout + up.stderr
    statuses = dict(project.query("SELECT node_id, status FROM _smithers_nodes WHERE run_id = 'k'"))
    assert statuses == {"a": "finished", "b": "finished"}
    assert ("b", "dies_once") not in scores_of(project, "k")
    again = project.cli("resume", "k", "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    scores = scores_of(project, "k")
    assert scores[("b", "dies_once")][0] == 0.5 and scores[("a", "steady")][0] == 1.0
    calls = (project.root / "calls.log").read_text().split()
    assert calls.count("steady") == 1  # a recorded score is never computed again
    assert calls.count("dies_once") == 2
    assert project.query("SELECT COUNT(*) FROM _smithers_events WHERE run_id = 'k' AND type = 'ScoreRecorded'") == [(2,)]


FAULT = """
from pydantic import BaseModel
from smithers import Task, workflow
from smithers.scorers import scorer

class Out(BaseModel):
    n: int

@scorer
def one(inp):
    return 1.0

@workflow
def faulty(ctx):
    return Task("only", output=Out, value={"n": 1}, scorers=[one])
"""


@pytest.mark.slow
def test_a_kill_inside_any_commit_never_loses_or_doubles_a_score(project: Project) -> None:
    """SMITHERS_FAULT_BEFORE_COMMIT sweeps the kill over every commit of the run, the score's included."""
    project.write("wf.py", FAULT)
    hit_between = False
    for n in range(2, 9):
        run_id = f"f{n}"
        up = project.cli("up", "wf.py", "--run-id", run_id, "-q", env=project.env(SMITHERS_FAULT_BEFORE_COMMIT=str(n)))
        exists = project.query("SELECT COUNT(*) FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0]
        if up.returncode == -signal.SIGKILL:
            node = project.query("SELECT status FROM _smithers_nodes WHERE run_id = ? AND node_id = 'only'", (run_id,))
            rows = project.query("SELECT COUNT(*) FROM _smithers_scores WHERE run_id = ?", (run_id,))[0][0]
            events = project.query("SELECT COUNT(*) FROM _smithers_events WHERE run_id = ? AND type = 'ScoreRecorded'", (run_id,))[0][0]
            assert rows == events  # the row and its event commit together
            hit_between |= node == [("finished",)] and rows == 0
            again = project.cli("resume", run_id, "-q") if exists else project.cli("up", "wf.py", "--run-id", run_id, "-q")
            assert again.returncode == 0, again.stdout + again.stderr
        else:
            assert up.returncode == 0, up.stdout + up.stderr
        assert project.query("SELECT scorer, value FROM _smithers_scores WHERE run_id = ?", (run_id,)) == [("one", 1.0)]
    assert hit_between  # one kill landed after the task's commit and before its score's


JUDGE = """
import json
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.scorers import llm_judge
from smithers.testing import ScriptedAgent

class Answer(BaseModel):
    total: int

def grade(request):
    # the judge sees the rubric, the output and the schema of its verdict
    ok = "## Rubric" in request.prompt and '"total": 7' in request.prompt and '"score"' in request.prompt
    return {"score": 0.9 if ok else 0.1, "reason": "rubric and output shown" if ok else "prompt incomplete"}

careful = llm_judge("careful", agent=ScriptedAgent([grade]), instructions="1.0 when the total is right")
repaired = llm_judge("repaired", agent=ScriptedAgent(["I think it's fine", '{"score": 0.6, "reason": "second try"}']),
                     instructions="be strict")
hopeless = llm_judge("hopeless", agent=ScriptedAgent(["no idea"]), instructions="anything")
out_of_range = llm_judge("out-of-range", agent=ScriptedAgent([{"score": 4, "reason": "too high"}]), instructions="anything")

@workflow
def judged(ctx):
    return Task("add", output=Answer, agent=ScriptedAgent([{"total": 7}]), prompt="add 3 and 4",
                scorers=[careful, repaired, hopeless, out_of_range])
"""


def test_llm_judge_scores_with_any_agent_and_a_rubric(project: Project) -> None:
    project.write("wf.py", JUDGE)
    up = project.cli("up", "wf.py", "--run-id", "j", "-q")
    assert up.returncode == 0, up.stdout + up.stderr
    scores = scores_of(project, "j")
    assert scores[("add", "careful")][:2] == (0.9, "rubric and output shown")
    assert json.loads(scores[("add", "careful")][5])["judge"] == "scripted"
    assert scores[("add", "repaired")][:2] == (0.6, "second try")
    assert json.loads(scores[("add", "repaired")][5])["turns"] == 2
    for failing in ("hopeless", "out-of-range"):
        value, _, error_json, *_ = scores[("add", failing)]
        assert value is None and "did not answer with a valid verdict" in json.loads(error_json)["message"]


def test_scores_command_json_and_node_filter(project: Project) -> None:
    project.write("wf.py", BASIC)
    assert project.cli("up", "wf.py", "--run-id", "r1", "-q").returncode == 0
    rows = project.json("scores", "r1")
    assert [set(r) for r in rows] == [{"node_id", "iteration", "attempt", "scorer", "value", "reason", "error", "latency_ms"}] * 8
    second = project.json("scores", "r1", "--node", "second")
    assert {r["scorer"] for r in second} == {"ratio", "async-check", "schema_adherence", "out_of_range"}
    assert all(r["node_id"] == "second" for r in second)
    broken = next(r for r in rows if r["scorer"] == "broken")
    assert broken["value"] is None and broken["error"] == "RuntimeError: the scorer itself is broken"
    table = project.cli("scores", "r1")
    assert table.returncode == 0 and "broken" in table.stdout and "0.400" in table.stdout and "mean:" in table.stdout
    unknown = project.cli("scores", "nope")
    assert unknown.returncode == 4 and "nope" in unknown.stderr
    bad_node = project.cli("scores", "r1", "--node", "zzz")
    assert bad_node.returncode == 4 and "zzz" in bad_node.stderr and "first" in bad_node.stderr


def test_metrics_export_the_score_histogram(project: Project) -> None:
    project.write("wf.py", BASIC)
    assert project.cli("up", "wf.py", "--run-id", "r1", "-q").returncode == 0
    body, _ = render_metrics(project.db)
    samples = {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples
    }
    assert samples[("smithers_score_count", frozenset({("scorer", "ratio")}))] == 2
    assert samples[("smithers_score_sum", frozenset({("scorer", "ratio")}))] == pytest.approx(1.1)
    assert samples[("smithers_score_bucket", frozenset({("scorer", "ratio"), ("le", "0.5")}))] == 1
    assert samples[("smithers_score_errors_total", frozenset({("scorer", "broken")}))] == 1


def test_the_node_json_of_the_api_carries_the_scores(project: Project) -> None:
    import httpx2

    from smithers.server.app import ServerThread, bind, create_app

    project.write("wf.py", BASIC)
    assert project.cli("up", "wf.py", "--run-id", "r1", "-q").returncode == 0
    server = ServerThread(create_app(project.db, project.root, None), bind("127.0.0.1", 0)).start()
    try:
        node = httpx2.get(f"{server.url}/v1/runs/r1/nodes/first", timeout=30).json()
    finally:
        server.stop()
    assert {s["scorer"]: s["value"] for s in node["scores"]} == {"ratio": 0.4, "broken": None, "latency": 1.0, "hangs": None}


@pytest.mark.parametrize(
    ("scorers", "message"),
    [
        ("[one, one]", "two scorers are named 'one'"),
        ("[42]", "scorers must be scorer objects or functions"),
        ("[scorer(lambda i: 1.0, name='x', sampling=2)]", "sampling must be a ratio between 0 and 1"),
        ("[latency(target='soon')]", "target"),
    ],
)
def test_bad_scorers_are_render_errors_naming_the_task(project: Project, scorers: str, message: str) -> None:
    project.write("wf.py", f"""
from pydantic import BaseModel
from smithers import Task, workflow
from smithers.scorers import latency, scorer

class Out(BaseModel):
    n: int

one = scorer(lambda inp: 1.0, name="one")

@workflow
def bad(ctx):
    return Task("t", output=Out, value={{"n": 1}}, scorers={scorers})
""")
    up = project.cli("up", "wf.py", "-q")
    assert up.returncode == 4, up.stdout + up.stderr
    assert message in up.stderr


@pytest.mark.slow
@pytest.mark.browser
def test_the_dashboard_node_view_shows_the_scores(tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright
    from test_dashboard import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _start_server, _stop

    server = _start_server(tmp_path, "scores", None)
    try:
        (server.root / "wf.py").write_text(BASIC, encoding="utf-8")
        up = server.smithers("up", "wf.py", "--run-id", "r1", "-q")
        assert up.returncode == 0, up.stdout + up.stderr
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                errors: list[str] = []
                page.on("pageerror", lambda err: errors.append(str(err)))
                page.goto(server.url + "/#/runs/r1")
                page.locator('.tree-row[data-node="first"]').click()
                table = page.locator("#node-detail #scores")
                expect(table.locator("tbody tr")).to_have_count(4)
                expect(table.locator('tr[data-scorer="ratio"]')).to_contain_text("0.400")
                expect(table.locator('tr[data-scorer="broken"]')).to_contain_text("RuntimeError: the scorer itself is broken")
                assert not errors, errors
            finally:
                browser.close()
    finally:
        _stop(server.proc)
