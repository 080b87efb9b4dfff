"""The task cache (DESIGN §10.7), through real runs of the real CLI: a second run takes the
output from the cache (attempt ``cached``, ``NodeCached``, the same output, the function or
agent not called — counted in a file); what changes the key; TTL expiry; ``--no-cache`` kept
with the run; ``smithers cache list|clear``; and a kill inside any commit of a run that
stores or hits leaves the cache and the run consistent."""

from __future__ import annotations

import json
import signal

import pytest

COMPUTE = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Cache, Sequence, Task, workflow

HERE = Path(__file__).parent

class Out(BaseModel):
    n: int

def count(name):
    with open(HERE / "calls.log", "a") as log:
        log.write(name + "\\n")

def upstream():
    count("upstream")
    return {"n": int((HERE / "upstream.txt").read_text())}

@workflow
def numbers(ctx):
    up = ctx.output("upstream")
    return Sequence(
        Task("upstream", output=Out, run=upstream),
        up and Task("double", output=Out, run=lambda: count("double") or {"n": up.n * 2}, cache=Cache(version="1")),
    )
"""

AGENT = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.testing import ScriptedAgent

HERE = Path(__file__).parent

class Review(BaseModel):
    verdict: str

def answer(request):
    with open(HERE / "calls.log", "a") as log:
        log.write("agent\\n")
    return {"verdict": "looked at " + request.prompt.splitlines()[0]}

reviewer = ScriptedAgent([answer])

@workflow
def review(ctx):
    return Sequence(Task("review", output=Review, agent=reviewer, prompt=f"Review {ctx.input['topic']}", cache=True))
"""


def _calls(project) -> list[str]:
    log = project.root / "calls.log"
    return log.read_text().split() if log.exists() else []


def _up(project, run_id: str, *args: str, name: str = "wf.py", code: int = 0) -> None:
    result = project.cli("up", name, "--run-id", run_id, "-q", *args)
    assert result.returncode == code, result.stdout + result.stderr


def _attempts(project, run_id: str, node_id: str) -> list[str]:
    rows = project.query("SELECT status FROM _smithers_attempts WHERE run_id = ? AND node_id = ? ORDER BY attempt", (run_id, node_id))
    return [r[0] for r in rows]


def _cached_events(project, run_id: str) -> list[tuple[str, dict]]:
    rows = project.query(
        "SELECT node_id, payload_json FROM _smithers_events WHERE run_id = ? AND type = 'NodeCached' ORDER BY seq", (run_id,)
    )
    return [(node_id, json.loads(payload)) for node_id, payload in rows]


def _entries(project, *args: str) -> list[dict]:
    entries = project.json("cache", "list", *args)
    assert isinstance(entries, list)
    return entries


# -- hits ---------------------------------------------------------------------------------------


def test_a_second_run_takes_a_compute_output_from_the_cache(project):
    project.write("wf.py", COMPUTE)
    project.write("upstream.txt", "21")
    _up(project, "r1")
    second = project.cli("up", "wf.py", "--run-id", "r2")  # plain event lines (not a terminal)
    assert second.returncode == 0, second.stdout + second.stderr
    assert any(line.split()[1:] == ["NodeCached", "double[0]", "attempt", "1", "from", "run", "r1"] for line in second.stdout.splitlines())
    assert _calls(project) == ["upstream", "double", "upstream"]  # double ran once
    assert _attempts(project, "r1", "double") == ["finished"]
    assert _attempts(project, "r2", "double") == ["cached"]
    assert project.query("SELECT run_id, n FROM out WHERE node_id = 'double' ORDER BY run_id") == [("r1", 42), ("r2", 42)]
    [(node, payload)] = _cached_events(project, "r2")
    [entry] = _entries(project)
    assert node == "double" and payload == {"key": entry["key"], "from_run_id": "r1"}
    assert entry["hits"] == 1 and entry["node_id"] == "double" and entry["workflow"] == "numbers" and not entry["expired"]
    # a cached node is finished like any other, with NodeFinished, and inspect shows its cached attempt
    inspect = project.json("inspect", "r2")
    double = next(n for n in inspect["nodes"] if n["id"] == "double")
    assert double["status"] == "finished" and double["output"] == {"n": 42}
    assert [a["status"] for a in double["attempts"]] == ["cached"]
    finished = project.query(
        "SELECT payload_json FROM _smithers_events WHERE run_id = 'r2' AND node_id = 'double' AND type = 'NodeFinished'"
    )
    assert [json.loads(p) for (p,) in finished] == [{"cached": True}]


