"""Cron schedules (`smithers cron`, fired by `smithers supervise`): real `smithers` processes racing on
a real SQLite file, a real HTTP server for the API's `triggered_by`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys

import httpx2
import pytest
import waiting

from smithers.cron import add_schedule, latest_due, next_due, pause_schedule, resume_schedule, run_now
from smithers.errors import UserError
from smithers.storage.store import now_ms

WORKFLOW = """
from pathlib import Path
from pydantic import BaseModel
from smithers import workflow, Task

LOG = Path(__file__).parent / "starts.log"

class Inp(BaseModel):
    name: str = "world"

class Out(BaseModel):
    text: str

def greet_fn(ctx):
    def fn(tc):
        with LOG.open("a") as f:
            f.write(tc.run_id + "\\n")
        return {"text": f"hello {ctx.input.name}"}
    return fn

@workflow(input=Inp)
def greet(ctx):
    return Task("greet", output=Out, run=greet_fn(ctx))
"""

YEARLY = "0 0 1 1 *"  # due once a year: after a claim the next due time is far away, whatever the machine's speed
LIST_KEYS = {"id", "name", "pattern", "workflow", "enabled", "next_run_at_ms", "last_run_id"}


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    return waiting.wait_until(predicate, timeout, what, ignoring=(sqlite3.Error,))


def add(project, *args: str) -> str:
    result = project.cli("cron", "add", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def execute(project, sql: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(project.db, timeout=30)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def set_next_run(project, schedule_id: str, at_ms: int) -> None:
    """Pretend the schedule was added long ago and nothing fired since (the supervisor was down)."""
    execute(project, "UPDATE _smithers_cron SET next_run_at_ms = ? WHERE id = ?", (at_ms, schedule_id))


def schedule(project, schedule_id: str) -> dict:
    listed = {s["id"]: s for s in project.json("cron", "list")}
    return listed[schedule_id]


def cron_runs(project, schedule_id: str) -> list[dict]:
    """The runs a schedule created, oldest first, with the due time their RunQueued event names."""
    rows = project.query(
        "SELECT r.run_id, r.status, e.payload_json FROM _smithers_runs r JOIN _smithers_events e ON e.run_id = r.run_id "
        "AND e.type = 'RunQueued' WHERE r.triggered_by = ? ORDER BY r.created_at_ms, r.run_id",
        (f"cron:{schedule_id}",),
    )
    return [{"run_id": r[0], "status": r[1], **json.loads(r[2])} for r in rows]


def count_events(project, run_id: str, type_: str) -> int:
    return project.query("SELECT COUNT(*) FROM _smithers_events WHERE run_id = ? AND type = ?", (run_id, type_))[0][0]


def task_starts(project) -> list[str]:
    log = project.root / "starts.log"
    return log.read_text().split() if log.exists() else []


def assert_ran_once(project, run_id: str) -> None:
    assert task_starts(project).count(run_id) == 1
    assert project.query("SELECT COUNT(*) FROM out WHERE run_id = ?", (run_id,)) == [(1,)]
    assert count_events(project, run_id, "RunQueued") == 1
    assert count_events(project, run_id, "RunStarted") == 1


# -- the commands ----------------------------------------------------------------------------


@pytest.mark.slow
def test_add_list_pause_resume_and_remove(project):
    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, "*/5 * * * *", "wf.py", "--input", '{"name": "cron"}', "--name", "every-five")
    listed = project.json("cron", "list")
    assert len(listed) == 1 and set(listed[0]) >= LIST_KEYS
    entry = listed[0]
    assert entry["id"] == schedule_id and entry["name"] == "every-five" and entry["pattern"] == "*/5 * * * *"
    assert entry["workflow"] == str(project.root / "wf.py") and entry["enabled"] is True and entry["last_run_id"] is None
    assert entry["input"] == {"name": "cron"} and entry["timezone"] == "UTC"
    assert entry["next_run_at_ms"] > entry["created_at_ms"] and (entry["next_run_at_ms"] // 1000) % 300 == 0

    added = json.loads(project.cli("cron", "add", "@daily", "wf.py", "--tz", "Europe/Paris", "--json").stdout)
    assert added["name"] == "greet" and added["timezone"] == "Europe/Paris" and added["input"] == {"name": "world"}
    assert [s["id"] for s in project.json("cron", "list")] == [schedule_id, added["id"]]
    text = project.cli("cron", "list").stdout
    assert "every-five" in text and "@daily (Europe/Paris)" in text

    paused = project.json("cron", "pause", schedule_id)
    assert paused["enabled"] is False and paused["next_run_at_ms"] is None
    assert "paused" in project.cli("cron", "list").stdout
    resumed = project.json("cron", "resume", schedule_id)
    assert resumed["enabled"] is True and resumed["next_run_at_ms"] > now_ms() - 1000

    removed = project.cli("cron", "rm", added["id"])
    assert removed.returncode == 0 and f"removed cron schedule {added['id']}" in removed.stdout
    assert [s["id"] for s in project.json("cron", "list")] == [schedule_id]


def test_bad_input_exits_4_naming_it_and_stores_nothing(project):
    project.write("wf.py", WORKFLOW)
    project.write("broken.py", "this is not python(\n")
    wf, store = str(project.root / "wf.py"), project.store()
    refused = [  # the verbs, in this process: each refusal is a UserError (exit 4) naming what is wrong
        (lambda: add_schedule(store, "61 * * * *", wf), "invalid cron pattern '61 * * * *'"),
        (lambda: add_schedule(store, "0 0 30 2 *", wf), "cron pattern '0 0 30 2 *' never comes due"),
        (lambda: add_schedule(store, "0 3 * * *", str(project.root / "broken.py")), "broken.py"),
        (lambda: add_schedule(store, "0 3 * * *", wf, raw_input={"name": 3}), "name"),
        (lambda: add_schedule(store, "0 3 * * *", wf, timezone="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (lambda: pause_schedule(store, "nope1234"), "no cron schedule 'nope1234'"),
        (lambda: resume_schedule(store, "nope1234"), "no cron schedule 'nope1234'"),
        (lambda: run_now(store, "nope1234"), "no cron schedule 'nope1234'"),
    ]
    for call, message in refused:
        with pytest.raises(UserError) as caught:
            call()
        assert message in str(caught.value), str(caught.value)
    store.close()
    # and through the CLI: exit 4, the message on stderr
    cases = [
        (["add", "every night", "wf.py"], "invalid cron pattern 'every night'"),
        (["add", "0 3 * * *", "missing.py"], "workflow file not found"),
        (["rm", "nope1234"], "no cron schedule 'nope1234'"),
    ]
    for args, message in cases:
        result = project.cli("cron", *args)
        assert result.returncode == 4, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert project.json("cron", "list") == []
    assert project.query("SELECT COUNT(*) FROM _smithers_runs") == [(0,)]


# -- firing ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_catch_up_after_downtime_is_one_run_then_the_next_future_due_time(project):
    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, YEARLY, "wf.py", "--input", '{"name": "late"}')
    now = now_ms()
    first_missed = next_due(YEARLY, "UTC", now - 3 * 366 * 86_400_000)  # three due times were missed
    set_next_run(project, schedule_id, first_missed)

    result = project.cli("supervise", "--once", "--interval", "0.2s")
    assert result.returncode == 0, result.stdout + result.stderr
    runs = cron_runs(project, schedule_id)
    assert len(runs) == 1, runs
    run = runs[0]
    latest = latest_due(YEARLY, "UTC", now_ms())
    assert run["catch_up"] is True and run["first_missed_at_ms"] == first_missed and run["due_at_ms"] == latest
    assert run["triggered_by"] == f"cron:{schedule_id}" and run["status"] == "finished"
    assert f"cron {schedule_id} (greet) fired for" in result.stdout and f"resumed {run['run_id']}: queued" in result.stdout
    assert_ran_once(project, run["run_id"])
    after = schedule(project, schedule_id)
    assert after["next_run_at_ms"] == next_due(YEARLY, "UTC", now_ms()) > now_ms()
    assert after["last_run_id"] == run["run_id"] and after["last_fired_for_ms"] == latest

    # the run is the schedule's, everywhere runs are read
    listed = {r["run_id"]: r for r in project.json("ps")}
    assert listed[run["run_id"]]["triggered_by"] == f"cron:{schedule_id}"
    detail = project.json("inspect", run["run_id"])
    assert detail["triggered_by"] == f"cron:{schedule_id}" and detail["input"] == {"name": "late"}
    assert "TRIGGER" in project.cli("ps").stdout
    assert f"trigger   cron:{schedule_id}" in project.cli("inspect", run["run_id"]).stdout
    started = json.loads(project.query(
        "SELECT payload_json FROM _smithers_events WHERE run_id = ? AND type = 'RunStarted'", (run["run_id"],)
    )[0][0])
    assert started["resumed"] is False and started["previous_status"] == "queued"  # started, not resumed

    again = project.cli("supervise", "--once", "--interval", "0.2s")
    assert again.returncode == 0 and "fired" not in again.stdout
    assert len(cron_runs(project, schedule_id)) == 1


@pytest.mark.slow
def test_a_paused_schedule_does_not_fire_and_a_resumed_one_does_not_catch_up(project):
    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, YEARLY, "wf.py")
    set_next_run(project, schedule_id, latest_due(YEARLY, "UTC", now_ms()))
    assert project.cli("cron", "pause", schedule_id).returncode == 0
    result = project.cli("supervise", "--once", "--interval", "0.2s")
    assert result.returncode == 0 and "fired" not in result.stdout
    resumed = project.json("cron", "resume", schedule_id)
    assert resumed["next_run_at_ms"] == next_due(YEARLY, "UTC", now_ms())  # the due time missed while paused is skipped
    result = project.cli("supervise", "--once", "--interval", "0.2s")
    assert result.returncode == 0 and "fired" not in result.stdout
    assert cron_runs(project, schedule_id) == []


@pytest.mark.slow
def test_run_now_starts_a_run_at_once_and_leaves_the_due_times(project):
    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, YEARLY, "wf.py", "--input", '{"name": "now"}')
    before = schedule(project, schedule_id)
    result = project.cli("cron", "run-now", schedule_id, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    started = json.loads(result.stdout)
    run_id = started["run_id"]
    assert started["triggered_by"] == f"cron:{schedule_id}" and started["schedule_id"] == schedule_id
    wait_until(lambda: project.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))[0][0] == "finished",
               what="the run-now run to finish")
    assert_ran_once(project, run_id)
    queued = cron_runs(project, schedule_id)
    assert [r["run_id"] for r in queued] == [run_id] and queued[0]["run_now"] is True
    after = schedule(project, schedule_id)
    assert after["last_run_id"] == run_id
    assert after["next_run_at_ms"] == before["next_run_at_ms"] and after["last_fired_for_ms"] is None
    assert project.json("inspect", run_id)["nodes"][0]["output"] == {"text": "hello now"}


@pytest.mark.slow
def test_a_removed_workflow_file_fails_the_run_naming_it(project):
    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, YEARLY, "wf.py")
    (project.root / "wf.py").unlink()
    set_next_run(project, schedule_id, latest_due(YEARLY, "UTC", now_ms()))
    result = project.cli("supervise", "--once", "--interval", "0.2s")
    assert result.returncode == 0, result.stdout + result.stderr
    [run] = cron_runs(project, schedule_id)
    assert run["status"] == "failed"
    detail = project.json("inspect", run["run_id"])
    assert "workflow file not found" in detail["error"]["message"] and str(project.root / "wf.py") in detail["error"]["message"]
    assert f"smithers cron rm {schedule_id}" in detail["error"]["hint"]


# A supervisor that dies right after its claim committed (before it started the run): SIGKILL in place of the spawn.
DIE_BEFORE_SPAWN = """
import os, runpy, signal, sys
from smithers import supervisor

