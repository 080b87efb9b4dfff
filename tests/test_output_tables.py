"""Every output model is a real table a user can query with sqlite3."""

from __future__ import annotations

import json
import sqlite3

HEADER = """
from enum import Enum
from typing import Literal
from pydantic import BaseModel
from smithers import workflow, Task, Sequence, Parallel, Loop
"""

REVIEW_V1 = """
class Comment(BaseModel):
    line: int
    text: str

class Severity(str, Enum):
    low = "low"
    high = "high"

class CodeReview(BaseModel):
    approved: bool
    score: int
    ratio: float
    summary: str
    comments: list[Comment]
    tags: dict[str, int]
    severity: Severity
    mood: Literal["calm", "angry"]
    note: str | None = None
"""

REVIEW_VALUE = {
    "approved": True, "score": 7, "ratio": 0.5, "summary": "looks good",
    "comments": [{"line": 3, "text": "typo"}], "tags": {"style": 2}, "severity": "high", "mood": "calm",
}


def columns(db, table: str) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return {row[1]: row[2] for row in conn.execute(f'PRAGMA table_info("{table}")')}
    finally:
        conn.close()


def test_model_table_name_columns_and_types(project, run_id_of):
    project.write("wf.py", HEADER + REVIEW_V1 + f"""
class Echo(BaseModel):
    first_comment: str
    score_plus_one: int
    severity: str

@workflow
def review(ctx):
    r = ctx.output("review")
    return Sequence(
        Task("review", output=CodeReview, value={REVIEW_VALUE!r}),
        # read back through ctx: a CodeReview instance, nested values decoded
        r and Task("echo", output=Echo, value={{"first_comment": r.comments[0].text, "score_plus_one": r.score + 1,
                                                "severity": r.severity.value}}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    run_id = run_id_of(result.stdout)
    assert columns(project.db, "code_review") == {
        "run_id": "TEXT", "node_id": "TEXT", "iteration": "INTEGER", "approved": "INTEGER", "score": "INTEGER",
        "ratio": "REAL", "summary": "TEXT", "comments": "TEXT", "tags": "TEXT", "severity": "TEXT", "mood": "TEXT", "note": "TEXT",
    }
    # a user's own sqlite3 connection, no smithers code involved
    conn = sqlite3.connect(project.db)
    try:
        row = conn.execute(
            "SELECT run_id, node_id, iteration, approved, typeof(approved), score, typeof(score), ratio, typeof(ratio), summary, "
            "comments, tags, severity, mood, note FROM code_review"
        ).fetchone()
        pk = [r[1] for r in conn.execute('PRAGMA table_info("code_review")') if r[5]]
        (n,) = conn.execute("SELECT json_extract(comments, '$[0].line') FROM code_review").fetchone()
    finally:
        conn.close()
    assert row == (
        run_id, "review", 0, 1, "integer", 7, "integer", 0.5, "real", "looks good",
        '[{"line": 3, "text": "typo"}]', '{"style": 2}', "high", "calm", None,
    )
    assert json.loads(row[10]) == [{"line": 3, "text": "typo"}]
    assert pk == ["run_id", "node_id", "iteration"]
    assert n == 3  # nested values are JSON text that sqlite's json functions understand
    assert project.query("SELECT first_comment, score_plus_one, severity FROM echo") == [("typo", 8, "high")]
    assert project.query("SELECT table_name, model_name FROM _smithers_output_tables ORDER BY table_name") == [
        ("code_review", "CodeReview"), ("echo", "Echo"),
    ]


def test_table_names_are_snake_case(project):
    project.write("wf.py", HEADER + """
class HTTPResponse(BaseModel):
    status: int

class Analysis(BaseModel):
    summary: str

class PRReviewV2(BaseModel):
    ok: bool

@workflow
def names(ctx):
    return Parallel(
        Task("a", output=HTTPResponse, value={"status": 200}),
        Task("b", output=Analysis, value={"summary": "s"}),
        Task("c", output=PRReviewV2, value={"ok": False}),
    )
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    rows = project.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_smithers%' ESCAPE '\\'")
    tables = {r[0] for r in rows}
    assert tables == {"http_response", "analysis", "pr_review_v2"}
    assert project.query("SELECT status FROM http_response") == [(200,)]
    assert project.query("SELECT ok FROM pr_review_v2") == [(0,)]


def test_one_row_per_node_and_iteration_and_runs_share_the_table(project):
    project.write("wf.py", HEADER + """
class Out(BaseModel):
    n: int

@workflow
def rows(ctx):
    return Sequence(
        Task("a", output=Out, value={"n": 1}),
        Loop(Task("b", output=Out, value={"n": 10 + ctx.iteration("lp")}), id="lp", max_iterations=3),
    )
""")
    for _ in range(2):
        result = project.cli("up", "wf.py")
        assert result.returncode == 0, result.stderr
    rows = project.query("SELECT run_id, node_id, iteration, n FROM out ORDER BY run_id, node_id, iteration")
    assert len(rows) == 8 and len({r[0] for r in rows}) == 2
    for run_id in {r[0] for r in rows}:
        assert [r[1:] for r in rows if r[0] == run_id] == [("a", 0, 1), ("b", 0, 10), ("b", 1, 11), ("b", 2, 12)]


def test_adding_a_field_later_adds_a_column(project):
    project.write("wf.py", HEADER + """
class Report(BaseModel):
    title: str

@workflow
def report(ctx):
    return Task("r", output=Report, value={"title": "v1"})
""")
    assert project.cli("up", "wf.py").returncode == 0
    assert list(columns(project.db, "report")) == ["run_id", "node_id", "iteration", "title"]
    project.write("wf.py", HEADER + """
class Report(BaseModel):
    title: str
    pages: int = 0
    reviewed: bool = False
    extra: dict = {}

@workflow
def report(ctx):
    return Task("r", output=Report, value={"title": "v2", "pages": 12, "reviewed": True, "extra": {"k": [1]}})
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 0, result.stderr
    assert columns(project.db, "report") == {
        "run_id": "TEXT", "node_id": "TEXT", "iteration": "INTEGER", "title": "TEXT", "pages": "INTEGER", "reviewed": "INTEGER",
        "extra": "TEXT",
    }
    rows = project.query("SELECT title, pages, reviewed, extra FROM report ORDER BY title")
    assert rows == [("v1", None, None, None), ("v2", 12, 1, '{"k": [1]}')]
    # removing a field later drops nothing
    project.write("wf.py", HEADER + """
class Report(BaseModel):
    title: str

@workflow
def report(ctx):
    return Task("r", output=Report, value={"title": "v3"})
""")
    assert project.cli("up", "wf.py").returncode == 0
    assert "pages" in columns(project.db, "report")
    assert project.query("SELECT count(*) FROM report") == [(3,)]


def test_two_models_with_the_same_table_name_are_a_render_error(project):
    project.write("wf.py", HEADER + """
def make():
    class Review(BaseModel):
        score: int
    return Review

OtherReview = make()

class Review(BaseModel):
    text: str

@workflow
def clash(ctx):
    return Parallel(Task("a", output=Review, value={"text": "t"}), Task("b", output=OtherReview, value={"score": 1}))
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 4
    assert "both map to table 'review'" in result.stderr and "'b'" in result.stderr
    assert project.query("SELECT count(*) FROM _smithers_runs") == [(0,)]


def test_a_clash_that_mounts_later_fails_the_run_and_keeps_rows(project):
    project.write("wf.py", HEADER + """
def make():
    class Review(BaseModel):
        score: int
    return Review

OtherReview = make()

class Review(BaseModel):
    text: str

@workflow
def clash(ctx):
    a = ctx.output("a")
    return Sequence(Task("a", output=Review, value={"text": "t"}), a and Task("b", output=OtherReview, value={"score": 1}))
""")
    result = project.cli("up", "wf.py")
    assert result.returncode == 1, result.stdout + result.stderr
    (status, error), = project.query("SELECT status, error_json FROM _smithers_runs")
    assert status == "failed" and "both map to table 'review'" in error
    assert project.query("SELECT node_id, text FROM review") == [("a", "t")]


def test_reserved_field_names_only_matter_for_output_models(project):
    """An input (or helper) model may have fields named like the key columns; an output model may not."""
    project.write("wf.py", HEADER + """
class Inp(BaseModel):
    iteration: int = 0
    run_id: str = "mine"

class Out(BaseModel):
    n: int
    label: str

@workflow(input=Inp)
def fine(ctx):
    return Task("a", output=Out, value={"n": ctx.input.iteration, "label": ctx.input.run_id})
""")
    result = project.cli("up", "wf.py", "--input", '{"iteration": 3}')
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT n, label FROM out") == [(3, "mine")]

    project.write("bad.py", HEADER + """
class Bad(BaseModel):
    node_id: str

@workflow
def bad(ctx):
    return Task("clashing", output=Bad, value={"node_id": "x"})
""")
    result = project.cli("up", "bad.py")
    assert result.returncode == 4
    assert "task 'clashing'" in result.stderr and "field named 'node_id'" in result.stderr
    assert project.query("SELECT count(*) FROM _smithers_runs") == [(1,)]


def test_outputs_decode_back_to_the_model_after_resume(project, run_id_of):
    """On resume the run's state is rebuilt from the tables: nested values come back as the model."""
    project.write("wf.py", HEADER + REVIEW_V1 + f"""
from pathlib import Path

class Echo(BaseModel):
    text: str

def gate():
    if (Path(__file__).parent / "fail").exists():
        raise RuntimeError("gate closed")
    return {{"text": "open"}}

@workflow
def review(ctx):
    r = ctx.output("review")
    return Sequence(
        Task("review", output=CodeReview, value={REVIEW_VALUE!r}),
        Task("gate", output=Echo, run=gate),
        r and Task("echo", output=Echo, value={{"text": r.comments[0].text + "/" + r.severity.value}}),
    )
""")
    (project.root / "fail").touch()
    result = project.cli("up", "wf.py")
    assert result.returncode == 1
    run_id = run_id_of(result.stdout)
    (project.root / "fail").unlink()
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stderr
    assert project.query("SELECT node_id, text FROM echo ORDER BY node_id") == [("echo", "typo/high"), ("gate", "open")]


def test_models_with_aliases_are_stored_by_field_name_and_read_back_after_resume(project, run_id_of):
    """Regression: rows are stored by field name; reading them back (after a resume, when nothing
    is cached) must validate models whose fields have aliases."""
    project.write("wf.py", HEADER + """
from pathlib import Path
from pydantic import AliasChoices, ConfigDict, Field
from pydantic.alias_generators import to_camel

class Tagged(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel)
    class_: str = Field(alias="class")
    line_count: int
    picked: str = Field(validation_alias=AliasChoices("pick", "choice"))

class Echo(BaseModel):
    text: str

def gate():
    if (Path(__file__).parent / "closed").exists():
        raise RuntimeError("closed")
    return {"text": "open"}

@workflow
def aliased(ctx):
    t = ctx.output("t")
    return Sequence(
        Task("t", output=Tagged, value={"class": "x", "lineCount": 2, "choice": "c"}),
        Task("gate", output=Echo, run=gate),
        t and Task("echo", output=Echo, value={"text": f"{t.class_}/{t.line_count}/{t.picked}"}),
    )
""")
    (project.root / "closed").touch()
    result = project.cli("up", "wf.py")
    assert result.returncode == 1
    run_id = run_id_of(result.stdout)
    assert columns(project.db, "tagged").keys() >= {"class_", "line_count", "picked"}
    assert project.query("SELECT class_, line_count, picked FROM tagged") == [("x", 2, "c")]
    (project.root / "closed").unlink()
    result = project.cli("resume", run_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.query("SELECT text FROM echo WHERE node_id = 'echo'") == [("x/2/c",)]