def test_a_second_run_takes_an_agent_answer_from_the_cache(project):
    project.write("wf.py", AGENT)
    _up(project, "a1", "--input", '{"topic": "the parser"}')
    _up(project, "a2", "--input", '{"topic": "the parser"}')
    assert _calls(project) == ["agent"]
    assert _attempts(project, "a2", "review") == ["cached"]
    assert project.query("SELECT run_id, verdict FROM review ORDER BY run_id") == [
        ("a1", "looked at Review the parser"), ("a2", "looked at Review the parser"),
    ]
    assert [p["from_run_id"] for _, p in _cached_events(project, "a2")] == ["a1"]
    # no agent turn, no token usage: nothing was sent to the agent
    turns = project.query("SELECT COUNT(*) FROM _smithers_events WHERE run_id = 'a2' AND type IN ('AgentTurn', 'TokenUsageReported')")
    assert turns == [(0,)]
    # another prompt is another key
    _up(project, "a3", "--input", '{"topic": "the lexer"}')
    assert _calls(project) == ["agent", "agent"]
    assert _attempts(project, "a3", "review") == ["finished"]
    assert len(_entries(project)) == 2


# -- what changes the key -----------------------------------------------------------------------


def test_an_upstream_output_the_task_read_changes_the_key(project):
    project.write("wf.py", COMPUTE)
    project.write("upstream.txt", "21")
    _up(project, "r1")
    project.write("upstream.txt", "5")  # the same workflow and input; the output it reads differs
    _up(project, "r2")
    assert _calls(project).count("double") == 2
    assert project.query("SELECT n FROM out WHERE run_id = 'r2' AND node_id = 'double'") == [(10,)]
    project.write("upstream.txt", "21")  # back to the first value: the first entry is still there
    _up(project, "r3")
    assert _calls(project).count("double") == 2
    assert [p["from_run_id"] for _, p in _cached_events(project, "r3")] == ["r1"]


def test_the_version_the_output_model_and_the_code_change_the_key(project):
    project.write("upstream.txt", "21")
    project.write("wf.py", COMPUTE)
    _up(project, "r1")
    version_2 = COMPUTE.replace('Cache(version="1")', 'Cache(version="2")')
    project.write("wf.py", version_2)
    _up(project, "r2")
    assert _attempts(project, "r2", "double") == ["finished"]
    new_field = version_2.replace("    n: int", "    n: int\n    note: str = ''")
    project.write("wf.py", new_field)
    _up(project, "r3")
    assert _attempts(project, "r3", "double") == ["finished"]
    project.write("wf.py", new_field.replace("up.n * 2", "up.n * 3"))
    _up(project, "r4")
    assert _attempts(project, "r4", "double") == ["finished"]
    assert project.query("SELECT n FROM out WHERE run_id = 'r4' AND node_id = 'double'") == [(63,)]
    _up(project, "r5")  # nothing changed since r4: a hit
    assert _attempts(project, "r5", "double") == ["cached"]
    assert _calls(project).count("double") == 4
    assert len(_entries(project)) == 4


def test_a_stored_output_that_no_longer_validates_is_a_miss(project):
    """A validator added to the model leaves its JSON schema (and so the key) as it was; the
    stored output then fails validation, which is a miss, not a failure."""
    source = """
    from pathlib import Path
    from pydantic import BaseModel, field_validator
    from smithers import Task, workflow

    HERE = Path(__file__).parent

    class Out(BaseModel):
        n: int
        # VALIDATOR

    def measure():
        with open(HERE / "calls.log", "a") as log:
            log.write("measure\\n")
        return {"n": int((HERE / "value.txt").read_text())}

    @workflow
    def measured(ctx):
        return Task("measure", output=Out, run=measure, cache=True)
    """
    project.write("wf.py", source)
    project.write("value.txt", "150")
    _up(project, "r1")
    validator = "\n        ".join(
        ['@field_validator("n")', "@classmethod", "def small(cls, v):", '    assert v <= 100, "too big"', "    return v"]
    )
    project.write("wf.py", source.replace("# VALIDATOR", validator))
    project.write("value.txt", "50")
    _up(project, "r2")
    assert _calls(project) == ["measure", "measure"]
    assert project.query("SELECT run_id, n FROM out ORDER BY run_id") == [("r1", 150), ("r2", 50)]
    [entry] = _entries(project)
    assert entry["from_run_id"] == "r2"  # the fresh result replaced the stale entry


