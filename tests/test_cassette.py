"""Agent cassettes (DESIGN §10.6, issue 13): `up/resume --record FILE` writes every agent call to
a JSONL cassette, `--replay FILE` answers every agent call from it without starting an agent;
prompt drift and missing calls fail with CASSETTE_MISMATCH; secrets never reach the file;
`smithers.testing.cassette` does the same in pytest. Real runs through the real CLI, the real
`claude` CLI and pydantic-ai against the fake model servers; no mocks."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from smithers.testing import cassette
from smithers.testing.fakes import FakeServer, Reply, ToolCall, anthropic_app
from smithers.testing.fakes.openai import openai_app

AGENTS_BIN = Path(__file__).resolve().parents[1] / ".agents" / "node_modules" / ".bin"

# A scripted agent that logs every real call to calls.log (so a replay that called it shows),
# reports a text and a tool call as events, and answers the `review` task first with invalid
# JSON (a repair turn follows) so one task makes two agent calls.
SCRIPTED = """
import json, os, time
from pathlib import Path
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow
from smithers.testing import ScriptedAgent

HERE = Path(__file__).parent

class In(BaseModel):
    topic: str = "apples"
    extra: bool = False

class Verdict(BaseModel):
    score: int
    note: str

def reply(request):
    with open(HERE / "calls.log", "a") as log:
        log.write(f"{request.node_id} {request.turn}\\n")
    gate = HERE / f"gate-{request.node_id}"
    if request.node_id == "slow" and not gate.exists():
        while not gate.exists():
            time.sleep(0.05)
    request.emit("text", text=f"thinking about {request.node_id}")
    request.emit("tool_use", id=f"t-{request.node_id}", name="read", input={"path": "notes.txt"})
    request.emit("tool_result", id=f"t-{request.node_id}", output="one two three", is_error=False)
    secret = os.environ.get("MY_SERVICE_TOKEN", "")
    if request.node_id == "review" and request.turn == 1:
        return '{"score": "high", "note": "n"}'  # invalid: a repair turn follows
    return json.dumps({"score": len(request.node_id), "note": f"done {request.node_id} {secret} Authorization: Bearer abcdefghijkl"})

agent = ScriptedAgent([reply], name="scripted", session_id="sess-1")

@workflow(input=In)
def wf(ctx):
    return Sequence(
        Task("review", output=Verdict, agent=agent, prompt=f"Review {ctx.input.topic} in run {ctx.run_id}.", retries=0),
        Parallel(*[Task(f"fan{i}", output=Verdict, agent=agent, prompt=f"Fan-out {i} on {ctx.input.topic}.", retries=0)
                   for i in range(3)]),
        ctx.input.extra and Task("extra", output=Verdict, agent=agent, prompt="An extra task.", retries=0),
    )
