"""The web dashboard (``smithers serve`` at ``/``) in a real browser.

Playwright's sync API drives Debian's ``/usr/bin/chromium`` headless (never ``playwright
install``) against the real server started with ``smithers serve`` on 127.0.0.1, and workflows
started in the background with ``smithers up --detach``: the runs list, a node turning finished
live on the run page over the browser's ``EventSource``, the stream resumed with ``Last-Event-ID``
after the server went away, an approval decided with a click, the sign-in form of a server with a
token, the signal and answer forms of the inbox, the ES modules served as JavaScript, the status filter built from ``/v1/meta``, and the
run page at phone width (390x844) without horizontal overflow. Screenshots are saved under the
tests' ``artifacts`` folders.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright

from smithers.server.app import STATIC_DIR

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TOKEN = "dashboard-test-token"
TIMEOUT_MS = 20_000

# compute tasks that sleep ~0.5 s; `last` runs until the test creates the file `release`
# (at most 20 s), so the test sees it running and then sees it finish, with no race
LIVE = '''
import time
from pathlib import Path
from pydantic import BaseModel
from smithers import Parallel, Sequence, Task, workflow

RELEASE = Path({release!r})

class Out(BaseModel):
    n: int

def nap(n):
    def run():
        time.sleep(0.5)
        return {{"n": n}}
    return run

def held():
    deadline = time.monotonic() + 20
    while not RELEASE.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {{"n": 99}}

@workflow
def live(ctx):
    return Sequence(
        Task("first", output=Out, run=nap(1)),
        Parallel(Task("left", output=Out, run=nap(2)), Task("right", output=Out, run=nap(3))),
        Task("last", output=Out, run=held),
    )
'''

GATE = '''
import time
from pydantic import BaseModel
from smithers import Approval, Sequence, Task, workflow

class Out(BaseModel):
    n: int

def nap(n):
    def run():
        time.sleep(0.3)
        return {"n": n}
    return run

@workflow
def gate(ctx):
    return Sequence(
        Task("prepare", output=Out, run=nap(1)),
        Approval("ship-it", request={
            "title": "Ship it to production?",
            "summary": "<img src=x onerror=\\"window.__xss = 1\\"> deploy <b>now</b>",
        }),
        Task("deploy", output=Out, run=nap(2)),
    )
'''

QUICK = '''
from pydantic import BaseModel
from smithers import Sequence, Task, workflow

class Out(BaseModel):
    n: int

@workflow
def quick(ctx):
    return Sequence(Task("only", output=Out, value={"n": 1}))
'''


@dataclass
class Server:
    url: str
    root: Path
    db: Path
    proc: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in ("SMITHERS_API_KEY", "SMITHERS_DB", "COLUMNS")}

    def smithers(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args, "--db", str(self.db)], cwd=self.root, env=self.env(), check=False,
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def detach(self, workflow: str) -> str:
        """``smithers up FILE --detach``: the run id of the background run."""
        result = self.smithers("up", workflow, "--detach", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])["run_id"]

    def events_in_db(self, run_id: str) -> list[int]:
        """The run's event seqs as stored (read-only: the database is the truth the page must match)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return [r[0] for r in conn.execute("SELECT seq FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,))]
        finally:
            conn.close()

    def status_in_db(self, run_id: str) -> str:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,)).fetchone()[0]
        finally:
            conn.close()

    def get(self, path: str, token: str | None = None) -> dict:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def _start_server(tmp: Path, name: str, token: str | None, port: int = 0) -> Server:
    root = tmp / name
    root.mkdir(exist_ok=True)
    db = root / "smithers.db"
    log_path = root / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_API_KEY", "SMITHERS_DB")}
    args = [sys.executable, "-m", "smithers", "serve", "--host", "127.0.0.1", "--port", str(port), "--root", str(root), "--db", str(db)]
    if token:
        args += ["--auth-token", token]
    with open(log_path, "wb") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(args, cwd=root, env=env, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 20
    url = None
    while time.monotonic() < deadline:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
        if found:
            url = found.group(1)
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    else:
        _stop(proc)
        pytest.fail(f"smithers serve did not start:\n{log_path.read_text(errors='replace')}")
    if proc.poll() is not None or url is None:
        pytest.fail(f"smithers serve exited ({proc.returncode}):\n{log_path.read_text(errors='replace')}")
    return Server(url=url, root=root, db=db, proc=proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and nothing else of ours
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start_server(tmp_path_factory.mktemp("dashboard"), "open", None)
    yield srv
    for name in ("release", "release-cancel"):  # a `held` task still waiting lets go
        (srv.root / name).touch()
    _stop(srv.proc)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start_server(tmp_path_factory.mktemp("dashboard-token"), "locked", TOKEN)
    yield srv
    _stop(srv.proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium) to run the dashboard tests")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at desktop size; page errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda err: errors.append(str(err)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "401" not in msg.text else None)
    yield pg
    context.close()
    assert not errors, f"errors in the page: {errors}"


def write(server: Server, name: str, source: str) -> str:
    (server.root / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return name


# -- tests ---------------------------------------------------------------------------------------


def test_runs_list_and_live_node_updates(server: Server, page: Page, tmp_path: Path) -> None:
    release = server.root / "release"
    release.unlink(missing_ok=True)
    run_id = server.detach(write(server, "live.py", LIVE.format(release=str(release))))

    page.goto(server.url + "/")
    row = page.locator(f'.run-row[data-run="{run_id}"]')
    expect(row).to_be_visible()
    expect(row.locator(".wf")).to_have_text("live")
    expect(page.locator('[data-filter="running"]')).to_be_visible()

    row.locator("a").click()
    expect(page).to_have_url(re.compile(rf"#/runs/{run_id}$"))
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
    expect(page.locator("#run-id")).to_have_text(run_id)
    last = page.locator('.tree-row[data-node="last"]')
    expect(last).to_have_attribute("data-status", "running")
    expect(page.locator('.tree-row[data-node="first"]')).to_have_attribute("data-status", "finished")
    expect(page.locator('.tree-row[data-node="left"]')).to_have_attribute("data-status", "finished")
    expect(last.locator(".attempt")).to_have_text("attempt 1")

    release.touch()
    expect(last).to_have_attribute("data-status", "finished")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "finished")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating live"

    # the event stream, the node detail and the plan of the same run
    page.locator('[data-tab="events"]').click()
    expect(page.locator('#events .ev[data-type="RunFinished"]')).to_have_count(1)
    page.locator('[data-tab="nodes"]').click()
    last.click()
    detail = page.locator("#node-detail")
    expect(detail.locator(".detail-head .id")).to_have_text("last")
    expect(detail.locator("pre.json").last).to_contain_text('"n": 99')
    (tmp_path / "artifacts").mkdir()
    page.screenshot(path=str(tmp_path / "artifacts" / "run-page-desktop.png"), full_page=True)
    page.locator('[data-tab="plan"]').click()
    expect(page.locator('#plan .g-task[data-node="right"]')).to_have_attribute("data-status", "finished")
    expect(page.locator('#plan [data-kind="parallel"]')).to_have_count(1)

    # the status filter narrows the list
    page.goto(server.url + "/#/?status=failed")
    expect(page.locator('[data-filter="failed"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator(f'.run-row[data-run="{run_id}"]')).to_have_count(0)


def test_cancel_and_resume_buttons(server: Server, page: Page) -> None:
    release = server.root / "release-cancel"
    run_id = server.detach(write(server, "held.py", LIVE.format(release=str(release))))
    page.goto(server.url + f"/#/runs/{run_id}")
    last = page.locator('.tree-row[data-node="last"]')
    expect(last).to_have_attribute("data-status", "running")

    cancel = page.locator('[data-action="cancel"]')
    cancel.click()
    expect(cancel).to_have_text("Confirm cancel")  # two clicks: a stray tap cancels nothing
    cancel.click()
    expect(page.locator("#run-status")).to_have_attribute("data-status", "cancelled")
    expect(last).to_have_attribute("data-status", "cancelled")
    expect(cancel).to_have_count(0)

    page.locator('[data-action="resume"]').click()
    expect(page.locator("#run-status")).to_have_attribute("data-status", "running")
    expect(last).to_have_attribute("data-status", "running")
    release.touch()
    expect(page.locator("#run-status")).to_have_attribute("data-status", "finished")
    expect(last).to_have_attribute("data-status", "finished")
    expect(page.locator('[data-action="resume"]')).to_have_count(0)


def test_approve_with_a_click_continues_the_run(server: Server, page: Page) -> None:
    run_id = server.detach(write(server, "gate.py", GATE))
    page.goto(server.url + f"/#/runs/{run_id}")

    card = page.locator('#waiting .approval[data-node="ship-it"]')
    expect(card).to_be_visible()
    expect(card).to_contain_text("Ship it to production?")
    # the summary is shown as text: its markup is neither rendered nor run
    expect(card.locator(".summary")).to_have_text('<img src=x onerror="window.__xss = 1"> deploy <b>now</b>')
    assert card.locator(".summary *").count() == 0 and page.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None
    expect(page.locator('.tree-row[data-node="ship-it"]')).to_have_attribute("data-status", "waiting-approval")
    expect(page.locator("#inbox-count")).to_be_visible()

    card.locator('input[name="note"]').fill("looks good")
    card.locator('input[name="by"]').fill("alice")
    card.locator('[data-action="approve"]').click()

    expect(page.locator("#run-status")).to_have_attribute("data-status", "finished")
    expect(page.locator('.tree-row[data-node="deploy"]')).to_have_attribute("data-status", "finished")
    expect(page.locator("#waiting")).to_be_hidden()
    decision = server.get(f"/v1/runs/{run_id}/nodes/ship-it")["iterations"][0]["output"]
    assert decision["approved"] is True and decision["note"] == "looks good" and decision["decided_by"] == "alice"


def test_sign_in_form_when_the_server_has_a_token(token_server: Server, page: Page) -> None:
    done = token_server.smithers("up", write(token_server, "quick.py", QUICK))
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.strip().splitlines()[-1].split()[1]

    page.goto(token_server.url + "/")
    form = page.locator("#signin")
    expect(form).to_be_visible()
    expect(page.locator("#runs")).to_have_count(0)

    form.locator("#token").fill("not-the-token")
    form.locator("button[type=submit]").click()
    expect(form.locator("[role=alert]")).to_have_text("That token is not valid.")

    form.locator("#token").fill(TOKEN)
    form.locator("button[type=submit]").click()
    expect(page.locator(f'.run-row[data-run="{run_id}"]')).to_be_visible()
    assert TOKEN not in page.evaluate("document.cookie"), "the session cookie must be HttpOnly"

    # the cookie carries every route, the event stream included
    page.locator(f'.run-row[data-run="{run_id}"] a').click()
    expect(page.locator('.tree-row[data-node="only"]')).to_have_attribute("data-status", "finished")
    page.locator('[data-tab="events"]').click()
    expect(page.locator('#events .ev[data-type="RunFinished"]')).to_have_count(1)


def test_run_page_at_phone_width(server: Server, browser: Browser, tmp_path: Path) -> None:
    run_id = server.detach(write(server, "gate.py", GATE))
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda err: errors.append(str(err)))
        pg.goto(server.url + f"/#/runs/{run_id}")
        expect(pg.locator('#waiting .approval[data-node="ship-it"]')).to_be_visible()
        expect(pg.locator('.tree-row[data-node="prepare"]')).to_have_attribute("data-status", "finished")

        def no_overflow(where: str) -> None:
            width = pg.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{where}: the page is {width}px wide at 390px"

        no_overflow("run page")
        pg.screenshot(path=str(artifacts / "run-page.png"), full_page=True)
        pg.locator('.tree-row[data-node="prepare"]').click()
        expect(pg.locator("#node-detail .detail-head .id")).to_have_text("prepare")
        no_overflow("node detail")
        pg.locator('[data-tab="events"]').click()
        expect(pg.locator('#events .ev[data-type="RunWaiting"]')).to_have_count(1)
        no_overflow("events")
        pg.locator('[data-tab="plan"]').click()
        expect(pg.locator('#plan .g-task[data-node="ship-it"]')).to_be_visible()
        no_overflow("plan")
        pg.goto(server.url + "/")
        expect(pg.locator(f'.run-row[data-run="{run_id}"]')).to_be_visible()
        no_overflow("runs list")
        pg.screenshot(path=str(artifacts / "runs-phone.png"), full_page=True)
        assert not errors, errors
    finally:
        context.close()
    # leave nothing waiting behind
    server.smithers("deny", run_id, "--node", "ship-it")


def test_page_loads_its_modules_as_javascript_without_console_errors(server: Server, page: Page) -> None:
    scripts: dict[str, str] = {}
    page.on("response", lambda r: scripts.__setitem__(r.url.rsplit("/", 1)[-1], r.headers.get("content-type", ""))
            if "/static/" in r.url and r.url.endswith(".js") else None)
    page.goto(server.url + "/")
    expect(page.locator("#runs")).to_be_attached()
    expect(page.locator('[data-filter="all"]')).to_be_visible()
    page.goto(server.url + "/#/inbox")
    expect(page.locator("#inbox")).to_be_visible()
    modules = {p.name for p in STATIC_DIR.glob("*.js")}
    assert set(scripts) == modules, f"loaded {sorted(scripts)}, shipped {sorted(modules)}"
    assert all(kind.startswith("text/javascript") for kind in scripts.values()), scripts
    assert page.locator("script:not([type=module])").count() == 0
    # the `page` fixture fails the test on any page error or console error


def test_live_updates_arrive_over_event_source(server: Server, page: Page) -> None:
    release = server.root / "release-live"
    release.unlink(missing_ok=True)
    run_id = server.detach(write(server, "live2.py", LIVE.format(release=str(release))))
    streams: list[Request] = []
    page.on("request", lambda r: streams.append(r) if f"/v1/runs/{run_id}/events" in r.url else None)

    page.goto(server.url + f"/#/runs/{run_id}")
    page.evaluate("window.__sameDocument = true")
    last = page.locator('.tree-row[data-node="last"]')
    expect(last).to_have_attribute("data-status", "running")
    page.locator('[data-tab="events"]').click()
    expect(page.locator('#events .ev[data-type="NodeStarted"]').filter(has_text="last[0]")).to_have_count(1)
    expect(page.locator("#conn")).to_have_class(re.compile(r"\blive\b"))

    release.touch()
    # only the stream brings event rows: a NodeFinished row of `last` proves it came live
    expect(page.locator('#events .ev[data-type="NodeFinished"]').filter(has_text="last[0]")).to_have_count(1)
    expect(page.locator('#events .ev[data-type="RunFinished"]')).to_have_count(1)
    page.locator('[data-tab="nodes"]').click()
    expect(last).to_have_attribute("data-status", "finished")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating live"
    assert streams and all(r.resource_type == "eventsource" for r in streams), [(r.url, r.resource_type) for r in streams]
    assert all("token" not in r.url for r in streams)


def test_stream_resumes_with_last_event_id_after_the_server_drops_it(browser: Browser, tmp_path: Path) -> None:
    srv = _start_server(tmp_path, "drop", None)
    port = int(srv.url.rsplit(":", 1)[1])
    release = srv.root / "release"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    try:
        run_id = srv.detach(write(srv, "live.py", LIVE.format(release=str(release))))
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        # while the server is away the browser logs its failed reconnects (net::ERR_...): expected here
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "net::ERR_" not in msg.text else None)
        streams: list[Request] = []
        page.on("request", lambda r: streams.append(r) if f"/v1/runs/{run_id}/events" in r.url else None)
        page.goto(srv.url + f"/#/runs/{run_id}")
        expect(page.locator('.tree-row[data-node="last"]')).to_have_attribute("data-status", "running")
        page.locator('[data-tab="events"]').click()
        rows = page.locator("#events .ev")
        before = srv.events_in_db(run_id)  # `last` is held: nothing new until the release
        expect(rows).to_have_count(len(before))

        _stop(srv.proc)  # the stream drops; the run goes on without the server
        expect(page.locator("#conn")).not_to_have_class(re.compile(r"\blive\b"))
        release.touch()
        deadline = time.monotonic() + 30
        while srv.status_in_db(run_id) != "finished":
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.1)
        assert len(srv.events_in_db(run_id)) > len(before)

        srv = _start_server(tmp_path, "drop", None, port=port)  # same root, same port: the browser reconnects
        expect(page.locator("#run-status")).to_have_attribute("data-status", "finished")
        after = srv.events_in_db(run_id)
        expect(rows).to_have_count(len(after))
        shown = [int(seq) for seq in rows.evaluate_all("rows => rows.map(r => r.dataset.seq)")]
        assert shown == after, "every stored event once, in order"
        resumed = [r.all_headers().get("last-event-id") for r in streams[1:]]
        assert str(before[-1]) in resumed, f"no reconnect resumed after seq {before[-1]}: {resumed}"
        assert all(r.resource_type == "eventsource" for r in streams)
    finally:
        context.close()
        release.touch()
        _stop(srv.proc)
    assert not errors, f"errors in the page: {errors}"


def test_status_filter_choices_come_from_meta(server: Server, page: Page) -> None:
    meta = server.get("/v1/meta")
    page.goto(server.url + "/")
    chips = page.locator("[data-filter]")
    expect(chips).to_have_count(1 + len(meta["run_statuses"]))
    assert chips.evaluate_all("cs => cs.map(c => c.dataset.filter)") == ["all", *meta["run_statuses"]]
    expect(page.locator('[data-filter="waiting-approval"]')).to_have_text("Waiting approval")

    # a status the server adds shows up with no change to the page (meta answered with one more)
    def more_statuses(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body["run_statuses"] = [*body["run_statuses"], "paused"]
        route.fulfill(response=response, json=body)

    page.route("**/v1/meta", more_statuses)
    page.reload()
    expect(page.locator('[data-filter="paused"]')).to_have_text("Paused")
    expect(page.locator('[data-filter="paused"]')).to_have_attribute("aria-pressed", "false")


ASK = '''
from pydantic import BaseModel
from smithers import HumanTask, Sequence, Signal, workflow

class Built(BaseModel):
    sha: str

class Name(BaseModel):
    name: str

@workflow
def ask(ctx):
    return Sequence(
        Signal("built", schema=Built),
        HumanTask("naming", output=Name, prompt="Name the release"),
    )
'''


def test_signal_and_answer_forms_in_the_inbox(server: Server, page: Page) -> None:
    run_id = server.detach(write(server, "ask.py", ASK))
    page.goto(server.url + "/#/inbox")
    signal = page.locator(f'#inbox .approval:has(a[href="#/runs/{run_id}"]) .signal-form')
    expect(signal).to_have_count(1)
    expect(signal.locator('input[name="signal"]')).to_have_value("built")
    signal.locator('textarea[name="data"]').fill('{"sha": ')
    signal.locator("button[type=submit]").click()
    expect(signal.locator("[role=alert]")).to_contain_text("The data is not valid JSON")
    signal.locator('textarea[name="data"]').fill('{"sha": "abc123"}')
    signal.locator("button[type=submit]").click()

    answer = page.locator(f'#inbox form.approval[data-node="naming"]:has(a[href^="#/runs/{run_id}"])')
    expect(answer).to_be_visible(timeout=TIMEOUT_MS)  # the run goes on to the human task; the inbox polls every 5 s
    answer.locator('textarea[name="answer"]').fill('{"name": ')
    answer.locator("button[type=submit]").click()
    expect(answer.locator("[role=alert]")).to_contain_text("The answer is not valid JSON")
    answer.locator('textarea[name="answer"]').fill('{"name": "v2"}')
    answer.locator("button[type=submit]").click()
    expect(page.locator(f'#inbox a[href^="#/runs/{run_id}"]')).to_have_count(0)

    deadline = time.monotonic() + 30
    while server.status_in_db(run_id) != "finished":
        assert time.monotonic() < deadline, f"the run did not finish: {server.status_in_db(run_id)}"
        time.sleep(0.1)
    assert server.get(f"/v1/runs/{run_id}/nodes/naming")["iterations"][0]["output"] == {"name": "v2"}


def test_a_cron_run_shows_what_triggered_it(server: Server, page: Page) -> None:
    write(server, "quick.py", QUICK)
    added = server.smithers("cron", "add", "0 0 1 1 *", "quick.py", "--json")
    assert added.returncode == 0, added.stdout + added.stderr
    schedule_id = json.loads(added.stdout)["id"]
    started = server.smithers("cron", "run-now", schedule_id, "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = json.loads(started.stdout)["run_id"]
    page.goto(server.url + f"/#/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "finished")
    expect(page.locator("#run-trigger")).to_have_text(f"triggered by cron:{schedule_id}")
