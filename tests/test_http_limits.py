"""The 1 MiB request-body limit of the HTTP API holds for CHUNKED bodies too (no Content-Length to
trust): a real `smithers serve` on 127.0.0.1, a raw HTTP/1.1 client sending Transfer-Encoding: chunked.
Over the limit → 413 and nothing written; exactly at the limit → accepted and the run exists."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

LIMIT = 1 << 20  # MAX_BODY_BYTES, the documented 1 MiB

SIMPLE = """
    from pydantic import BaseModel
    from smithers import Task, workflow

    class Greeting(BaseModel):
        text: str

    @workflow
    def simple(ctx):
        return Task("greet", output=Greeting, value={"text": "hello"})
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """(host, port, db) of a real `smithers serve` without a token on 127.0.0.1."""
    tmp_path = tmp_path_factory.mktemp("served")
    (tmp_path / "simple.py").write_text(textwrap.dedent(SIMPLE), encoding="utf-8")
    db = tmp_path / "smithers.db"
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_API_KEY"}
    server = subprocess.Popen(
        [sys.executable, "-m", "smithers", "serve", "--host", "127.0.0.1", "--port", "0", "--root", str(tmp_path), "--db", str(db)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("serving "), line + server.stderr.read()  # type: ignore[union-attr]
        url = urlsplit(line.split(" on ", 1)[1].split()[0])
        assert url.hostname and url.port
        yield url.hostname, url.port, db
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def post_chunked(host: str, port: int, path: str, body: bytes, piece: int = 64 * 1024) -> tuple[int, dict]:
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length) in ``piece``-sized chunks."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        chunks = (body[i:i + piece] for i in range(0, len(body), piece))
        conn.request("POST", path, body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def runs_of(host: str, port: int) -> list[dict]:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request("GET", "/v1/runs")
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())["runs"]
    finally:
        conn.close()


def padded(size: int) -> bytes:
    """A valid start-run body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    core = b'{"workflow": "simple.py"}'
    return core + b" " * (size - len(core))


def test_a_chunked_body_over_the_limit_is_refused_with_413_and_nothing_is_written(served) -> None:
    host, port, _ = served
    before = runs_of(host, port)
    status, error = post_chunked(host, port, "/v1/runs", padded(LIMIT + 1))
    assert status == 413, error
    assert error["error"]["code"] == "PAYLOAD_TOO_LARGE" and error["error"]["details"]["max_bytes"] == LIMIT, error
    assert runs_of(host, port) == before
    # 2 MiB in one big chunk
    status, error = post_chunked(host, port, "/v1/runs", padded(2 * LIMIT), piece=2 * LIMIT)
    assert status == 413, error
    assert runs_of(host, port) == before


def test_a_chunked_body_at_the_limit_is_accepted(served) -> None:
    host, port, _ = served
    before = {run["run_id"] for run in runs_of(host, port)}
    status, started = post_chunked(host, port, "/v1/runs", padded(LIMIT))
    assert status == 201, started
    assert {run["run_id"] for run in runs_of(host, port)} - before == {started["run_id"]}
