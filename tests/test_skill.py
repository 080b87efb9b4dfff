"""``smithers skill add`` and the guide it is made of: the SKILL.md front matter, the single source
shared with docs/agents-driving.md, and that everything the skill names exists: every `smithers`
command and option (from the Typer app's command tree), every name it imports from `smithers`, and
its example workflow renders."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command

import smithers
from smithers.cli.main import app, register_all_commands
from smithers.mcp.skill import guide, render

DOCS = Path(__file__).resolve().parents[1] / "docs" / "agents-driving.md"
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
INLINE = re.compile(r"`([^`]+)`")


def front_matter(text: str) -> dict[str, str]:
    assert text.startswith("---\n")
    head = text[4:text.index("\n---\n", 4)]
    return dict(line.split(": ", 1) for line in head.splitlines())


def command_lines(text: str) -> list[str]:
    """Every `smithers ...` command the text shows: in shell blocks and in inline code (not Python)."""
    found = []
    without_python = FENCE.sub(lambda m: "" if m.group(1) == "python" else m.group(0), text)
    for lang, body in FENCE.findall(without_python):
        if lang in ("sh", "bash", ""):
            found += [line.split("#")[0].strip() for line in body.splitlines()]
    found += [span.replace("\n", " ") for span in INLINE.findall(FENCE.sub("", text))]
    return [line[line.index("smithers "):] for line in found if re.search(r"(^|\s)smithers [a-z]", line)]


def resolve(words: list[str]):
    """The click command for the words after `smithers`, and the words left for it."""
    register_all_commands()  # the CLI registers a command's module only when it runs: here, all of them
    command = get_command(app)
    while words and hasattr(command, "commands") and words[0] in command.commands:
        command = command.commands[words.pop(0)]
    return command, words


def options_of(command) -> set[str]:
    return {o for p in command.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])] if o.startswith("-")}


@pytest.mark.parametrize("source", ["skill", "docs"])
def test_every_command_and_option_named_exists(source):
    text = render() if source == "skill" else DOCS.read_text()
    lines = command_lines(text)
    assert len(lines) >= (15 if source == "skill" else 25), lines
    for line in lines:
        words = shlex.split(line.split("(")[0].replace("…", ""))[1:]
        command, rest = resolve(words)
        assert not hasattr(command, "commands") or command.name == "mcp", f"{line!r}: {words[0]!r} is not a command"
        assert command.name != "smithers", f"{line!r}: no such command"
        for token in rest:
            if token.startswith("-"):
                assert token.split("=")[0] in options_of(command), f"{line!r}: {command.name} has no option {token}"


def test_every_name_imported_from_smithers_exists():
    text = render() + DOCS.read_text()
    names = [n.strip() for group in re.findall(r"from smithers import ([^\n]+)", text) for n in group.split(",")]
    assert {"Approval", "Sequence", "Task", "workflow"} <= set(names)
    for name in names:
        assert getattr(smithers, name, None) is not None, f"smithers has no {name}"


def test_the_example_workflow_renders(tmp_path):
    from smithers.queries import preview_plan

    example = next(body for lang, body in FENCE.findall(guide()) if lang == "python")
    path = tmp_path / "fix.py"
    path.write_text(example)
    plan = preview_plan(str(path), {"issue": "the build is red"})
    assert "plan" in str(plan)


def test_skill_front_matter_and_the_docs_share_one_source():
    text = render()
    meta = front_matter(text)
    assert meta["name"] == "smithers" and len(meta["description"]) > 40
    assert text.endswith(guide())
    docs = DOCS.read_text()
    begin, end = docs.index("-->\n", docs.index("<!-- agent-guide: begin")) + 4, docs.index("<!-- agent-guide: end -->")
    assert docs[begin:end] == guide(), "docs/agents-driving.md no longer embeds smithers/templates/agent_guide.md verbatim"


def test_skill_add_writes_it_idempotently(project):
    done = project.cli("skill", "add")
    target = project.root / ".claude" / "skills" / "smithers" / "SKILL.md"
    assert done.returncode == 0 and str(target) in done.stdout, done.stderr
    assert target.read_text() == render()
    again = project.cli("skill", "add")
    assert again.returncode == 0 and "unchanged" in again.stdout
    target.write_text("mine")
    refused = project.cli("skill", "add")
    assert refused.returncode == 4 and "--force" in refused.stderr and target.read_text() == "mine"
    assert project.cli("skill", "add", "--force").returncode == 0 and target.read_text() == render()
    elsewhere = project.cli("skill", "add", "--path", "agents/skill")
    assert elsewhere.returncode == 0 and (project.root / "agents" / "skill" / "SKILL.md").read_text() == render()
    unknown = project.cli("skill", "add", "--agent", "codex")
    assert unknown.returncode == 4 and "--path" in unknown.stderr