"""

SLOW = SCRIPTED.replace(
    'ctx.input.extra and Task("extra"',
    'Task("slow", output=Verdict, agent=agent, prompt="Slow.", retries=0),\n        ctx.input.extra and Task("extra"',
)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _calls(project) -> list[str]:
    log = project.root / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _transcript(project, run_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """The agent-related events of a run, without what differs between any two runs."""
    rows = project.query(
        "SELECT type, node_id, payload_json FROM _smithers_events WHERE run_id = ? AND type IN "
        "('AgentTurn', 'AgentReply', 'AgentEvent', 'TokenUsageReported') ORDER BY seq",
        (run_id,),
    )
    out = []
    for type_, node, payload in rows:
        data = json.loads(payload)
        if type_ == "AgentTurn":
            data["prompt"] = data["prompt"].replace(run_id, "RUN")
        out.append((type_, node, data))
    return sorted(out, key=lambda item: (item[1] or "", json.dumps(item, sort_keys=True)))  # fan-out order may differ


def _outputs(project, run_id: str) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in project.query("SELECT node_id, score, note FROM verdict WHERE run_id = ?", (run_id,))}


def _node_error(project, run_id: str, node: str) -> dict[str, Any]:
    (error,) = project.query(
        "SELECT error_json FROM _smithers_attempts WHERE run_id = ? AND node_id = ? ORDER BY attempt DESC LIMIT 1", (run_id, node)
    )[0]
    return json.loads(error)


def test_record_then_replay_without_calling_the_agent(project, run_id_of):
    project.write("wf.py", SCRIPTED)
    tape = project.root / "tapes" / "wf.jsonl"
    recorded = project.cli("up", "wf.py", "--record", str(tape))
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    first = run_id_of(recorded.stdout)
    assert sorted(_calls(project)) == ["fan0 1", "fan1 1", "fan2 1", "review 1", "review 2"]

    entries = _lines(tape)
    assert len(entries) == 5  # one line per agent call: review's prompt and its repair turn, three fan-outs
    review = [e for e in entries if e["node_id"] == "review"]
    assert [e["turn"] for e in review] == [1, 2] and review[0]["attempt"] == 1 and review[0]["iteration"] == 0
    assert review[0]["agent"] == "scripted" and review[0]["prompt"].startswith("Review apples in run {run_id}.")
    assert first not in tape.read_text(), "the run id is a placeholder: the cassette replays in any run"
    assert "Your JSON does not match" in review[1]["prompt"] and review[1]["resume_session_id"] == "sess-1"
    assert [e["kind"] for e in review[0]["events"]] == ["text", "tool_use", "tool_result"]
    assert review[0]["tool_calls"] == [{"id": "t-review", "name": "read", "input": {"path": "notes.txt"}, "output": "one two three",
                                        "is_error": False}]
    assert review[1]["text"].startswith('{"score": 6') and review[1]["usage"]["output_tokens"] == 10
    assert review[1]["session_id"] == "sess-1"

    # replay: same outputs and agent events, and the agent never ran
    (project.root / "calls.log").unlink()
    replayed = project.cli("up", "wf.py", "--replay", str(tape))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    second = run_id_of(replayed.stdout)
    assert _calls(project) == [], "replay started no agent"
    bearer = "Authorization: Bearer abcdefghijkl"
    fans = {f"fan{i}": (4, f"done fan{i}  {bearer}") for i in range(3)}
    assert _outputs(project, first) == {"review": (6, f"done review  {bearer}"), **fans}
    # what the agent replied is what it replied when recorded, but for the bearer token (scrubbed)
    assert _outputs(project, second) == {
        node: (score, note.replace("abcdefghijkl", "[REDACTED]")) for node, (score, note) in _outputs(project, first).items()
    }
    recorded_events = json.loads(json.dumps(_transcript(project, first)).replace("abcdefghijkl", "[REDACTED]"))
    replayed_events = json.loads(json.dumps(_transcript(project, second)))
    assert replayed_events == recorded_events
    assert len([e for e in replayed_events if e[0] == "AgentEvent"]) == 15


def test_prompt_drift_fails_the_task_with_a_readable_diff(project, run_id_of):
    project.write("wf.py", SCRIPTED)
    tape = project.root / "wf.jsonl"
    assert project.cli("up", "wf.py", "--record", str(tape)).returncode == 0
    (project.root / "calls.log").unlink()

    drifted = project.cli("up", "wf.py", "--replay", str(tape), "--input", '{"topic": "pears"}')
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    run_id = run_id_of(drifted.stdout)
    error = _node_error(project, run_id, "review")
    assert error["code"] == "CASSETTE_MISMATCH" and error["retryable"] is False
    assert "task 'review'" in error["message"] and str(tape) in error["message"]
    diff = error["details"]["diff"]
    assert "--- recorded prompt" in diff and "+++ prompt now" in diff
    assert "-Review apples in run {run_id}." in diff and "+Review pears in run {run_id}." in diff
    assert "re-record" in error["hint"]
    assert _calls(project) == [], "a mismatch does not fall back to the agent"
    why = project.cli("why", run_id)
    assert "the prompt differs from the cassette" in why.stdout and "+Review pears in run {run_id}." in why.stdout

    # the same prompts from another agent are not what was recorded either
    project.write("wf.py", SCRIPTED.replace('name="scripted"', 'name="another"'))
    other = project.cli("up", "wf.py", "--replay", str(tape))
    assert other.returncode == 1, other.stdout + other.stderr
    error = _node_error(project, run_id_of(other.stdout), "review")
    assert error["code"] == "CASSETTE_MISMATCH" and error["details"]["reason"] == "agent"
    assert "recorded agent 'scripted' here, but the task now uses 'another'" in error["message"]


def test_a_call_missing_from_the_cassette_fails_clearly(project, run_id_of):
    project.write("wf.py", SCRIPTED)
    tape = project.root / "wf.jsonl"
    assert project.cli("up", "wf.py", "--record", str(tape)).returncode == 0
    missing = project.cli("up", "wf.py", "--replay", str(tape), "--input", '{"extra": true}')
    assert missing.returncode == 1, missing.stdout + missing.stderr
    run_id = run_id_of(missing.stdout)
    error = _node_error(project, run_id, "extra")
    assert error["code"] == "CASSETTE_MISMATCH" and error["details"]["reason"] == "missing"
    assert "has no call #1 for it (it recorded 0)" in error["message"] and "task 'extra'" in error["message"]
    assert len(_outputs(project, run_id)) == 4, "the recorded tasks were answered"


def test_a_killed_recording_keeps_finished_calls_and_resume_appends(project, run_id_of):
    project.write("wf.py", SLOW)
    tape = project.root / "wf.jsonl"
    proc = project.popen("up", "wf.py", "--record", str(tape), "--run-id", "r1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tape.exists() and len(_lines(tape)) >= 5 and "slow 1" in _calls(project)):
        time.sleep(0.05)
    assert len(_lines(tape)) == 5, "each finished call is on disk while the run goes on"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert len(_lines(tape)) == 5

    (project.root / "gate-slow").touch()
    resumed = project.cli("resume", "r1", "--record", str(tape))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    entries = _lines(tape)
    assert len(entries) == 6 and entries[-1]["node_id"] == "slow" and entries[-1]["attempt"] == 2

    # the whole run replays from the one file; attempt numbers do not have to match (attempt 1 here)
    (project.root / "gate-slow").unlink()
    (project.root / "calls.log").unlink()
    replayed = project.cli("up", "wf.py", "--replay", str(tape))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert _calls(project) == []


def test_secrets_never_reach_the_cassette(project, run_id_of):
    secrets = {"MY_SERVICE_TOKEN": "tok-9f8e7d6c5b4a", "OPENAI_API_KEY": "sk-proj-abcdefghijklmnop"}
    leaky = 'prompt=f"Review {ctx.input.topic} with key sk-live-0123456789abcdef'
    project.write("wf.py", SCRIPTED.replace('prompt=f"Review {ctx.input.topic}', leaky))
    tape = project.root / "wf.jsonl"
    env = project.env(**secrets)
    recorded = project.cli("up", "wf.py", "--record", str(tape), env=env)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    text = tape.read_text()
    for value in (*secrets.values(), "sk-live-0123456789abcdef", "abcdefghijkl"):
        assert value not in text
    assert "[REDACTED:MY_SERVICE_TOKEN]" in text and "Bearer [REDACTED]" in text and "with key [REDACTED]" in text
    # the secret-bearing prompt still replays: the live prompt is scrubbed the same way before comparing
    replayed = project.cli("up", "wf.py", "--replay", str(tape), env=env)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr


def test_detach_hands_the_cassette_to_the_background_run(project):
    project.write("wf.py", SCRIPTED)
    tape = project.root / "bg.jsonl"

    def finished(*args: str) -> str:
        started = project.cli("up", "wf.py", "--detach", "--json", *args)
        assert started.returncode == 0, started.stdout + started.stderr
        run_id = json.loads(started.stdout)["run_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            (status,) = project.query("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,))[0]
            if status != "running":
                return status
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not end")

    assert finished("--record", str(tape)) == "finished"
    assert len(_lines(tape)) == 5 and len(_calls(project)) == 5
    assert finished("--replay", str(tape)) == "finished"
    assert len(_calls(project)) == 5, "the background replay started no agent"


def test_cassette_usage_errors_exit_4(project):
    project.write("wf.py", SCRIPTED)
    both = project.cli("up", "wf.py", "--record", "a.jsonl", "--replay", "b.jsonl")
    assert both.returncode == 4 and "--record and --replay" in both.stderr
    missing = project.cli("up", "wf.py", "--replay", "nope.jsonl")
    assert missing.returncode == 4 and "nope.jsonl does not exist" in missing.stderr
    (project.root / "bad.jsonl").write_text('{"node_id": "a", "prompt": "p"}\nnot json\n')
    bad = project.cli("up", "wf.py", "--replay", "bad.jsonl")
    assert bad.returncode == 4 and "bad.jsonl:2: not a JSON line" in bad.stderr
    assert project.query("SELECT count(*) FROM _smithers_runs") == [(0,)], "no run was created"


# -- the pytest helper -----------------------------------------------------------------------------


def test_pytest_helper_records_when_absent_and_replays_when_present(project, inproc, monkeypatch):
    monkeypatch.delenv("SMITHERS_CASSETTE_MODE", raising=False)
    project.write("wf.py", SCRIPTED)
    tape = project.root / "cassettes" / "wf.jsonl"
    with cassette(tape) as recording:
        assert recording.mode == "record" and os.environ["SMITHERS_CASSETTE_MODE"] == "record"
        outcome = inproc.up("wf.py", {})
    assert outcome.status == "finished" and recording.recorded == 5 and len(_lines(tape)) == 5
    assert "SMITHERS_CASSETTE" not in os.environ, "the helper restores the environment"

    (project.root / "calls.log").unlink()
    with cassette(tape) as replaying:
        assert replaying.mode == "replay"
        outcome = inproc.up("wf.py", {})
        # a `smithers up` subprocess inside the block replays from the same file
        sub = project.cli("up", "wf.py")
    assert outcome.status == "finished" and sub.returncode == 0, sub.stdout + sub.stderr
    assert _calls(project) == [] and replaying.unused == []

    monkeypatch.setenv("SMITHERS_CASSETTE_MODE", "record")  # a deliberate re-record
    with cassette(tape) as again:
        assert again.mode == "record"
        assert inproc.up("wf.py", {}).status == "finished"
    assert len(_calls(project)) == 5 and len(_lines(tape)) == 5, "re-recording starts the file over"


def test_the_environment_alone_selects_a_cassette(project):
    project.write("wf.py", SCRIPTED)
    tape = project.root / "env.jsonl"
    env = project.env(SMITHERS_CASSETTE=str(tape), SMITHERS_CASSETTE_MODE="auto")
    first = project.cli("up", "wf.py", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    # auto is decided once per process: the file the first call created does not turn the rest into replays
    assert len(_calls(project)) == 5 and len(_lines(tape)) == 5
    second = project.cli("up", "wf.py", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(_calls(project)) == 5, "the second run replayed"
    bad = project.cli("up", "wf.py", env=project.env(SMITHERS_CASSETTE=str(tape), SMITHERS_CASSETTE_MODE="sometimes"))
    assert bad.returncode == 4 and "SMITHERS_CASSETTE_MODE must be record, replay or auto" in bad.stderr


# -- ModelAgent (pydantic-ai against the fake OpenAI server) ---------------------------------------

MODEL_WF = """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow
from smithers.agents import ModelAgent
from smithers.tools import read

