"""Every example runs through the real CLI, exactly as its docstring says, and leaves the rows
it promises; `smithers init` scaffolds a hello workflow that runs end to end."""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ["static", "compute", "sequence", "fan_out", "branch", "loop_feedback", "conditional", "agent_scripted"]


def docstring_commands(name: str) -> list[list[str]]:
    """The `smithers up examples/NAME.py ...` commands in an example's docstring, as argv lists
    (without the leading `smithers`, and with the example's absolute path)."""
    path = EXAMPLES / f"{name}.py"
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    commands = []
    for line in doc.splitlines():
        line = line.strip()
        if line.startswith(f"smithers up examples/{name}.py"):
            argv = shlex.split(line)[1:]
            argv[1] = str(path)
            commands.append(argv)
    return commands


def run_docstring(project, run_id_of, name: str, index: int = 0) -> str:
    """Run the index-th command of the example's docstring; assert exit 0; return the run id."""
    argv = docstring_commands(name)[index]
    result = project.cli(*argv)
    assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"
    run_id = run_id_of(result.stdout)
    assert result.stdout.strip().splitlines()[-1] == f"run {run_id} finished"
    return run_id


def node_ids(project, run_id: str) -> list[str]:
    return [r[0] for r in project.query("select node_id from _smithers_nodes where run_id = ? order by rowid", (run_id,))]


def finish_order(project, run_id: str) -> list[str]:
    rows = project.query("select node_id from _smithers_events where run_id = ? and type = 'NodeFinished' order by seq", (run_id,))
    return [r[0] for r in rows]


