"""The built-in tools for SDK agents: confinement to the root, output caps, timeouts that kill the
process group, network isolation through bubblewrap, edits, grep, @tool, idempotency keys and the
tool_call_started / tool_call_finished events."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from smithers.agents.base import AgentEvent, AgentRequest
from smithers.tools import (
    Tool,
    ToolContext,
    ToolOutcome,
    Workspace,
    bash,
    edit,
    grep,
    read,
    tool,
    write,
)
from smithers.tools.sandbox import bwrap_status

needs_bwrap = pytest.mark.skipif(not bwrap_status().usable, reason=f"bubblewrap is not usable here: {bwrap_status().problem}")


def call(t: Tool, args: dict, ws: Workspace, request: AgentRequest | None = None) -> ToolOutcome:
    return asyncio.run(t(args, workspace=ws, request=request))


def make_request(cwd: Path, events: list[AgentEvent] | None = None, *, attempt: int = 1, iteration: int = 0) -> AgentRequest:
    return AgentRequest(
        prompt="p", output_schema={}, cwd=str(cwd), on_event=events.append if events is not None else None,
        run_id="run-1", node_id="deploy", iteration=iteration, attempt=attempt,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    (r / "a.txt").write_text("alpha\nbeta\ngamma\n")
    (tmp_path / "secret.txt").write_text("top secret\n")
    return r


@pytest.fixture
def ws(root: Path) -> Workspace:
    return Workspace(root)


# -- confinement ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../secret.txt", "sub/../../secret.txt", "/etc/passwd"])
def test_paths_outside_the_root_are_refused(ws: Workspace, path: str) -> None:
    for t, args in ((read, {"path": path}), (write, {"path": path, "content": "x"}),
                    (edit, {"path": path, "old": "top", "new": "bottom"}), (grep, {"pattern": "secret", "path": path})):
        out = call(t, args, ws)
        assert out.is_error, (t, out)
        assert "outside the tool root" in out.output
    assert (ws.root.parent / "secret.txt").read_text() == "top secret\n"


def test_absolute_paths_inside_the_root_are_fine(ws: Workspace) -> None:
    out = call(read, {"path": str(ws.root / "a.txt")}, ws)
    assert not out.is_error and out.output == "alpha\nbeta\ngamma\n"


def test_symlinks_escaping_the_root_are_refused(ws: Workspace) -> None:
    outside = ws.root.parent / "secret.txt"
    (ws.root / "link.txt").symlink_to(outside)
    (ws.root / "linkdir").symlink_to(ws.root.parent)
    (ws.root / "dangling").symlink_to(ws.root.parent / "not-yet.txt")
    for t, args in ((read, {"path": "link.txt"}), (read, {"path": "linkdir/secret.txt"}),
                    (write, {"path": "link.txt", "content": "pwned"}), (write, {"path": "dangling", "content": "pwned"}),
                    (write, {"path": "linkdir/new.txt", "content": "pwned"}),
                    (edit, {"path": "link.txt", "old": "top", "new": "x"}), (grep, {"pattern": "secret", "path": "linkdir"})):
        out = call(t, args, ws)
        assert out.is_error and "outside the tool root" in out.output, (t, args, out)
    assert outside.read_text() == "top secret\n"
    assert not (ws.root.parent / "not-yet.txt").exists() and not (ws.root.parent / "new.txt").exists()
    # grep over the root does not follow the link out either
    out = call(grep, {"pattern": "secret"}, ws)
    assert not out.is_error and out.output == "no matches"


def test_symlinks_inside_the_root_work(ws: Workspace) -> None:
    (ws.root / "alias.txt").symlink_to(ws.root / "a.txt")
    assert call(read, {"path": "alias.txt"}, ws).output.startswith("alpha")


# -- output caps -----------------------------------------------------------------------------


def test_read_output_is_capped_and_can_be_paged(root: Path) -> None:
    ws = Workspace(root, max_output_bytes=2000)
    (root / "big.txt").write_text("".join(f"line {i:05d}\n" for i in range(1000)))
    out = call(read, {"path": "big.txt"}, ws)
    assert not out.is_error
    assert out.output_bytes <= 2000
    assert "output truncated" in out.output and "offset=" in out.output
    page = call(read, {"path": "big.txt", "offset": 500, "limit": 3}, ws)
    assert page.output.startswith("line 00499\nline 00500\nline 00501\n")
    assert "lines 500-502 of 1000" in page.output


def test_bash_output_is_capped_keeping_both_ends(root: Path) -> None:
    ws = Workspace(root, max_output_bytes=4000, allow_network=True)
    out = call(bash, {"command": "echo FIRST; head -c 100000 /dev/zero | tr '\\0' x; echo; echo LAST"}, ws)
    assert not out.is_error
    assert out.output_bytes <= 4000
    assert out.output.startswith("FIRST")
    assert out.output.rstrip().endswith("LAST")
    assert "output truncated" in out.output


def test_custom_tool_output_is_capped(root: Path) -> None:
    @tool
    def shout() -> str:
        """Lots of output."""
        return "A" * 50_000

    out = call(shout, {}, Workspace(root, max_output_bytes=1024))
    assert out.output_bytes <= 1024 and "output truncated: 50000 bytes" in out.output


# -- bash: timeouts, process groups, network, sandbox -----------------------------------------


@pytest.mark.parametrize("sandboxed", [True, False], ids=["bwrap", "plain"])
def test_bash_timeout_kills_the_whole_process_group(root: Path, sandboxed: bool) -> None:
    if sandboxed and not bwrap_status().usable:
        pytest.skip("bubblewrap is not usable here")
    ws = Workspace(root, timeout=1, allow_network=True, bwrap="bwrap" if sandboxed else "/nonexistent/bwrap")
    out = call(bash, {"command": "(sleep 2; echo survived > marker.txt) & sleep 30"}, ws)
    assert out.is_error and "timed out after 1s" in out.output
    time.sleep(2.5)
    assert not (root / "marker.txt").exists(), "a child of the timed-out command was still running"


def test_bash_background_children_die_when_the_command_ends(root: Path) -> None:
    ws = Workspace(root, allow_network=True, bwrap="/nonexistent/bwrap")
    out = call(bash, {"command": "(sleep 1; echo survived > marker.txt) & echo started"}, ws)
    assert not out.is_error and out.output.strip() == "started"
    time.sleep(1.5)
    assert not (root / "marker.txt").exists()


def test_bash_model_timeout_cannot_exceed_the_workspace_limit(root: Path) -> None:
    ws = Workspace(root, timeout=1, allow_network=True, bwrap="/nonexistent/bwrap")
    out = call(bash, {"command": "sleep 5", "timeout": 100}, ws)
    assert out.is_error and "timed out after 1s" in out.output


def test_bash_reports_exit_codes_and_runs_in_the_root(ws: Workspace) -> None:
    ws = Workspace(ws.root, allow_network=True)
    out = call(bash, {"command": "pwd; echo oops >&2; exit 3"}, ws)
    assert not out.is_error
    lines = out.output.splitlines()
    assert lines[0] == str(ws.root) and "oops" in lines and lines[-1] == "[exit code 3]"


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


@needs_bwrap
def test_bash_has_no_network_unless_allowed(root: Path, listener: int) -> None:
    # the base interpreter, not the venv's: the sandbox mounts a fresh /tmp, which hides a venv (or a CI
    # checkout) that lives under /tmp
    python = os.path.realpath(sys.executable)
    probe = f"{python} -c \"import socket; socket.create_connection(('127.0.0.1', {listener}), timeout=3); print('connected')\""
    blocked = call(bash, {"command": probe}, Workspace(root))
    assert not blocked.is_error
    assert "connected" not in blocked.output and "[exit code 1]" in blocked.output
    assert "Error" in blocked.output  # ConnectionRefusedError / OSError: network is unreachable
    allowed = call(bash, {"command": probe}, Workspace(root, allow_network=True))
    assert allowed.output.strip() == "connected", allowed.output


@needs_bwrap
def test_bash_cannot_write_outside_the_root(root: Path) -> None:
    command = f"echo pwned > {root.parent / 'secret.txt'}; touch /usr/smithers-pwned; echo inside > ok.txt"
    out = call(bash, {"command": command}, Workspace(root))
    assert "Read-only file system" in out.output  # / is read-only; /tmp outside the root is a throwaway tmpfs
    assert not Path("/usr/smithers-pwned").exists()
    assert (root.parent / "secret.txt").read_text() == "top secret\n"
    assert (root / "ok.txt").read_text() == "inside\n"


def test_bash_is_refused_without_bubblewrap_when_network_is_off(root: Path) -> None:
    out = call(bash, {"command": "echo hi > ran.txt"}, Workspace(root, bwrap="/nonexistent/bwrap"))
    assert out.is_error
    assert "bash is refused" in out.output and "bubblewrap" in out.output and "allow_network=True" in out.output
    assert not (root / "ran.txt").exists()


def test_bash_env_is_small_and_takes_request_env(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMITHERS_TEST_SECRET_KEY", "sk-do-not-leak")
    request = AgentRequest(prompt="", output_schema={}, cwd=str(root), env={"GREETING": "hola"})
    ws = Workspace(root, allow_network=True, env={"EXTRA": "1"})
    out = asyncio.run(bash({"command": "echo ${SMITHERS_TEST_SECRET_KEY:-none} $GREETING $EXTRA"}, workspace=ws, request=request))
    assert out.output.strip() == "none hola 1"


# -- edit ------------------------------------------------------------------------------------


def test_edit_replace_exactly_once(ws: Workspace) -> None:
    out = call(edit, {"path": "a.txt", "old": "beta\n", "new": "BETA\nbeta2\n"}, ws)
    assert not out.is_error, out.output
    assert (ws.root / "a.txt").read_text() == "alpha\nBETA\nbeta2\ngamma\n"


def test_edit_replace_no_match_and_multi_match(ws: Workspace) -> None:
    (ws.root / "b.txt").write_text("x = 1\nx = 1\n")
    none = call(edit, {"path": "a.txt", "old": "delta", "new": "x"}, ws)
    assert none.is_error and "not found" in none.output
    many = call(edit, {"path": "b.txt", "old": "x = 1", "new": "x = 2"}, ws)
    assert many.is_error and "occurs 2 times" in many.output
    assert (ws.root / "b.txt").read_text() == "x = 1\nx = 1\n"
    missing = call(edit, {"path": "nope.txt", "old": "a", "new": "b"}, ws)
    assert missing.is_error and "does not exist" in missing.output


def test_edit_with_a_unified_diff(ws: Workspace) -> None:
    diff = (
        "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,4 @@\n alpha\n-beta\n+BETA\n+between\n gamma\n"
    )
    out = call(edit, {"diff": diff}, ws)
    assert not out.is_error, out.output
    assert (ws.root / "a.txt").read_text() == "alpha\nBETA\nbetween\ngamma\n"


def test_edit_diff_finds_moved_context_and_handles_many_files(ws: Workspace) -> None:
    (ws.root / "src").mkdir()
    (ws.root / "src" / "m.py").write_text("".join(f"line{i}\n" for i in range(1, 21)))
    diff = (
        "diff --git a/src/m.py b/src/m.py\n--- a/src/m.py\n+++ b/src/m.py\n"
        "@@ -3,3 +3,3 @@\n line10\n-line11\n+LINE11\n line12\n"  # stated at line 3, really at line 10
        "--- /dev/null\n+++ b/src/new.py\n@@ -0,0 +1,2 @@\n+print('hi')\n+print('there')\n"
    )
    out = call(edit, {"diff": diff}, ws)
    assert not out.is_error, out.output
    assert "LINE11\n" in (ws.root / "src" / "m.py").read_text()
    assert (ws.root / "src" / "new.py").read_text() == "print('hi')\nprint('there')\n"


def test_edit_diff_that_does_not_apply_changes_nothing(ws: Workspace) -> None:
    (ws.root / "b.txt").write_text("one\ntwo\n")
    diff = (
        "--- a/b.txt\n+++ b/b.txt\n@@ -1,2 +1,2 @@\n-one\n+ONE\n two\n"
        "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n alpha\n-delta\n+DELTA\n"
    )
    out = call(edit, {"diff": diff}, ws)
    assert out.is_error and "does not apply to a.txt" in out.output
    assert (ws.root / "b.txt").read_text() == "one\ntwo\n"  # all files or none


def test_edit_diff_without_headers_uses_path_and_no_newline_marker(ws: Workspace) -> None:
    (ws.root / "c.txt").write_text("last line")
    diff = "@@ -1 +1,2 @@\n-last line\n\\ No newline at end of file\n+last line\n+added\n"
    out = call(edit, {"path": "c.txt", "diff": diff}, ws)
    assert not out.is_error, out.output
    assert (ws.root / "c.txt").read_text() == "last line\nadded\n"


def test_edit_diff_cannot_escape_the_root(ws: Workspace) -> None:
    diff = "--- a/../secret.txt\n+++ b/../secret.txt\n@@ -1 +1 @@\n-top secret\n+leaked\n"
    out = call(edit, {"diff": diff}, ws)
    assert out.is_error and "outside the tool root" in out.output
    assert (ws.root.parent / "secret.txt").read_text() == "top secret\n"


def test_edit_argument_errors(ws: Workspace) -> None:
    assert "either diff, or old and new" in call(edit, {"path": "a.txt", "old": "a", "new": "b", "diff": "@@"}, ws).output
    assert "needs path, old and new" in call(edit, {"path": "a.txt", "old": "a"}, ws).output
    assert "cannot parse the diff" in call(edit, {"diff": "not a diff"}, ws).output


# -- read / write / grep ---------------------------------------------------------------------


def test_write_creates_parents_and_read_lists_directories(ws: Workspace) -> None:
    out = call(write, {"path": "deep/er/file.txt", "content": "hi\n"}, ws)
    assert out.output == "wrote 3 bytes to deep/er/file.txt"
    assert call(read, {"path": "deep"}, ws).output == "er/"
    assert call(read, {"path": "."}, ws).output.splitlines() == ["a.txt", "deep/"]


def test_read_refuses_binary_files(ws: Workspace) -> None:
    (ws.root / "blob.bin").write_bytes(b"\x00\x01\x02")
    out = call(read, {"path": "blob.bin"}, ws)
    assert out.is_error and "binary" in out.output


def test_grep(ws: Workspace) -> None:
    (ws.root / "src").mkdir()
    (ws.root / "src" / "m.py").write_text("import os\nBETA = 2\n")
    (ws.root / "src" / "notes.md").write_text("beta notes\n")
    out = call(grep, {"pattern": "beta"}, ws)
    assert sorted(out.output.splitlines()) == ["a.txt:2:beta", "src/notes.md:1:beta notes"]
    assert call(grep, {"pattern": "beta", "ignore_case": True, "glob": "*.py"}, ws).output.strip() == "src/m.py:2:BETA = 2"
    assert call(grep, {"pattern": "be.a", "path": "a.txt"}, ws).output.strip() == "a.txt:2:beta"
    assert call(grep, {"pattern": "be.a", "path": "a.txt", "fixed": True}, ws).output == "no matches"
    bad = call(grep, {"pattern": "(unclosed"}, ws)
    assert bad.is_error and "grep failed" in bad.output
    assert call(grep, {"pattern": "x", "path": "missing"}, ws).is_error


# -- @tool, events, idempotency keys --------------------------------------------------------


def test_tool_from_typed_params_and_from_a_model(root: Path) -> None:
    @tool
    def add(a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    class Query(BaseModel):
        text: str
        limit: int = 3

    @tool(name="search_docs")
    async def search(query: Query, ctx: ToolContext) -> dict:
        return {"text": query.text, "limit": query.limit, "root": str(ctx.root)}

    assert add.description == "Add two numbers." and add.json_schema()["required"] == ["a"]
    assert search.name == "search_docs" and set(search.json_schema()["properties"]) == {"text", "limit"}
    ws = Workspace(root)
    assert call(add, {"a": 1}, ws).output == "3"
    assert call(search, {"text": "q"}, ws).output == f'{{"text": "q", "limit": 3, "root": "{root}"}}'
    bad = call(add, {"a": "x"}, ws)
    assert bad.is_error and "invalid arguments for add" in bad.output
    extra = call(add, {"a": 1, "c": 3}, ws)
    assert extra.is_error


def test_tool_exceptions_become_error_results(root: Path) -> None:
    @tool
    def boom() -> str:
        raise RuntimeError("kaput")

    out = call(boom, {}, Workspace(root))
    assert out.is_error and out.output == "error: boom raised RuntimeError: kaput"


def test_idempotency_key_needs_side_effects() -> None:
    with pytest.raises(ValueError, match="side_effects=True"):
        @tool
        def charge(amount: int, idempotency_key: str) -> str:
            return ""


def test_idempotency_key_is_stable_across_attempts(root: Path) -> None:
    seen: list[str] = []

    @tool(side_effects=True)
    def deploy(service: str, idempotency_key: str) -> str:
        """Deploy a service (an external side effect)."""
        seen.append(idempotency_key)
        return f"deployed {service}"

    assert deploy.side_effects and deploy.sequential
    assert "idempotency_key" not in deploy.json_schema()["properties"]
    ws = Workspace(root)
    call(deploy, {"service": "web"}, ws, make_request(root, attempt=1))
    call(deploy, {"service": "web"}, ws, make_request(root, attempt=2))  # a retry of the same task
    call(deploy, {"service": "web"}, ws, make_request(root, attempt=1, iteration=1))  # the next loop iteration
    assert seen == ["run-1:deploy:0", "run-1:deploy:0", "run-1:deploy:1"]


def test_tool_calls_emit_started_and_finished(ws: Workspace) -> None:
    events: list[AgentEvent] = []
    request = make_request(ws.root, events)
    asyncio.run(read({"path": "a.txt"}, workspace=ws, request=request, call_id="c1"))
    asyncio.run(read({"path": "../secret.txt"}, workspace=ws, request=request, call_id="c2"))
    kinds = [(e.kind, e.data["call_id"]) for e in events]
    assert kinds == [("tool_call_started", "c1"), ("tool_call_finished", "c1"), ("tool_call_started", "c2"), ("tool_call_finished", "c2")]
    assert events[0].data == {"tool": "read", "call_id": "c1", "input": {"path": "a.txt"}}
    finished = events[1].data
    assert finished["tool"] == "read" and finished["is_error"] is False and finished["output_bytes"] == len("alpha\nbeta\ngamma\n")
    assert isinstance(finished["duration_ms"], int)
    assert events[3].data["is_error"] is True


def test_importing_tools_and_model_agent_does_not_import_pydantic_ai() -> None:
    code = "import sys, smithers.tools, smithers.agents.model; print('pydantic_ai' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_read_shows_the_start_of_a_line_longer_than_the_cap(root: Path) -> None:
    (root / "min.js").write_text("x" * 10_000 + "\nsecond\n")
    out = call(read, {"path": "min.js"}, Workspace(root, max_output_bytes=2000))
    assert out.output_bytes <= 2000 and out.output.startswith("xxxx") and "line 1 alone is 10001 bytes" in out.output