def die(self, run, reason, detail, now):
    os.kill(os.getpid(), signal.SIGKILL)

supervisor.Supervisor._resume = die
runpy.run_module("smithers", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_a_supervisor_killed_in_the_claim_or_before_the_start_loses_and_repeats_nothing(project):
    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, YEARLY, "wf.py")
    set_next_run(project, schedule_id, latest_due(YEARLY, "UTC", now_ms()))
    before = schedule(project, schedule_id)
    # killed inside the claim's COMMIT (the process's 2nd: opening the store commits its migration check first): nothing happened
    crashed = project.cli("supervise", "--once", env=project.env(SMITHERS_FAULT_BEFORE_COMMIT="2"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert cron_runs(project, schedule_id) == [] and project.query("SELECT COUNT(*) FROM _smithers_runs") == [(0,)]
    assert schedule(project, schedule_id) == before  # the due time is still there to claim

    killer = project.write("die_before_spawn.py", DIE_BEFORE_SPAWN)
    died = subprocess.run([sys.executable, str(killer), "supervise", "--once"], cwd=project.root, env=project.env(),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert died.returncode == -signal.SIGKILL, died.stdout + died.stderr
    [run] = cron_runs(project, schedule_id)
    assert run["status"] == "queued"  # claimed and created, nobody drives it
    assert project.query("SELECT owner_id FROM _smithers_runs WHERE run_id = ?", (run["run_id"],)) == [(None,)]
    why = project.json("why", run["run_id"])
    assert f"queued by cron:{schedule_id} and has not started" in why["reason"]
    assert why["commands"] == [f"smithers resume {run['run_id']}"]

    result = project.cli("supervise", "--once", "--interval", "0.2s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resumed {run['run_id']}: queued" in result.stdout and "fired" not in result.stdout  # the due time was taken
    [again] = cron_runs(project, schedule_id)
    assert again["run_id"] == run["run_id"] and again["status"] == "finished"
    assert_ran_once(project, run["run_id"])


# `smithers supervise` with a barrier: each process, having read a schedule as due, waits until the other has
# too before it claims the due time, so both go for the same due time with the same view of it.
RACING_SUPERVISOR = """
import os, runpy, sys, time
from pathlib import Path
from smithers import cron

barrier = Path(sys.argv[1])
sys.argv = ["smithers", *sys.argv[2:]]
claim = cron.fire

def fire_when_both_saw_it_due(store, schedule, now):
    (barrier / str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(list(barrier.iterdir())) < 2:
        if time.monotonic() > deadline:
            sys.exit("the other supervisor never saw the schedule due")
        time.sleep(0.01)
    return claim(store, schedule, now)

cron.fire = fire_when_both_saw_it_due
runpy.run_module("smithers", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_two_supervisors_racing_for_one_due_time_create_one_run(project):
    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, YEARLY, "wf.py")
    due = latest_due(YEARLY, "UTC", now_ms())
    set_next_run(project, schedule_id, due)
    racer = project.write("racing_supervisor.py", RACING_SUPERVISOR)
    barrier = project.root / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen([sys.executable, str(racer), str(barrier), "supervise", "--once", "--interval", "0.2s"],
                         cwd=project.root, env=project.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, start_new_session=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(list(barrier.iterdir())) == 2, "both supervisors read the schedule as due before either claimed it"
    [run] = cron_runs(project, schedule_id)
    assert run["due_at_ms"] == due and run["catch_up"] is False and run["status"] == "finished"
    assert sum(f"cron {schedule_id} (greet) fired" in out for out, _ in outs) == 1, outs
    assert count_events(project, run["run_id"], "RunAutoResumed") == 1
    assert_ran_once(project, run["run_id"])
    assert schedule(project, schedule_id)["last_run_id"] == run["run_id"]


@pytest.mark.slow
def test_two_supervisors_on_an_every_second_schedule_start_one_run_per_due_time(project):
    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, "* * * * * *", "wf.py")  # six fields: seconds last
    supervisors = [project.popen("supervise", "--interval", "0.1s", "--max-concurrent", "4") for _ in range(2)]
    try:
        wait_until(lambda: len(cron_runs(project, schedule_id)) >= 4, timeout=60, what="four due times fired")
    finally:
        for proc in supervisors:
            os.killpg(proc.pid, signal.SIGTERM)  # the supervisor only: the runs it started are in sessions of their own
        outs = [proc.communicate(timeout=30) for proc in supervisors]
    assert [p.returncode for p in supervisors] == [0, 0], outs
    runs = cron_runs(project, schedule_id)
    dues = [r["due_at_ms"] for r in runs]
    assert len(set(dues)) == len(dues), runs  # never two runs for one due time
    assert all(d % 1000 == 0 for d in dues)  # whole seconds: the pattern's due times
    fired = sum(out.count(f"cron {schedule_id} (greet) fired") for out, _ in outs)
    assert fired == len(runs), outs
    wait_until(lambda: all(r["status"] == "finished" for r in cron_runs(project, schedule_id)), timeout=90,
               what="every cron run to finish")
    for run in runs:
        assert count_events(project, run["run_id"], "RunAutoResumed") == 1, run
        assert_ran_once(project, run["run_id"])
    assert schedule(project, schedule_id)["last_fired_for_ms"] == max(dues)


@pytest.mark.slow
def test_the_http_api_shows_triggered_by(project):
    from smithers.server.app import ServerThread, bind, create_app

    project.write("wf.py", WORKFLOW)
    schedule_id = add(project, YEARLY, "wf.py")
    run_id = json.loads(project.cli("cron", "run-now", schedule_id, "--json").stdout)["run_id"]
    project.cli("up", "wf.py", "--quiet")  # a run started by hand: no trigger
    server = ServerThread(create_app(project.db, project.root, None), bind("127.0.0.1", 0)).start()
    try:
        detail = httpx2.get(f"{server.url}/v1/runs/{run_id}", timeout=30).json()
        assert detail["triggered_by"] == f"cron:{schedule_id}"
        listed = httpx2.get(f"{server.url}/v1/runs", timeout=30).json()["runs"]
        assert sorted(r["triggered_by"] or "" for r in listed) == ["", f"cron:{schedule_id}"]
    finally:
        server.stop()


def test_due_times_follow_the_pattern_and_its_time_zone():
    # 03:00 in Paris is 02:00 UTC in winter, 01:00 UTC in summer (the clocks went forward on 2026-03-29)
    winter = next_due("0 3 * * *", "Europe/Paris", _utc_ms(2026, 1, 10, 12))
    summer = next_due("0 3 * * *", "Europe/Paris", _utc_ms(2026, 7, 10, 12))
    assert winter == _utc_ms(2026, 1, 11, 2) and summer == _utc_ms(2026, 7, 11, 1)
    assert latest_due("*/10 * * * *", "UTC", _utc_ms(2026, 1, 1, 12, 10)) == _utc_ms(2026, 1, 1, 12, 10)  # at a due time: that one
    assert next_due("*/10 * * * *", "UTC", _utc_ms(2026, 1, 1, 12, 10)) == _utc_ms(2026, 1, 1, 12, 20)  # strictly after
    assert next_due("0 0 30 2 *", "UTC", _utc_ms(2026, 1, 1)) is None  # February 30th never comes


def _utc_ms(*parts: int) -> int:
    from datetime import UTC, datetime

    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)