def test_a_custom_key_is_shared_by_the_tasks_that_return_it(project):
    project.write("wf.py", """
    from pathlib import Path
    from pydantic import BaseModel
    from smithers import Cache, Sequence, Task, workflow

    HERE = Path(__file__).parent

    class Out(BaseModel):
        n: int

    def work():
        with open(HERE / "calls.log", "a") as log:
            log.write("work\\n")
        return {"n": 7}

    shared = Cache(key=lambda kc: "expensive-thing:" + kc.input["which"])

    @workflow
    def twice(ctx):
        return Sequence(
            Task("one", output=Out, run=work, cache=shared),
            Task("two", output=Out, run=work, cache=shared),
        )
    """)
    _up(project, "r1", "--input", '{"which": "a"}')
    assert _calls(project) == ["work"]  # "two" took what "one" stored, in the same run
    assert _attempts(project, "r1", "two") == ["cached"]
    assert [(n, p["from_run_id"]) for n, p in _cached_events(project, "r1")] == [("two", "r1")]
    _up(project, "r2", "--input", '{"which": "b"}')
    assert _calls(project) == ["work", "work"]


def test_a_key_function_that_raises_fails_the_task_naming_it(project):
    project.write("wf.py", """
    from pydantic import BaseModel
    from smithers import Cache, Task, workflow

    class Out(BaseModel):
        n: int

    def bad_key(kc):
        raise KeyError("no such thing")

    @workflow
    def broken(ctx):
        return Task("keyed", output=Out, run=lambda: {"n": 1}, cache=Cache(key=bad_key))
    """)
    result = project.cli("up", "wf.py", "--run-id", "r1", "-q")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "keyed" in result.stdout and "Cache(key=...)" in result.stdout
    assert _attempts(project, "r1", "keyed") == ["failed"]


@pytest.mark.parametrize(
    "cache,message",
    [('"yes"', "cache= must be True, False or a Cache(...)"), ('Cache(ttl="soon")', "Cache(ttl=...)"), ('Cache(version="")', "version")],
)
def test_a_bad_cache_argument_is_a_render_error(project, cache: str, message: str):
    project.write("wf.py", f"""
    from pydantic import BaseModel
    from smithers import Cache, Task, workflow

    class Out(BaseModel):
        n: int

    @workflow
    def bad(ctx):
        return Task("t", output=Out, value={{"n": 1}}, cache={cache})
    """)
    result = project.cli("up", "wf.py", "-q")
    assert result.returncode == 4, result.stdout + result.stderr
    assert message in result.stderr
    assert project.query("SELECT COUNT(*) FROM _smithers_runs") == [(0,)]


# -- TTL, --no-cache ----------------------------------------------------------------------------


def test_an_expired_entry_is_a_miss_and_is_replaced(project):
    project.write("upstream.txt", "21")
    project.write("wf.py", COMPUTE.replace('Cache(version="1")', 'Cache(ttl="300ms")'))
    _up(project, "r1")
    [entry] = _entries(project)
    assert entry["expires_at_ms"] - entry["created_at_ms"] == 300
    while not _entries(project)[0]["expired"]:  # wait for the clock to pass the TTL (no timing asserted)
        pass
    _up(project, "r2")
    assert _attempts(project, "r2", "double") == ["finished"]
    assert _calls(project).count("double") == 2
    [entry] = _entries(project)
    assert entry["from_run_id"] == "r2" and entry["hits"] == 0