@pytest.fixture(autouse=True)
def _no_snapshot_refs_in_this_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples run where they are, inside smithers' own checkout: their runs must not leave
    snapshot refs (refs/smithers/...) in it (snapshots are tested in tests/test_snapshots.py)."""
    monkeypatch.setenv("SMITHERS_SNAPSHOTS", "off")


# -- every example: documented, and runnable with and without --input -------------------


# examples that need real agent CLIs; each has its own end-to-end test against fake model servers
NEEDS_AGENTS = {"review": "tests/test_example_review.py"}


def test_the_examples_folder_holds_exactly_the_documented_examples() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted([*NAMES, *NEEDS_AGENTS])
    for test in NEEDS_AGENTS.values():
        assert (EXAMPLES.parent / test).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_example_docstring_says_what_it_shows_and_how_to_run_it(name: str) -> None:
    doc = ast.get_docstring(ast.parse((EXAMPLES / f"{name}.py").read_text(encoding="utf-8")))
    assert doc and len(doc.splitlines()[0]) > 20, f"{name}.py needs a docstring saying what it shows"
    assert docstring_commands(name), f"{name}.py's docstring must give the exact `smithers up examples/{name}.py` command"


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_with_its_default_input(project, run_id_of, name: str) -> None:
    result = project.cli("up", str(EXAMPLES / f"{name}.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = run_id_of(result.stdout)
    assert project.query("select status from _smithers_runs where run_id = ?", (run_id,)) == [("finished",)]
    statuses = {r[0] for r in project.query("select status from _smithers_nodes where run_id = ?", (run_id,))}
    assert statuses == {"finished"}


# -- what each example leaves behind -----------------------------------------------------


def test_static(project, run_id_of) -> None:
    run_id = run_docstring(project, run_id_of, "static")
    plan = project.query("select node_id, version, channel, platforms, prerelease from release_plan where run_id = ?", (run_id,))
    assert len(plan) == 1
    node_id, version, channel, platforms, prerelease = plan[0]
    assert (node_id, version, channel, prerelease) == ("plan", "2.4.0", "stable", 0)
    assert json.loads(platforms) == ["linux-x86_64", "linux-aarch64", "macos-arm64"]  # nested values are JSON text
    assert project.query("select owner, required_reviews from sign_off where run_id = ?", (run_id,)) == [("release-team", 2)]
    attempts = project.query("select node_id, attempt, status from _smithers_attempts where run_id = ? order by node_id", (run_id,))
    assert attempts == [("plan", 1, "finished"), ("sign-off", 1, "finished")]


def test_compute(project, run_id_of) -> None:
    run_id = run_docstring(project, run_id_of, "compute")
    report = project.query(
        "select files, total_lines, largest, resumed_from, attempt from scan_report where run_id = ? and node_id = 'scan'", (run_id,)
    )
    assert report == [(3, 240, "a.py", 0, 1)]
    published = project.query("select index_key, entries from published where run_id = ?", (run_id,))
    assert published == [(f"{run_id}:publish:0", 3)]  # the TaskContext idempotency key: run:node:iteration
    assert finish_order(project, run_id) == ["scan", "publish"]


def test_sequence(project, run_id_of) -> None:
    run_id = run_docstring(project, run_id_of, "sequence")
    assert finish_order(project, run_id) == ["parse", "group", "render"]
    grouped = project.query("select features, fixes, other from grouped_commits where run_id = ?", (run_id,))
    assert [(json.loads(f), json.loads(x), o) for f, x, o in grouped] == [(["dark mode", "export to CSV"], ["crash on empty file"], 1)]
    (notes,) = project.query("select notes from release_notes where run_id = ?", (run_id,))[0]
    assert notes.splitlines() == [
        "## Features", "- dark mode", "- export to CSV", "## Fixes", "- crash on empty file", "_1 other change(s)_",
    ]


def test_fan_out(project, run_id_of) -> None:
    run_id = run_docstring(project, run_id_of, "fan_out")
    checks = project.query("select node_id, package, outdated from package_check where run_id = ? order by node_id", (run_id,))
    assert checks == [
        ("check-pydantic", "pydantic", 0), ("check-requests", "requests", 1), ("check-rich", "rich", 1), ("check-typer", "typer", 0),
    ]
    report = project.query("select checked, outdated from audit_report where run_id = ?", (run_id,))
    assert [(c, json.loads(o)) for c, o in report] == [(4, ["requests", "rich"])]
    # max_concurrency=2: never more than two checks at once, and they did run side by side
    spans = project.query(
        "select started_at_ms, finished_at_ms from _smithers_attempts where run_id = ? and node_id like 'check-%'", (run_id,)
    )
    overlap = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert overlap == 2
    assert finish_order(project, run_id)[-1] == "report"


def test_fan_out_refuses_an_unpinned_requirement_before_the_run_exists(project) -> None:
    result = project.cli("up", str(EXAMPLES / "fan_out.py"), "--input", '{"requirements": ["requests"]}')
    assert result.returncode == 4
    assert "'requests' is not pinned" in result.stderr
    assert project.query("select count(*) from _smithers_runs") == [(0,)]


def test_branch_takes_one_side_only(project, run_id_of) -> None:
    high = run_docstring(project, run_id_of, "branch", 0)
    assert node_ids(project, high) == ["triage", "page", "incident"]
    assert project.query("select severity from triage where run_id = ?", (high,)) == [("high",)]
    assert project.query("select title from incident where run_id = ?", (high,)) == [
        ("checkout: error rate 12% is above the 5% threshold",)
    ]

    low = run_docstring(project, run_id_of, "branch", 1)
    assert node_ids(project, low) == ["triage", "ticket"]
    assert project.query("select service, queue from ticket where run_id = ?", (low,)) == [("search", "next-business-day")]
    assert project.query("select count(*) from page where run_id = ?", (low,)) == [(0,)]


def test_loop_feedback_revises_until_the_review_approves(project, run_id_of) -> None:
    run_id = run_docstring(project, run_id_of, "loop_feedback")
    reviews = project.query("select iteration, approved, missing from review where run_id = ? order by iteration", (run_id,))
    assert [(i, a, json.loads(m)) for i, a, m in reviews] == [(0, 0, ["Example", "Risks"]), (1, 0, ["Risks"]), (2, 1, [])]
    drafts = project.query("select iteration, revision, sections from draft where run_id = ? order by iteration", (run_id,))
    assert [(i, r, json.loads(s)) for i, r, s in drafts] == [
        (0, 1, ["Summary"]), (1, 2, ["Summary", "Example"]), (2, 3, ["Summary", "Example", "Risks"]),
    ]
    assert project.query("select loop_id, iteration, done from _smithers_loops where run_id = ?", (run_id,)) == [("revise", 2, 1)]
    assert finish_order(project, run_id) == ["draft", "review"] * 3


def test_conditional_mounts_fix_only_when_lint_finds_problems(project, run_id_of) -> None:
    dirty = run_docstring(project, run_id_of, "conditional", 0)
    assert node_ids(project, dirty) == ["lint", "fix", "recheck"]
    lint = project.query("select node_id, problems from lint_report where run_id = ? order by node_id", (dirty,))
    assert lint == [("lint", 2), ("recheck", 0)]
    assert project.query("select code, changed_lines from fixed_code where run_id = ?", (dirty,)) == [("x = 1\nprint(x)\n", 2)]

    clean = run_docstring(project, run_id_of, "conditional", 1)
    assert node_ids(project, clean) == ["lint"]
    assert project.query("select problems from lint_report where run_id = ?", (clean,)) == [(0,)]


def test_agent_scripted(project, run_id_of) -> None:
    run_id = run_docstring(project, run_id_of, "agent_scripted")
    triage = project.query("select label, priority, summary from issue_triage where run_id = ?", (run_id,))
    assert triage == [("bug", 1, "App crashes when the upload is empty")]
    assert project.query("select text from reply where run_id = ?", (run_id,))[0][0].startswith("Thanks for the report")
    attempts = project.query(
        "select node_id, attempt, status, meta_json, error_json from _smithers_attempts where run_id = ? order by node_id, attempt",
        (run_id,),
    )
    assert [(n, a, s) for n, a, s, _, _ in attempts] == [("reply", 1, "failed"), ("reply", 2, "finished"), ("triage", 1, "finished")]
    meta = [json.loads(m) for _, _, _, m, _ in attempts]
    # the fallback chain: attempt 1 went to the first agent (never any JSON), attempt 2 to the second
    assert (meta[0]["agent"], meta[1]["agent"]) == ("forgetful", "scripted-replier")
    assert json.loads(attempts[0][4])["code"] == "INVALID_OUTPUT"
    # the triager's invalid first answer was repaired within its one attempt
    assert (meta[2]["agent"], meta[2]["turns"]) == ("scripted-triager", 2)

    def turns(node_id: str, attempt: int) -> list[str]:
        rows = project.query(
            "select payload_json from _smithers_events where run_id = ? and node_id = ? and attempt = ? and type = 'AgentTurn' "
            "order by seq", (run_id, node_id, attempt),
        )
        return [json.loads(r[0])["kind"] for r in rows]

    assert turns("triage", 1) == ["prompt", "repair"]
    assert turns("reply", 1) == ["prompt", "json-only"]
    assert turns("reply", 2) == ["prompt"]
    counts = dict(project.query(
        "select type, count(*) from _smithers_events where run_id = ? and type in ('AgentEvent', 'TokenUsageReported') group by type",
        (run_id,),
    ))
    assert counts == {"AgentEvent": 5, "TokenUsageReported": 5}  # one per turn: 2 + 2 + 1


# -- smithers init ----------------------------------------------------------------------


def test_init_scaffolds_a_hello_workflow_that_runs(project, run_id_of) -> None:
    assert list(project.root.iterdir()) == []
    result = project.cli("init")
    assert result.returncode == 0, result.stderr
    hello = project.root / ".smithers" / "workflows" / "hello.py"
    assert hello.is_file()
    next_lines = [line for line in result.stdout.splitlines() if line.startswith("next: ")]
    assert len(next_lines) == 1, result.stdout
    argv = shlex.split(next_lines[0][len("next: "):])
    assert argv[:3] == ["smithers", "up", ".smithers/workflows/hello.py"]

    ran = project.cli(*argv[1:])
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_id = run_id_of(ran.stdout)
    assert project.query("select message from greeting where run_id = ?", (run_id,)) == [("Hello, world!",)]
    assert project.query("select message, length from shout where run_id = ?", (run_id,)) == [("HELLO, WORLD!", 13)]

    original = hello.read_text(encoding="utf-8")
    edited = original.replace("Hello, ", "Howdy, ")
    assert edited != original
    hello.write_text(edited, encoding="utf-8")
    again = project.cli("init")
    assert again.returncode == 0, again.stderr
    assert "kept" in again.stdout
    assert hello.read_text(encoding="utf-8") == edited

    forced = project.cli("init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert hello.read_text(encoding="utf-8") == original
