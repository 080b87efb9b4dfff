"""The structured-output pipeline of agent tasks, end to end through a real run: JSON
extraction, the JSON-only follow-up, repair turns, fallback chains and the events they leave."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from smithers import ops
from smithers.storage.store import Store

HEADER = """
from pydantic import BaseModel
from smithers import Task, workflow, Retry
from smithers.testing import ScriptedAgent
from smithers.errors import AgentConfigError

class Verdict(BaseModel):
    score: int
    summary: str

FAST = Retry(initial=0.01, factor=1, max=0.01, jitter=0)
"""


def run(tmp_path: Path, body: str) -> tuple[ops.RunOutcome, Store]:
    (tmp_path / "wf.py").write_text(HEADER + body)
    store = Store.open(tmp_path / "smithers.db")
    return ops.start_run(str(tmp_path / "wf.py"), store=store, raw_input={}), store


def events(store: Store, run_id: str, prefix: str) -> list[dict]:
    return store.events(run_id, type_prefix=prefix)


def test_plain_text_then_json_only_follow_up(tmp_path):
    outcome, store = run(tmp_path, """
agent = ScriptedAgent(["I think it is fine.", '{"score": 7, "summary": "fine"}'], session_id="s-1")

@workflow
def wf(ctx):
    return Task("judge", output=Verdict, agent=agent, prompt="Judge the change")
""")
    assert outcome.status == "finished"
    turns = events(store, outcome.run_id, "AgentTurn")
    assert [t["payload"]["kind"] for t in turns] == ["prompt", "json-only"]
    assert "JSON schema" in turns[0]["payload"]["prompt"] and '"score"' in turns[0]["payload"]["prompt"]
    replies = events(store, outcome.run_id, "AgentReply")
    assert [r["payload"]["outcome"] for r in replies] == ["no-json", "valid"]
    row = sqlite3.connect(store.path).execute("select score, summary from verdict").fetchall()
    assert row == [(7, "fine")]
    attempts = store.attempts(outcome.run_id)
    assert len(attempts) == 1, "follow-up turns do not consume retries"
    meta = json.loads(attempts[0]["meta_json"])
    assert meta["agent"] == "scripted" and meta["turns"] == 2 and meta["session_id"] == "s-1"


def test_invalid_three_times_then_valid(tmp_path):
    outcome, store = run(tmp_path, """
bad = '```json\\n{"score": "high", "summary": "x"}\\n```'
agent = ScriptedAgent([bad, bad, bad, 'Here:\\n```json\\n{"score": 3, "summary": "ok"}\\n```'])

@workflow
def wf(ctx):
    return Task("judge", output=Verdict, agent=agent, prompt="Judge", retries=0)
""")
    assert outcome.status == "finished", outcome.error
    kinds = [t["payload"]["kind"] for t in events(store, outcome.run_id, "AgentTurn")]
    assert kinds == ["prompt", "repair", "repair", "repair"]
    repair = events(store, outcome.run_id, "AgentTurn")[1]["payload"]["prompt"]
    assert "score" in repair and "valid integer" in repair
    assert sqlite3.connect(store.path).execute("select score from verdict").fetchall() == [(3,)]


def test_invalid_four_times_fails_the_attempt_with_the_errors(tmp_path):
    outcome, store = run(tmp_path, """
agent = ScriptedAgent(['{"score": "high", "summary": "x"}'])

@workflow
def wf(ctx):
    return Task("judge", output=Verdict, agent=agent, prompt="Judge", retries=1, retry=FAST)
""")
    assert outcome.status == "failed"
    attempts = store.attempts(outcome.run_id)
    assert [a["status"] for a in attempts] == ["failed", "failed"]
    error = json.loads(attempts[0]["error_json"])
    assert error["code"] == "INVALID_OUTPUT" and "score" in error["message"] and "3 repair turns" in error["message"]
    assert len(events(store, outcome.run_id, "AgentTurn")) == 8  # 4 turns per attempt


def test_agents_default_to_three_retries(tmp_path):
    outcome, store = run(tmp_path, """