def test_no_cache_skips_lookups_stores_results_and_stays_with_the_run(project):
    project.write("upstream.txt", "21")
    project.write("wf.py", COMPUTE)
    _up(project, "r1")
    _up(project, "r2", "--no-cache")
    assert _attempts(project, "r2", "double") == ["finished"]
    assert _calls(project).count("double") == 2
    [entry] = _entries(project)
    assert entry["from_run_id"] == "r2"  # the fresh result refreshed the entry
    assert project.query("SELECT run_id, no_cache FROM _smithers_runs ORDER BY run_id") == [("r1", 0), ("r2", 1)]

    # a run started with --no-cache that stops before its cached task keeps skipping lookups on resume
    project.write("upstream.txt", "not a number")
    _up(project, "r3", "--no-cache", code=1)
    project.write("upstream.txt", "21")
    resumed = project.cli("resume", "r3", "-q")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _attempts(project, "r3", "double") == ["finished"]
    assert _calls(project).count("double") == 3
    # the same without --no-cache: the resume hits
    project.write("upstream.txt", "oops")
    _up(project, "r4", code=1)
    project.write("upstream.txt", "21")
    assert project.cli("resume", "r4", "-q").returncode == 0
    assert _attempts(project, "r4", "double") == ["cached"]
    # and `resume --no-cache` turns lookups off from then on
    project.write("upstream.txt", "oops")
    _up(project, "r5", code=1)
    project.write("upstream.txt", "21")
    assert project.cli("resume", "r5", "-q", "--no-cache").returncode == 0
    assert _attempts(project, "r5", "double") == ["finished"]
    assert project.query("SELECT no_cache FROM _smithers_runs WHERE run_id = 'r5'") == [(1,)]


# -- smithers cache list | clear -----------------------------------------------------------------


def test_cache_list_and_clear_with_their_filters(project):
    project.write("upstream.txt", "21")
    project.write("wf.py", COMPUTE)
    project.write("agent.py", AGENT)
    assert _entries(project) == []  # no database yet: an empty list, and none is created
    assert project.cli("cache", "list").stdout.strip() == "the task cache is empty"
    _up(project, "r1")
    _up(project, "a1", "--input", '{"topic": "x"}', name="agent.py")
    _up(project, "a2", "--input", '{"topic": "y"}', name="agent.py")
    assert {e["workflow"] for e in _entries(project)} == {"numbers", "review"}
    assert [e["node_id"] for e in _entries(project, "--workflow", "numbers")] == ["double"]
    table = project.cli("cache", "list").stdout.splitlines()
    assert table[0].split() == ["KEY", "WORKFLOW", "NODE", "FROM", "RUN", "CREATED", "EXPIRES", "HITS"]
    assert len(table) == 4

    # make one entry two days old (what a clock two days on would see)
    project.query("SELECT 1")
    import sqlite3

    conn = sqlite3.connect(project.db)
    with conn:
        conn.execute("UPDATE _smithers_cache SET created_at_ms = created_at_ms - 2 * 86400000 WHERE from_run_id = 'a1'")
    conn.close()
    assert project.json("cache", "clear", "--older-than", "3d") == {"deleted": 0}
    assert project.json("cache", "clear", "--older-than", "1d") == {"deleted": 1}
    assert sorted(e["from_run_id"] for e in _entries(project)) == ["a2", "r1"]
    assert project.json("cache", "clear", "--workflow", "review") == {"deleted": 1}
    assert [e["from_run_id"] for e in _entries(project)] == ["r1"]
    cleared = project.cli("cache", "clear")
    assert cleared.returncode == 0 and cleared.stdout.strip() == "deleted 1 cache entry"
    assert _entries(project) == []
    # the runs and their outputs are untouched
    assert project.query("SELECT COUNT(*) FROM out") == [(2,)]


def test_a_bad_older_than_exits_4_naming_the_flag(project):
    for bad in ("soon", "-1d", "7 days"):
        result = project.cli("cache", "clear", "--older-than", bad)
        assert result.returncode == 4, result.stdout + result.stderr
        assert "--older-than" in result.stderr


def test_cache_hits_are_counted_in_the_metrics(project):
    pytest.importorskip("prometheus_client")
    from smithers.observability.metrics import MetricsCollector

    project.write("upstream.txt", "21")
    project.write("wf.py", COMPUTE)
    _up(project, "r1")
    _up(project, "r2")
    collector = MetricsCollector(project.db)
    try:
        body = collector.render()[0].decode()
    finally:
        collector.close()
    assert "smithers_cache_hits_total 1.0" in body
    assert 'smithers_node_attempts_total{status="cached"} 1.0' in body
    assert 'smithers_node_attempts_total{status="finished"} 3.0' in body  # upstream twice, double once


# -- durability: a hit and a store are each one transaction ----------------------------------------

FAN = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow

