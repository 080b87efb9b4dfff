"""The per-attempt diff (DESIGN §10.3): ``GET /v1/runs/{id}/nodes/{node}/diff`` on the real
``smithers serve``, and the node view of the dashboard showing each attempt's changed files with
their +/- counts and the patch, in headless Chromium (the same harness as test_dashboard.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_dashboard import Server, _start_server, _stop, browser, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

WRITER = """
from pathlib import Path
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Done(BaseModel):
    ok: bool

def write_a():
    Path("a.txt").write_text("one\\n")
    return {"ok": True}

def write_b():
    Path("a.txt").write_text("two\\nlines\\n")
    Path("b.txt").write_text("bee\\n")
    return {"ok": True}

@workflow
def wf(ctx):
    return Sequence(
        Task("hello", output=Done, value={"ok": True}), Task("a", output=Done, run=write_a), Task("b", output=Done, run=write_b),
    )
"""


@pytest.fixture(scope="module")
def diff_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start_server(tmp_path_factory.mktemp("dashboard-diff"), "diffs", None)
    yield srv
    _stop(srv.proc)


@pytest.fixture(scope="module")
def run_id(diff_server: Server) -> str:
    (diff_server.root / "wf.py").write_text(WRITER)
    done = diff_server.smithers("up", "wf.py", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["run_id"]


def test_the_diff_endpoint(diff_server: Server, run_id: str) -> None:
    body = diff_server.get(f"/v1/runs/{run_id}/nodes/b/diff")
    assert body["files"] == [
        {"path": "a.txt", "status": "modified", "additions": 2, "deletions": 1},
        {"path": "b.txt", "status": "added", "additions": 1, "deletions": 0},
    ]
    assert "+bee" in body["patch"] and (body["iteration"], body["attempt"]) == (0, 1)
    stat = diff_server.get(f"/v1/runs/{run_id}/nodes/a/diff?iteration=0&attempt=1&stat=true")
    assert "patch" not in stat and [f["path"] for f in stat["files"]] == ["a.txt"]
    for path, status, code in [
        (f"/v1/runs/{run_id}/nodes/hello/diff", 404, "NO_SNAPSHOT"),
        (f"/v1/runs/{run_id}/nodes/nope/diff", 404, "UNKNOWN_NODE"),
        (f"/v1/runs/{run_id}/nodes/b/diff?attempt=9", 400, "USAGE"),
        ("/v1/runs/no-such-run/nodes/b/diff", 404, "UNKNOWN_RUN"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(diff_server.url + path, timeout=10)
        assert caught.value.code == status, path
        assert json.loads(caught.value.read())["error"]["code"] == code, path


def test_the_node_view_shows_each_attempts_changes(diff_server: Server, run_id: str, page: Page, tmp_path: Path) -> None:  # noqa: F811
    page.goto(f"{diff_server.url}/#/runs/{run_id}")
    page.locator('.tree-row[data-node="b"]').click()
    detail = page.locator("#node-detail")
    expect(detail.locator(".detail-head .id")).to_have_text("b")
    section = detail.locator('.attempt-diff[data-attempt="1"]')
    expect(section).to_have_attribute("open", "")
    added = section.locator('.diff-file[data-path="b.txt"]')
    expect(added).to_have_attribute("data-status", "added")
    expect(added.locator(".diff-add")).to_have_text("+1")
    modified = section.locator('.diff-file[data-path="a.txt"]')
    expect(modified).to_have_attribute("data-status", "modified")
    expect(modified.locator(".diff-del")).to_have_text("\u22121")  # a real minus sign
    expect(section.locator(".diff-summary")).to_contain_text("2 files changed")
    section.locator(".diff-patch-box > summary").click()
    expect(section.locator("pre.diff-patch .diff-add").filter(has_text="+bee")).to_have_count(1)
    (tmp_path / "artifacts").mkdir()
    page.screenshot(path=str(tmp_path / "artifacts" / "attempt-diff.png"), full_page=True)

    page.locator('.tree-row[data-node="hello"]').click()  # a static task changed no files: no section
    expect(detail.locator(".detail-head .id")).to_have_text("hello")
    expect(detail.locator(".attempt-diffs")).to_have_count(0)
