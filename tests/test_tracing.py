"""OpenTelemetry traces over real OTLP/HTTP: a `smithers up` subprocess with
SMITHERS_OTEL_ENABLED=1 exports its span tree to a receiver in the test."""

from __future__ import annotations

import gzip
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

WORKFLOW = """
from pydantic import BaseModel
from smithers import Retry, Sequence, Task, workflow
from smithers.testing import ScriptedAgent

class Out(BaseModel):
    n: int

class Verdict(BaseModel):
    score: int

def prep():
    return {"n": 1}

def flaky(tc):
    if tc.attempt == 1:
        raise RuntimeError("first try fails")
    return {"n": tc.attempt}

def act(request):
    request.emit("tool_call_started", tool="read_file", call_id="call-1", input={"path": "README.md"})
    request.emit("tool_call_finished", tool="read_file", call_id="call-1", duration_ms=3, output_bytes=42, is_error=False)
    return {"score": 7}

agent = ScriptedAgent([act], name="scripted-judge")

@workflow
def traced(ctx):
    return Sequence(
        Task("prep", output=Out, run=prep),
        Task("flaky", output=Out, run=flaky, retries=1, retry=Retry(initial=0.01, factor=1, max=0.01, jitter=0)),
        Task("judge", output=Verdict, agent=agent, prompt="Judge it"),
    )
"""

STATUS_OK, STATUS_ERROR = 1, 2


class Receiver:
    """An OTLP/HTTP trace receiver: ``POST /v1/traces`` with a protobuf ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.requests.append(request)
                received.content_types.append(self.headers.get("Content-Type", ""))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def spans(self) -> list[dict[str, Any]]:
        out = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append({
                            "name": span.name, "id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                            "trace": span.trace_id.hex(), "attrs": {kv.key: _value(kv.value) for kv in span.attributes},
                            "status": span.status.code, "message": span.status.message, "resource": resource,
                            "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                            "events": [e.name for e in span.events],
                        })
        return out

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


def otel_env(project, endpoint: str) -> dict[str, str]:
    env = project.env(SMITHERS_OTEL_ENABLED="1", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED",
                 "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        env.pop(name, None)
    return env


def test_a_run_exports_its_span_tree_over_otlp_http(project, run_id_of):
    receiver = Receiver()
    try:
        project.write("wf.py", WORKFLOW)
        result = project.cli("up", "wf.py", env=otel_env(project, receiver.endpoint))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "warning" not in result.stderr
        run_id = run_id_of(result.stdout)
        spans = receiver.spans()
    finally:
        receiver.close()
    assert all(ct.startswith("application/x-protobuf") for ct in receiver.content_types)

    runs = [s for s in spans if s["name"] == "smithers.run"]
    assert len(runs) == 1
    run = runs[0]
    assert run["parent"] == "" and run["attrs"]["smithers.run_id"] == run_id
    assert run["attrs"]["smithers.workflow"] == "traced" and run["attrs"]["smithers.run.status"] == "finished"
    assert run["status"] == STATUS_OK
    assert run["resource"]["service.name"] == "smithers"
    assert {s["trace"] for s in spans} == {run["trace"]}, "one trace per run"

    tasks = [s for s in spans if s["name"] == "smithers.task"]
    by_attempt = {(s["attrs"]["smithers.node_id"], s["attrs"]["smithers.attempt"]): s for s in tasks}
    assert set(by_attempt) == {("prep", 1), ("flaky", 1), ("flaky", 2), ("judge", 1)}
    for span in tasks:
        assert span["parent"] == run["id"], "attempt spans hang under the run span"
        assert span["attrs"]["smithers.run_id"] == run_id and span["attrs"]["smithers.iteration"] == 0
        assert run["start"] <= span["start"] <= span["end"] <= run["end"]
    failed = by_attempt[("flaky", 1)]
    assert failed["status"] == STATUS_ERROR and "first try fails" in failed["message"]
    assert failed["attrs"]["smithers.will_retry"] is True and "exception" in failed["events"]
    assert by_attempt[("flaky", 2)]["status"] == STATUS_OK and by_attempt[("prep", 1)]["status"] == STATUS_OK

    turns = [s for s in spans if s["name"] == "smithers.agent"]
    assert len(turns) == 1
    turn = turns[0]
    assert turn["parent"] == by_attempt[("judge", 1)]["id"], "the turn span hangs under its attempt"
    assert turn["attrs"]["smithers.agent"] == "scripted-judge" and turn["attrs"]["smithers.turn"] == 1
    assert turn["attrs"]["smithers.reply.outcome"] == "valid"
    assert turn["attrs"]["smithers.tokens.output"] == 10  # the scripted agent's reported usage

    tools = [s for s in spans if s["name"] == "smithers.tool"]
    assert len(tools) == 1
    tool = tools[0]
    assert tool["parent"] == turn["id"], "the tool span hangs under the turn"
    assert tool["attrs"]["smithers.tool"] == "read_file" and tool["attrs"]["smithers.tool.call_id"] == "call-1"
    assert tool["attrs"]["smithers.node_id"] == "judge" and tool["attrs"]["smithers.attempt"] == 1
    assert tool["status"] != STATUS_ERROR
    assert len(spans) == 1 + 4 + 1 + 1


def test_a_failed_run_marks_its_span_as_an_error(project):
    receiver = Receiver()
    try:
        project.write("wf.py", """
from pydantic import BaseModel
from smithers import Task, workflow

class Out(BaseModel):
    n: int

def broken():
    raise ValueError("broken for good")

@workflow
def doomed(ctx):
    return Task("broken", output=Out, run=broken, retries=0)
""")
        result = project.cli("up", "wf.py", env=otel_env(project, receiver.endpoint))
        assert result.returncode == 1, result.stdout + result.stderr
        spans = receiver.spans()
    finally:
        receiver.close()
    run = next(s for s in spans if s["name"] == "smithers.run")
    assert run["status"] == STATUS_ERROR and run["attrs"]["smithers.run.status"] == "failed"
    task = next(s for s in spans if s["name"] == "smithers.task")
    assert task["parent"] == run["id"] and task["status"] == STATUS_ERROR and "broken for good" in task["message"]
    assert task["attrs"]["smithers.will_retry"] is False


def test_without_the_otel_packages_tracing_warns_once_and_the_run_goes_on(project):
    """A process where ``opentelemetry`` cannot be imported (as without the otel extra)."""
    import subprocess

    project.write("wf.py", """
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Out(BaseModel):
    n: int

@workflow
def plain(ctx):
    return Sequence(Task("a", output=Out, value={"n": 1}), Task("b", output=Out, value={"n": 2}))
""")
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from smithers.cli.main import main\n"
        "sys.exit(main(['up', 'wf.py']))\n"
    )
    env = otel_env(project, "http://127.0.0.1:9")
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=project.root, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count("SMITHERS_OTEL_ENABLED=1 but the OpenTelemetry packages are not installed") == 1
    assert "smithers-orchestrator[otel]" in result.stderr


def test_tracing_is_off_unless_enabled(project):
    receiver = Receiver()
    try:
        project.write("wf.py", """
from pydantic import BaseModel
from smithers import Task, workflow

class Out(BaseModel):
    n: int

@workflow
def plain(ctx):
    return Task("a", output=Out, value={"n": 1})
""")
        env = otel_env(project, receiver.endpoint)
        env["SMITHERS_OTEL_ENABLED"] = "0"
        result = project.cli("up", "wf.py", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        receiver.close()
    assert receiver.requests == []