HERE = Path(__file__).parent

class Out(BaseModel):
    n: int

def work(tc):
    with open(HERE / "calls.log", "a") as log:
        log.write(tc.node_id + "\\n")
    return {"n": len(tc.node_id)}

@workflow
def fan(ctx):
    return Sequence(
        Task("first", output=Out, value={"n": 1}, cache=True),
        Parallel(*[Task(name, output=Out, run=work, cache=True) for name in ("left", "right", "middle")]),
        Task("last", output=Out, run=work, cache=True),
    )
"""
FAN_NODES = {"first", "left", "right", "middle", "last"}


def _check_consistent(project, run_id: str) -> dict[str, str]:
    """Whole state changes only: a node is finished iff it has its output row and one
    NodeFinished; a cached attempt has its NodeCached; a node this run finished by running
    has its cache entry (from this run) and no entry claims a node this run did not finish."""
    statuses = dict(project.query("SELECT node_id, status FROM _smithers_nodes WHERE run_id = ?", (run_id,)))
    tables = {r[0] for r in project.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    rows = dict(project.query("SELECT node_id, n FROM out WHERE run_id = ?", (run_id,))) if "out" in tables else {}
    finished_events = [r[0] for r in project.query(
        "SELECT node_id FROM _smithers_events WHERE run_id = ? AND type = 'NodeFinished'", (run_id,)
    )]
    finished = {n for n, s in statuses.items() if s == "finished"}
    assert set(rows) == finished == set(finished_events), (rows, finished, finished_events)
    assert len(finished_events) == len(finished), finished_events
    cached_nodes = {n for n, _ in _cached_events(project, run_id)}
    cached_attempts = {
        r[0] for r in project.query("SELECT node_id FROM _smithers_attempts WHERE run_id = ? AND status = 'cached'", (run_id,))
    }
    assert cached_nodes == cached_attempts and cached_nodes <= finished
    ran = {r[0] for r in project.query("SELECT node_id FROM _smithers_attempts WHERE run_id = ? AND status = 'finished'", (run_id,))}
    stored = dict(project.query("SELECT node_id, output_json FROM _smithers_cache WHERE from_run_id = ?", (run_id,)))
    assert set(stored) == ran, (stored, ran)
    for node_id, output in stored.items():
        assert json.loads(output) == {"n": rows[node_id]}
    return statuses


@pytest.mark.slow
def test_a_kill_inside_any_commit_keeps_runs_and_cache_consistent(project):
    project.write("wf.py", FAN)
    killed = {"store": 0, "hit": 0}
    # first: runs that store (each in a fresh database), then: runs that hit a full cache
    for phase in ("store", "hit"):
        for n in range(2, 16):
            if phase == "store" and project.db.exists():
                for suffix in ("", "-wal", "-shm"):
                    (project.root / f"smithers.db{suffix}").unlink(missing_ok=True)
            run_id = f"{phase}-{n}"
            before = _calls(project)
            up = project.cli("up", "wf.py", "--run-id", run_id, "-q", env=project.env(SMITHERS_FAULT_BEFORE_COMMIT=str(n)))
            if up.returncode != 0:
                assert up.returncode == -signal.SIGKILL, up.stdout + up.stderr
                killed[phase] += 1
                _check_consistent(project, run_id)
                exists = project.query("SELECT COUNT(*) FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0]
                again = project.cli("resume", run_id, "-q") if exists else project.cli("up", "wf.py", "--run-id", run_id, "-q")
                assert again.returncode == 0, again.stdout + again.stderr
            statuses = _check_consistent(project, run_id)
            assert statuses == dict.fromkeys(FAN_NODES, "finished")
            assert dict(project.query("SELECT node_id, n FROM out WHERE run_id = ?", (run_id,))) == {
                "first": 1, "left": 4, "right": 5, "middle": 6, "last": 4,
            }
            if phase == "hit":  # everything came from the cache: nothing ran, before or after the kill
                assert _calls(project) == before
                assert {r[0] for r in project.query(
                    "SELECT DISTINCT status FROM _smithers_attempts WHERE run_id = ?", (run_id,)
                )} == {"cached"}
        if phase == "store":
            project.cli("up", "wf.py", "--run-id", "fill", "-q")  # a full cache for the hit phase
    assert killed["store"] >= 5 and killed["hit"] >= 3, killed
