"""The docs keep up with the code: every CLI command (and subcommand) is in docs/cli.md as
`smithers <name>` and has help text, every event type the source emits is listed in
docs/cli.md, and every name `smithers` exports is documented in docs/authoring.md or
docs/agents.md."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

import smithers
from smithers.cli.app import app
from smithers.cli.main import register_all_commands
from smithers.states import EventType

register_all_commands()  # the CLI itself imports only the command it runs

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "smithers"
DOCS = ROOT / "docs"

EVENT_CALL = re.compile(r'event\(\s*"([A-Z][A-Za-z]+)"')
# calls whose string arguments name an event type (tx.event, the engine's emit for agent
# events, run_status, wait_finished and _mark_waiting take the type as an argument)
EVENT_FUNCS = frozenset({"event", "emit", "run_status", "_mark_waiting", "finish_wait", "reopen", "WaitFinished", "WaitReopened"})
EVENT_NAME = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]*)+$")


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _commands() -> Iterator[tuple[str, object]]:
    """Every command of the Typer app as ("up", cmd), ("human", group), ("human answer", cmd), …"""
    root = typer.main.get_command(app)

    def walk(group: object, prefix: str) -> Iterator[tuple[str, object]]:
        for name, command in sorted(getattr(group, "commands", {}).items()):
            full = f"{prefix} {name}".strip()
            yield full, command
            yield from walk(command, full)

    yield from walk(root, "")


COMMANDS = list(_commands())


def test_the_app_has_the_commands_we_expect_to_walk():
    names = {name for name, _ in COMMANDS}
    assert {"up", "resume", "human", "human answer", "observability up"} <= names, names


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_every_command_is_in_cli_md(name: str):
    text = _read("cli.md")
    mention = re.compile(r"smithers " + re.escape(name) + r"(?![\w-])")
    assert mention.search(text), f"docs/cli.md never mentions `smithers {name}`"


@pytest.mark.parametrize("name,command", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_command_has_help(name: str, command: object):
    text = (getattr(command, "help", None) or getattr(command, "short_help", None) or "").strip()
    assert text, f"`smithers {name}` has no help text"


def _string_args(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "EventType":
        yield EventType[node.attr].value  # an event type named through smithers.states
    elif isinstance(node, ast.IfExp):
        yield from _string_args(node.body)
        yield from _string_args(node.orelse)
    elif isinstance(node, (ast.Tuple, ast.List)):
        for element in node.elts:
            yield from _string_args(element)


def emitted_event_types() -> dict[str, str]:
    """Event type -> a file that emits it, from the source."""
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        where = str(path.relative_to(ROOT))
        for match in EVENT_CALL.finditer(source):
            found.setdefault(match.group(1), where)
        for node in ast.walk(ast.parse(source, filename=where)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in EVENT_FUNCS:
                continue
            for arg in node.args:
                for value in _string_args(arg):
                    if EVENT_NAME.match(value):
                        found.setdefault(value, where)
    return found


EVENTS = emitted_event_types()


def test_the_event_scan_finds_events():
    assert {"RunStarted", "NodeFailed", "LoopFinished", "RunWaiting", "TimerFired", "AgentTurn"} <= set(EVENTS), sorted(EVENTS)


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_event_type_is_in_cli_md(event: str):
    assert re.search(rf"`{event}`", _read("cli.md")), f"event {event} (emitted in {EVENTS[event]}) is missing from docs/cli.md"


@pytest.mark.parametrize("name", sorted(smithers.__all__))
def test_every_export_is_documented(name: str):
    code_mention = re.compile(r"`[^`\n]*(?<![\w.])" + re.escape(name) + r"(?!\w)[^`\n]*`")
    pages = ("authoring.md", "agents.md")
    assert any(code_mention.search(_read(page)) for page in pages), (
        f"smithers.{name} is not mentioned (as code) in docs/authoring.md or docs/agents.md"
    )
