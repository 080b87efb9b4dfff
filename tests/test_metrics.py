"""Prometheus metrics built from the database: counters from the events (incrementally, with a
rowid cursor), gauges from the tables, a real Prometheus scraping them, and the
``smithers observability`` stack command."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from waiting import wait_until

from smithers import ops
from smithers.observability.metrics import (
    collector_for,
    observe_transaction,
    render_metrics,
)
from smithers.storage.store import Store

HEADER = """
from pydantic import BaseModel
from smithers import Approval, Retry, Sequence, Task, workflow
from smithers.agents.base import AgentResult

class Out(BaseModel):
    n: int

class Verdict(BaseModel):
    score: int
"""

OK = HEADER + """
def compute():
    return {"n": 2}

@workflow
def ok(ctx):
    return Sequence(Task("one", output=Out, value={"n": 1}), Task("two", output=Out, run=compute))
"""

FAILING = HEADER + """
def always():
    raise RuntimeError("nope")

@workflow
def failing(ctx):
    return Task("always", output=Out, run=always, retries=2, retry=Retry(initial=0.01, factor=1, max=0.01, jitter=0))
"""

AGENT = HEADER + """
class UsageAgent:
    name = "usage-agent"

    async def run(self, request):
        usage = {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 7, "cache_write_tokens": 3, "cost_usd": 0.25}
        return AgentResult(output={"score": 9}, usage=usage, model="test-model-1")

@workflow
def agentic(ctx):
    return Task("judge", output=Verdict, agent=UsageAgent(), prompt="Judge it")
"""

WAITING = HEADER + """
@workflow
def gated(ctx):
    return Sequence(Approval("ship", request="Ship it?"), Task("after", output=Out, value={"n": 3}))
