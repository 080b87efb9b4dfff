"""examples/review.py end to end: the real `claude` and `codex` CLIs against local fake model
servers. Codex's provider answers 401, so the fixer's fallback chain hands the task to Claude
Code, and Codex is skipped for the rest of the run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from smithers.testing.cli_env import claude_env, codex_env
from smithers.testing.fakes import FakeServer, Reply, anthropic_app, openai_app

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".agents" / "node_modules" / ".bin"

ANALYSIS = {"summary": "errors are swallowed", "severity": "high", "findings": ["bare except in load()", "no retry"]}
FIX = {"patch": "--- a/app.py\n+++ b/app.py\n@@\n-except:\n+except OSError:\n", "explanation": "catch only OSError"}


@pytest.mark.slow
@pytest.mark.agents
def test_review_example_with_a_fallback_chain(project):
    for name in ("claude", "codex"):
        if not (BIN / name).exists():
            pytest.fail(f"{BIN / name} is missing: run scripts/install-agents")
    root = Path.home() / ".cache" / "smithers-tests"  # codex refuses a HOME under /tmp
    root.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="review-home-", dir=root))
    def answer(body: dict) -> Reply:
        # answer by the schema the task's prompt carries (Claude Code may send extra turns, e.g. to
        # enforce its structured output, so the order of requests is not fixed)
        if "severity" in json.dumps(body.get("messages", [])):
            return Reply(text=f"```json\n{json.dumps(ANALYSIS)}\n```")
        return Reply(text=f"Here it is:\n```json\n{json.dumps(FIX)}\n```")

    replies = [answer]
    try:
        with (
            FakeServer(anthropic_app(replies)) as claude_api,
            FakeServer(openai_app([Reply(status=401, error_message="bad key")])) as openai_api,
        ):
            env = project.env(**codex_env(openai_api.url, home), SMITHERS_SNAPSHOTS="off")  # no snapshot refs in this checkout
            env.update(claude_env(claude_api.url, home))
            env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
            result = project.cli(
                "up", str(ROOT / "examples" / "review.py"), "--input", '{"path": "app.py"}', "--quiet", env=env, timeout=240,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            assert len(openai_api.requests) >= 1, "codex was tried first"
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert project.query("select summary, severity from analysis") == [("errors are swallowed", "high")]
    assert project.query("select explanation from fix") == [("catch only OSError",)]
    attempts = project.query("select attempt, status, meta_json, error_json from _smithers_attempts where node_id = 'fix' order by attempt")
    assert [a[1] for a in attempts] == ["failed", "finished"]
    assert json.loads(attempts[0][2])["agent"] == "codex" and json.loads(attempts[1][2])["agent"] == "claude-code"
    assert json.loads(attempts[0][3])["code"] == "AGENT_CONFIG"
    usage = project.query("select count(*) from _smithers_events where type = 'TokenUsageReported'")[0][0]
    assert usage >= 2