import smithers.authoring.policies as policies
policies.DEFAULT_RETRY = FAST
agent = ScriptedAgent([RuntimeError("flaky 1"), RuntimeError("flaky 2"), RuntimeError("flaky 3"), '{"score": 1, "summary": "s"}'])

@workflow
def wf(ctx):
    return Task("judge", output=Verdict, agent=agent, prompt="Judge", retry=FAST)
""")
    assert outcome.status == "finished", outcome.error
    assert [a["status"] for a in store.attempts(outcome.run_id)] == ["failed", "failed", "failed", "finished"]


def test_fallback_chain_skips_a_misconfigured_agent_for_the_rest_of_the_run(tmp_path):
    outcome, store = run(tmp_path, """
broken = ScriptedAgent([AgentConfigError("codex: 401 unauthorized", hint="log in")], name="broken")
backup = ScriptedAgent(['{"score": 9, "summary": "from backup"}'], name="backup")

@workflow
def wf(ctx):
    first = ctx.output("first")
    return [
        Task("first", output=Verdict, agent=[broken, backup], prompt="Judge", retry=FAST),
        first and Task("second", output=Verdict, agent=[broken, backup], prompt="Judge again", retry=FAST),
    ]
""")
    assert outcome.status == "finished", outcome.error
    rows = sqlite3.connect(store.path).execute("select node_id, summary from verdict order by node_id").fetchall()
    assert rows == [("first", "from backup"), ("second", "from backup")]
    by_node = {}
    for a in store.attempts(outcome.run_id):
        by_node.setdefault(a["node_id"], []).append(json.loads(a["meta_json"])["agent"])
    # once the first entry fails with a configuration error it is not used again in this run
    assert by_node["first"] == ["broken", "backup"]
    assert by_node["second"] == ["backup"]
    error = json.loads(store.attempts(outcome.run_id, "first")[0]["error_json"])
    assert error["code"] == "AGENT_CONFIG" and "skipped for the rest of this run" in error["message"]


def test_a_lone_misconfigured_agent_fails_without_retries(tmp_path):
    outcome, store = run(tmp_path, """
broken = ScriptedAgent([AgentConfigError("the 'claude' command was not found on PATH", hint="npm i -g @anthropic-ai/claude-code")])

@workflow
def wf(ctx):
    return Task("judge", output=Verdict, agent=broken, prompt="Judge", retry=FAST)
""")
    assert outcome.status == "failed"
    attempts = store.attempts(outcome.run_id)
    assert len(attempts) == 1, "configuration errors are not retried"
    assert "not found on PATH" in json.loads(attempts[0]["error_json"])["message"]


def test_usage_and_agent_events_are_persisted(tmp_path):
    outcome, store = run(tmp_path, """
from smithers.agents.base import AgentResult

class Talker:
    name = "talker"
    async def run(self, request):
        request.emit("text", text="thinking")
        request.emit("tool_use", id="t1", name="Write", input={"file_path": "x"})
        request.emit("tool_call_started", tool="write", call_id="t1")
        request.emit("tool_call_finished", tool="write", call_id="t1", duration_ms=3, output_bytes=10, is_error=False)
        return AgentResult(
            text='{"score": 2, "summary": "s"}', usage={"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01},
            session_id="abc", model="m1",
        )

@workflow
def wf(ctx):
    return Task("judge", output=Verdict, agent=Talker(), prompt="Judge")
""")
    assert outcome.status == "finished"
    kinds = [e["payload"]["kind"] for e in events(store, outcome.run_id, "AgentEvent")]
    assert kinds == ["text", "tool_use"]
    assert [e["type"] for e in events(store, outcome.run_id, "ToolCall")] == ["ToolCallStarted", "ToolCallFinished"]
    usage = events(store, outcome.run_id, "TokenUsageReported")[0]["payload"]
    assert usage["input_tokens"] == 100 and usage["output_tokens"] == 20 and usage["model"] == "m1" and usage["agent"] == "talker"
    meta = json.loads(store.attempts(outcome.run_id)[0]["meta_json"])
    assert meta["session_id"] == "abc" and meta["model"] == "m1"