class Verdict(BaseModel):
    summary: str
    lines: int

agent = ModelAgent("openai:fake-model", tools=[read], base_url="{base_url}", api_key="sk-test-modelagent-key")

@workflow
def summarize(ctx):
    return Sequence(Task("summarize", output=Verdict, agent=agent, prompt="Summarize notes.txt.", retries=0))
"""


def test_model_agent_record_then_replay_without_the_server(project, inproc):
    pytest.importorskip("pydantic_ai")
    (project.root / "notes.txt").write_text("one\ntwo\nthree\n")
    script = [
        Reply(text="Let me look.", tool_calls=[ToolCall("read", {"path": "notes.txt"}, id="call_read")]),
        Reply(tool_calls=[ToolCall("final_result", {"summary": "three lines", "lines": 3})], input_tokens=40, output_tokens=9),
    ]
    tape = project.root / "model.jsonl"
    with FakeServer(openai_app(script)) as server:
        project.write("wf.py", MODEL_WF.replace("{base_url}", server.url + "/v1"))
        with cassette(tape, mode="record"):
            first = inproc.up("wf.py", {})
        requests = len(server.requests)
    assert first.status == "finished", first.error and requests == 2
    (entry,) = _lines(tape)
    assert entry["agent"] == "openai:fake-model" and entry["output"] == {"summary": "three lines", "lines": 3}
    assert entry["usage"]["input_tokens"] == 12 + 40 and entry["tool_calls"][0]["name"] == "read"
    assert "sk-test-modelagent-key" not in tape.read_text()

    # the server is gone: a real call would fail to connect; the replay never makes one
    with cassette(tape, mode="replay") as replaying:
        second = inproc.up("wf.py", {})
    assert second.status == "finished", second.error
    assert replaying.unused == []
    rows = project.query("SELECT run_id, summary, lines FROM verdict ORDER BY run_id")
    assert [r[1:] for r in rows] == [("three lines", 3), ("three lines", 3)]
    kinds = [r[0] for r in project.query("SELECT type FROM _smithers_events WHERE run_id = ? ORDER BY seq", (second.run_id,))]
    assert "ToolCallStarted" in kinds and "ToolCallFinished" in kinds and "TokenUsageReported" in kinds


# -- the real claude CLI against the fake Anthropic server -----------------------------------------

CLAUDE_WF = """
from pydantic import BaseModel
from smithers import Task, workflow
from smithers.agents import ClaudeCode