"""


def samples(body: bytes) -> dict[tuple[str, frozenset], float]:
    out: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(s: dict, name: str, **labels: str) -> float:
    return s.get((name, frozenset(labels.items())), 0.0)


def start(tmp_path: Path, name: str, source: str) -> ops.RunOutcome:
    path = tmp_path / name
    path.write_text(source)
    store = Store.open(tmp_path / "smithers.db")
    try:
        return ops.start_run(str(path), store=store, raw_input={})
    finally:
        store.close()


def test_counters_histograms_and_gauges_from_the_events(tmp_path):
    assert start(tmp_path, "ok.py", OK).status == "finished"
    assert start(tmp_path, "ok.py", OK).status == "finished"
    assert start(tmp_path, "failing.py", FAILING).status == "failed"
    assert start(tmp_path, "agent.py", AGENT).status == "finished"
    assert start(tmp_path, "gated.py", WAITING).status == "waiting-approval"

    store = Store.open(tmp_path / "smithers.db")
    body, content_type = render_metrics(store)
    assert content_type.startswith("text/plain") and "version=" in content_type
    s = samples(body)
    assert value(s, "smithers_runs_started_total") == 5
    assert value(s, "smithers_runs_finished_total") == 3
    assert value(s, "smithers_runs_failed_total") == 1
    assert value(s, "smithers_runs_cancelled_total") == 0
    assert value(s, "smithers_runs_active") == 0
    assert value(s, "smithers_runs_waiting") == 1
    assert value(s, "smithers_approvals_pending") == 1
    assert value(s, "smithers_approvals_requested_total") == 1
    assert value(s, "smithers_scheduler_queue_depth") == 0  # the waiting run is not 'running'
    # attempts: 2 per ok run, 3 failed ones, 1 agent attempt
    assert value(s, "smithers_node_attempts_started_total") == 2 * 2 + 3 + 1
    assert value(s, "smithers_node_attempts_total", status="finished") == 5
    assert value(s, "smithers_node_attempts_total", status="failed") == 3
    assert value(s, "smithers_node_retries_total") == 2
    assert value(s, "smithers_attempt_duration_seconds_count", status="failed") == 3
    assert value(s, "smithers_attempt_duration_seconds_count", status="finished") == 5
    assert value(s, "smithers_node_duration_seconds_count", status="finished") == 5
    assert value(s, "smithers_node_duration_seconds_count", status="failed") == 1  # one node, final after its retries
    # its three attempts and two backoffs happened inside the node's duration
    node_seconds = value(s, "smithers_node_duration_seconds_sum", status="failed")
    assert node_seconds >= value(s, "smithers_attempt_duration_seconds_sum", status="failed")
    for kind, tokens in (("input", 100), ("output", 20), ("cache_read", 7), ("cache_write", 3)):
        assert value(s, "smithers_tokens_total", agent="usage-agent", model="test-model-1", kind=kind) == tokens
    assert value(s, "smithers_agent_cost_usd_total", agent="usage-agent", model="test-model-1") == pytest.approx(0.25)
    assert value(s, "smithers_agent_turns_total", agent="usage-agent") == 1
    assert value(s, "smithers_events_total", type="RunStarted") == 5
    # the store transaction histogram is always there (0 until Store.tx reports to observe_transaction)
    assert ("smithers_store_transaction_seconds_count", frozenset()) in s

    # a second scrape with nothing new changes no counter
    again = samples(render_metrics(store)[0])
    assert {k: v for k, v in again.items() if "transaction" not in k[0]} == {k: v for k, v in s.items() if "transaction" not in k[0]}

    # more runs: the next scrape reads only the events after the cursor
    collector = collector_for(store)
    cursor = collector.cursor
    assert cursor == sqlite3.connect(store.path).execute("SELECT MAX(rowid) FROM _smithers_events").fetchone()[0]
    assert start(tmp_path, "ok.py", OK).status == "finished"
    assert start(tmp_path, "failing.py", FAILING).status == "failed"
    new_events = sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM _smithers_events WHERE rowid > ?", (cursor,)).fetchone()[0]
    before_total = sum(v for (name, _), v in s.items() if name == "smithers_events_total")
    s2 = samples(render_metrics(store)[0])
    assert sum(v for (name, _), v in s2.items() if name == "smithers_events_total") == before_total + new_events
    assert value(s2, "smithers_runs_started_total") == 7
    assert value(s2, "smithers_runs_finished_total") == 4
    assert value(s2, "smithers_runs_failed_total") == 2
    assert value(s2, "smithers_node_retries_total") == 4
    assert value(s2, "smithers_tokens_total", agent="usage-agent", model="test-model-1", kind="input") == 100
    assert collector.cursor > cursor

    # transactions reported by the store show up in the histogram of this process
    observe_transaction(0.002)
    s3 = samples(render_metrics(store)[0])
    assert value(s3, "smithers_store_transaction_seconds_count") == value(s2, "smithers_store_transaction_seconds_count") + 1
    store.close()


def test_gauges_follow_the_tables_of_other_processes(project):
    """A run executed by another process (the CLI, here left waiting) shows up in the gauges and counters."""
    project.write("gated.py", WAITING)
    result = project.cli("up", "gated.py")
    assert result.returncode == 3, result.stdout + result.stderr
    store = project.store()
    s = samples(render_metrics(store)[0])
    assert value(s, "smithers_approvals_pending") == 1 and value(s, "smithers_runs_waiting") == 1
    run_id = store.list_runs()[0]["run_id"]
    assert project.cli("approve", run_id).returncode == 0
    s = samples(render_metrics(store)[0])
    assert value(s, "smithers_approvals_pending") == 0
    assert value(s, "smithers_approvals_decided_total", decision="approved") == 1
    store.close()


# -- a real Prometheus --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(project) -> tuple[subprocess.Popen[str], int]:
    """The real `smithers serve` (its GET /metrics calls render_metrics) on a free port."""
    port = free_port()
    proc = project.popen("serve", "--port", str(port))

    def healthy() -> bool:
        assert proc.poll() is None, proc.communicate()  # it died: say why at once
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200

    try:
        wait_until(healthy, 30, f"smithers serve to answer on port {port}", interval=0.1, ignoring=(OSError,))
    except AssertionError:
        proc.kill()
        raise
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        data = json.loads(response.read())
    assert data["status"] == "success", data
    return data["data"]["result"]


@pytest.mark.prometheus
def test_a_real_prometheus_scrapes_the_run_counts(project, tmp_path):
    prometheus = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if prometheus is None:
        pytest.fail("/usr/bin/prometheus is missing: install the Debian package `prometheus` (apt-get install prometheus)")
    server, server_port = serve(project)
    # runs executed by other processes (the CLI) on the store the server reads
    project.write("ok.py", OK)
    project.write("failing.py", FAILING)
    for name, code in (("ok.py", 0), ("ok.py", 0), ("failing.py", 1)):
        result = project.cli("up", name, "--quiet")
        assert result.returncode == code, result.stdout + result.stderr

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: smithers\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{server_port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 40
        counts: dict[str, float] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                for name in ("finished", "failed", "started"):
                    result = query(port, f"smithers_runs_{name}_total")
                    if result:
                        counts[name] = float(result[0]["value"][1])
            except OSError:
                pass  # not listening yet
            if len(counts) == 3:
                break
            time.sleep(0.5)
        assert counts == {"finished": 2.0, "failed": 1.0, "started": 3.0}, (tmp_path / "prometheus.log").read_text()
        up = query(port, 'up{job="smithers"}')
        assert up and up[0]["value"][1] == "1"
        retries = query(port, "smithers_node_retries_total")
        assert retries and float(retries[0]["value"][1]) == 2.0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        stop(server)


@pytest.mark.prometheus
def test_the_exposition_passes_promtool(tmp_path):
    start(tmp_path, "ok.py", OK)
    body, _ = render_metrics(tmp_path / "smithers.db")
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.path.exists(promtool):
        pytest.fail("promtool is missing: install the Debian package `prometheus` (apt-get install prometheus)")
    check = subprocess.run([promtool, "check", "metrics"], check=False, input=body, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


# -- the observability stack command ---------------------------------------------------------------

STACK = Path(__file__).resolve().parent.parent / "src" / "smithers" / "observability" / "stack"


def smithers(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_observability_up_without_docker_says_docker_is_needed(tmp_path):
    # no docker binary at all
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}
    (tmp_path / "empty-bin").mkdir()
    for command in (["observability", "up"], ["observability", "down"]):
        result = smithers(command, env, tmp_path)
        assert result.returncode == 4, result.stdout + result.stderr
        assert "smithers observability needs Docker" in result.stderr and "no `docker` command on PATH" in result.stderr
        assert "docker-compose.yml" in result.stderr  # the hint names the compose file
    # a docker binary whose daemon does not answer (as on this machine, or a dead DOCKER_HOST)
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-daemon.sock"}
    result = smithers(["observability", "up"], env, tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "smithers observability needs Docker" in result.stderr


@pytest.mark.prometheus
def test_the_stack_files_are_consistent(tmp_path):
    compose = (STACK / "docker-compose.yml").read_text()
    for service in ("otel-collector", "prometheus", "tempo", "grafana"):
        assert f"\n  {service}:\n" in compose
    for mounted in re.findall(r"- \./([\w./-]+):", compose):
        assert (STACK / mounted).exists(), mounted
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    check = subprocess.run(
        [promtool, "check", "config", str(STACK / "prometheus.yml")], check=False, capture_output=True, text=True, timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # every metric the dashboard queries is one smithers exports
    start(tmp_path, "ok.py", OK)
    exported = {family.name for family in text_string_to_metric_families(render_metrics(tmp_path / "smithers.db")[0].decode())}
    dashboard = json.loads((STACK / "grafana" / "dashboards" / "smithers.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {re.sub(r"_(total|bucket|count|sum)$", "", name) for expr in exprs for name in re.findall(r"smithers_\w+", expr)}
    assert used and used <= exported, used - exported