class Done(BaseModel):
    ok: bool

agent = ClaudeCode(env={env!r})

@workflow
def wf(ctx):
    return Task("note", output=Done, agent=agent, prompt="Write note.txt, then report.", retries=0)
"""


@pytest.fixture(scope="module")
def claude_bin() -> str:
    path = AGENTS_BIN / "claude"
    if not os.access(path, os.X_OK):
        pytest.fail(f"the claude CLI is not installed at {path}: run scripts/install-agents")
    return str(path)


@pytest.mark.slow
def test_real_claude_record_then_replay_without_cli_or_server(project, run_id_of, claude_bin):
    from smithers.testing.cli_env import claude_env

    note = project.root / "note.txt"
    write = ToolCall("Write", {"file_path": str(note), "content": "written by claude\n"})
    steps = [Reply(text="I'll write the note.", tool_calls=[write]), 'Done.\n\n```json\n{"ok": true}\n```']
    with FakeServer(anthropic_app(steps)) as server:
        project.write("wf.py", CLAUDE_WF.format(env=claude_env(server.url, project.root / "home")))
        tape = project.root / "claude.jsonl"
        env = project.env(PATH=f"{AGENTS_BIN}{os.pathsep}{os.environ['PATH']}")
        recorded = project.cli("up", "wf.py", "--record", str(tape), env=env, timeout=120)
        assert recorded.returncode == 0, recorded.stdout + recorded.stderr
        assert server.requests, "the real CLI talked to the fake server"
    first = run_id_of(recorded.stdout)
    assert note.read_text() == "written by claude\n"
    (entry,) = _lines(tape)
    assert entry["agent"] == "claude-code" and entry["session_id"] and entry["usage"]["input_tokens"] > 0
    assert any(call["name"] == "Write" for call in entry["tool_calls"])
    assert "sk-fake" not in tape.read_text(), "the fake key in the agent's env is scrubbed"

    # no claude on PATH, the server stopped: the replay still finishes, with the same events
    note.unlink()
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p).resolve() != AGENTS_BIN.resolve())
    replayed = project.cli("up", "wf.py", "--replay", str(tape), env=project.env(PATH=path), timeout=60)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    second = run_id_of(replayed.stdout)
    assert not note.exists(), "the CLI did not run"
    assert project.query("SELECT run_id, ok FROM done ORDER BY run_id") == sorted([(first, 1), (second, 1)])

    def agent_events(run_id: str) -> list[tuple[str, str]]:
        rows = project.query(
            "SELECT type, payload_json FROM _smithers_events WHERE run_id = ? AND type IN ('AgentEvent', 'TokenUsageReported', "
            "'AgentReply') ORDER BY seq", (run_id,),
        )
        return [(t, p) for t, p in rows]

    assert agent_events(second) == [
        (t, p.replace("sk-fake", "[REDACTED:ANTHROPIC_API_KEY]")) for t, p in agent_events(first)
    ]


# -- failures are recorded and replayed; the scrubber on its own ---------------------------------

FLAKY = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Task, workflow
from smithers.errors import AgentError
from smithers.testing import ScriptedAgent

class Out(BaseModel):
    ok: bool

def flaky(request):
    with open(Path(__file__).parent / "calls.log", "a") as log:
        log.write(f"{request.node_id} {request.attempt}\\n")
    if request.attempt == 1:
        raise AgentError("the model was overloaded (529)")
    return {"ok": True}

agent = ScriptedAgent([flaky], name="flaky")

@workflow
def wf(ctx):
    return Task("shaky", output=Out, agent=agent, prompt="Try.", retries=1)
"""


def test_a_failed_call_is_recorded_and_replayed_as_the_same_failure(project, inproc):
    project.write("wf.py", FLAKY)
    tape = project.root / "flaky.jsonl"
    with cassette(tape, mode="record"):
        first = inproc.up("wf.py", {})
    assert first.status == "finished" and _calls(project) == ["shaky 1", "shaky 2"]
    failed, passed = _lines(tape)
    assert failed["error"] == {"type": "AgentError", "code": "AGENT_ERROR", "message": "the model was overloaded (529)", "retryable": True}
    assert "error" not in passed and passed["output"] == {"ok": True}

    (project.root / "calls.log").unlink()
    with cassette(tape, mode="replay"):
        second = inproc.up("wf.py", {})
    assert second.status == "finished" and _calls(project) == []
    attempts = project.query(
        "SELECT attempt, status, error_json FROM _smithers_attempts WHERE run_id = ? ORDER BY attempt", (second.run_id,)
    )
    assert [(a, s) for a, s, _ in attempts] == [(1, "failed"), (2, "finished")]
    assert json.loads(attempts[0][2])["message"] == "the model was overloaded (529)"


def test_the_scrubber():
    from smithers.agents._secrets import Scrubber

    scrub = Scrubber({"DEPLOY_PASSWORD": "hunter2hunter2"}, environ={"GITHUB_TOKEN": "gho_" + "a" * 36, "HOME": "/root", "SHORT_KEY": "1"})
    text = scrub.text(
        "pw hunter2hunter2; gh gho_" + "a" * 36 + "; home /root; one 1; aws AKIAABCDEFGHIJKLMNOP; "
        'curl -H "Authorization: Basic dXNlcjpwYXNz" -H "x-api-key: abc123def456"'
    )
    assert text == (
        "pw [REDACTED:DEPLOY_PASSWORD]; gh [REDACTED:GITHUB_TOKEN]; home /root; one 1; aws [REDACTED]; "
        'curl -H "Authorization: Basic [REDACTED]" -H "x-api-key: [REDACTED]"'
    )
    value = scrub.value({"headers": {"authorization": "Bearer xyz", "accept": "json"}, "input_tokens": 12, "keyword": "k",
                         "items": ["sk-ant-api03-abcdefghijkl", {"client_secret": "s3"}]})
    assert value == {"headers": {"authorization": "[REDACTED]", "accept": "json"}, "input_tokens": 12, "keyword": "k",
                     "items": ["[REDACTED]", {"client_secret": "[REDACTED]"}]}


def test_values_json_cannot_write_are_recorded_as_json_and_scrubbed(tmp_path, monkeypatch):
    import asyncio

    from pydantic import BaseModel

    from smithers.agents import AgentRequest, AgentResult
    from smithers.agents.cassette import Cassette

    class Answer(BaseModel):
        token: str
        note: str

    class ModelOutputAgent:
        name = "typed"

        async def run(self, request: AgentRequest) -> AgentResult:
            return AgentResult(output=Answer(token="t", note="key sk-abcdefghijklmnop"), usage={"input_tokens": 1})

    request = AgentRequest(prompt="Answer.", output_schema={}, cwd=str(tmp_path), node_id="ask", run_id="r-1")
    recorder = Cassette.for_record(tmp_path / "typed.jsonl")
    asyncio.run(recorder.call(ModelOutputAgent(), "typed", request))
    recorder.close()
    (entry,) = _lines(tmp_path / "typed.jsonl")
    assert entry["output"] == {"token": "[REDACTED]", "note": "key [REDACTED]"}
    replayed = asyncio.run(Cassette.for_replay(tmp_path / "typed.jsonl").call(ModelOutputAgent(), "typed", request))
    assert replayed.output == entry["output"] and replayed.usage == {"input_tokens": 1}
