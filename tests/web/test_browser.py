"""The UI in a real browser: Debian's Chromium, driven by Playwright, against a real
`cadenza ui` (its scheduler included) over a store with finished, failed, running and gated runs.

Every page visited is saved as a full-page screenshot under test-output/screenshots/ (or
$CADENZA_TEST_OUTPUT/screenshots/). The tests share one server and run in file order: those
that change the store (trigger, approve) come last. Every tab fails its test if a dialog opens,
a script throws, or the console reports an error (the Content Security Policy's included).
"""

from __future__ import annotations

import getpass
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.web._server import Server, serve
from tests.web.conftest import TARGET, TOKEN, World, build_world

from cadenza.store.base import Batch
from cadenza.workspace import Workspace

CHROMIUM = "/usr/bin/chromium"
try:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect, sync_playwright
except ImportError:
    pytest.skip("playwright is not installed: pip install -e '.[dev]'", allow_module_level=True)
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)",
                allow_module_level=True)

pytestmark = pytest.mark.browser

WAIT_MS = 20_000
"""The longest any one expectation waits: a run started by the UI's scheduler ends in ~2 s."""
SHOTS = Path(os.environ.get("CADENZA_TEST_OUTPUT") or Path(__file__).parents[2] / "test-output"
             ) / "screenshots"
PALETTE = {
    "success": "#2e9e44", "failed": "#d3322f", "running": "#a3e635", "queued": "#9e9e9e",
    "upstream_failed": "#f08a24", "awaiting_approval": "#8e5bd6", "waiting": "#8e5bd6",
    "cached": "#7fb8e6", "pending": "#d7d7d7",
}
"""The state colours (Airflow's) of cadenza.css, pinned: the graph must show these."""
RUN_URL = re.compile(r".*/runs/(web_demo-\d{8}T\d{6}-[0-9a-f]+)$")


def rgb(state: str) -> str:
    """A state's colour as getComputedStyle reports it: ``rgb(46, 158, 68)``."""
    hex_ = PALETTE[state]
    return "rgb({}, {}, {})".format(*(int(hex_[i:i + 2], 16) for i in (1, 3, 5)))


# -- the server, the browser and a tab ----------------------------------------------------------

@dataclass
class UI:
    server: Server
    world: World

    def url(self, path: str) -> str:
        return self.server.url + path


@contextmanager
def _heartbeat(home: Path, run_id: str) -> Iterator[None]:
    """Keep the hand-made running run's heartbeat fresh, as its runner would: silent for a
    minute it would read as interrupted, and the UI's scheduler would resume it."""
    stop = threading.Event()

    def beat() -> None:
        ws = Workspace.open(home)  # in this thread: a SQLite connection stays in its thread
        try:
            while not stop.wait(5):
                record = ws.store.get_run(run_id)
                record.heartbeat = time.time()
                ws.store.apply(Batch(runs=[record]))
        finally:
            ws.close()

    thread = threading.Thread(target=beat, name="fake-runner-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    home = tmp_path_factory.mktemp("browser") / ".cadenza"
    world = build_world(home)
    # web_demo runs daily at 06:00: unpaused, the scheduler's first tick would queue the latest
    # interval and add a fifth run. Triggered and approved runs start all the same.
    world.site.workspace.store.set_paused("web_demo", True)
    world.site.workspace.close()
    with serve(home, TARGET, TOKEN) as server, _heartbeat(home, world.runs["running"]):
        yield UI(server, world)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, every expectation waiting up to WAIT_MS: each browser test
    module's ``browser`` fixture."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield found
        finally:
            found.close()


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):  # this module runs first of the browser tests
        old.unlink()
    with chromium() as found:
        yield found
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past pytest's capture, as capsys.disabled
            reporter.write_line(f"\nbrowser screenshots: {SHOTS}")


class Tab:
    """A browser tab on the UI that saves a screenshot of each page and records trouble."""

    def __init__(self, browser: Browser, ui: UI, name: str, *, signed_in: bool) -> None:
        self.context = browser.new_context(base_url=ui.server.url,
                                           viewport={"width": 1280, "height": 800})
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
        self.shots = 0
        self.signed_in = signed_in
        self.trouble: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.trouble.append(f"script error: {exc}"))
        # Console errors include whatever the Content Security Policy blocked.
        self.page.on("console", self._console)

    def _dialog(self, dialog: Dialog) -> None:
        self.trouble.append(f"a dialog opened on {self.page.url}: {dialog.message!r}")
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if not self.signed_in and "status of 401" in message.text:
            return  # what a visitor without the token meets
        self.trouble.append(f"console error on {self.page.url}: {message.text}")

    def shot(self, label: str) -> None:
        self.shots += 1
        self.page.screenshot(path=SHOTS / f"{self.name}-{self.shots:02d}-{label}.png",
                             full_page=True)

    def close(self) -> None:
        self.context.close()
        assert not self.trouble, self.trouble


@contextmanager
def _tab(browser: Browser, ui: UI, request: pytest.FixtureRequest, *, signed_in: bool
         ) -> Iterator[Tab]:
    seen = len(ui.server.output())
    tab = Tab(browser, ui, request.node.name, signed_in=signed_in)
    try:
        yield tab
    finally:
        said = ui.server.output()[seen:]
        print(f"cadenza ui output during the test:\n{said}")  # pytest shows it on failure
        tab.close()
        ui.server.check_alive()
    # A failed poll goes unseen in the page, and the scheduler's trouble too: not here.
    assert "Traceback" not in said and "scheduler stopped" not in said, said


@pytest.fixture
def tab(browser: Browser, ui: UI, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A tab signed in with a Jupyter-style token link (the token is traded for a cookie)."""
    with _tab(browser, ui, request, signed_in=True) as found:
        found.page.goto(f"/?token={TOKEN}")
        expect(found.page).to_have_url(ui.url("/"))  # the token left the address bar
        yield found


@pytest.fixture
def anonymous_tab(browser: Browser, ui: UI, request: pytest.FixtureRequest) -> Iterator[Tab]:
    with _tab(browser, ui, request, signed_in=False) as found:
        yield found


def fill_of(page: Page, selector: str) -> str:
    fill: str = page.locator(selector).evaluate("e => getComputedStyle(e).fill")
    return fill


def expect_node(page: Page, task: str, state: str) -> None:
    """The graph's node for ``task`` is drawn in ``state``'s colour."""
    node = f"svg.dag g.node[data-node='{task}']"
    expect(page.locator(node)).to_have_class(re.compile(rf"\bstate-{state}\b"))
    assert fill_of(page, f"{node} rect") == rgb(state), (task, state)


# -- reading ------------------------------------------------------------------------------------

def test_signing_in_with_the_token(anonymous_tab: Tab, ui: UI) -> None:
    page = anonymous_tab.page
    page.goto("/runs")
    anonymous_tab.shot("not-signed-in")
    page.get_by_role("link", name="sign in").click()
    expect(page.locator("form.login")).to_be_visible()
    anonymous_tab.shot("login")
    page.locator("input[name=secret]").fill("not the token")
    page.get_by_role("button", name="log in").click()
    expect(page.locator("p.error")).to_contain_text("did not match")
    page.locator("input[name=secret]").fill(TOKEN)
    page.get_by_role("button", name="log in").click()
    expect(page).to_have_url(ui.url("/runs"))
    expect(page.locator(f"tr[data-run='{ui.world.runs['failed']}']")).to_be_visible()
    anonymous_tab.shot("runs")


def test_pipelines_page_shows_each_last_run_as_a_coloured_square(tab: Tab, ui: UI) -> None:
    page = tab.page
    row = page.locator("tr[data-pipeline=web_demo]")
    expect(row).to_contain_text("Extract, validate, wait for a person, publish.")
    expect(row).to_contain_text("at 06:00 every day")
    squares = row.locator("td.squares a.sq")
    expect(squares).to_have_count(4)
    tab.shot("pipelines")
    for kind, run_id in ui.world.runs.items():
        square = row.locator(f"a.sq[href='/runs/{run_id}']")
        expect(square).to_have_class(re.compile(rf"\bstate-{kind}\b"))
        colour = square.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == rgb(kind), (kind, colour)


def test_pipeline_graph_and_grid_are_coloured_by_state(tab: Tab, ui: UI) -> None:
    page = tab.page
    page.goto("/pipelines/web_demo")
    expect(page.locator("svg.dag g.node")).to_have_count(4)
    tab.shot("pipeline")
    data = page.request.get("/api/v1/pipelines/web_demo").json()
    latest = {t["name"]: t["state"] for t in data["tasks"]}
    assert all(latest.values()), latest  # the latest run reached every task
    for task, state in latest.items():
        expect_node(page, task, state)
    cells = page.locator("#grid a.cell").evaluate_all(
        "cs => cs.map(c => [c.className, getComputedStyle(c).backgroundColor])")
    assert len(cells) == sum(len(states) for states in data["grid"].values())
    for cls, colour in cells:
        assert colour == rgb(cls.split("state-")[1]), (cls, colour)


def test_failed_run_graph_shows_the_failure_and_what_it_held_back(tab: Tab, ui: UI) -> None:
    page = tab.page
    page.goto(f"/runs/{ui.world.runs['failed']}")
    expect(page.locator("#run-state")).to_have_text("failed")
    tab.shot("failed-run")
    expect_node(page, "validate", "failed")
    expect_node(page, "publish", "upstream_failed")
    expect(page.locator("tr[data-task=publish]")).to_contain_text("upstream failed")
    expect(page.get_by_role("button", name="retry failed tasks")).to_be_visible()


def test_click_from_the_pipelines_page_to_a_failed_task(tab: Tab, ui: UI) -> None:
    page = tab.page
    run_id = ui.world.runs["failed"]
    page.locator("tr[data-pipeline=web_demo] a.sq.state-failed").click()
    expect(page).to_have_url(ui.url(f"/runs/{run_id}"))
    page.locator("svg.dag g.node[data-node=validate]").click()  # the graph's nodes are links
    expect(page).to_have_url(ui.url(f"/runs/{run_id}/tasks/validate"))
    attempt = page.locator("section.attempt[data-attempt='1']")
    expect(attempt.locator(".badge")).to_have_text("failed")
    # The error is shown as text: its "<b>" is not markup.
    expect(attempt.locator("p.error")).to_contain_text(
        "threshold 0.95 is too strict <b>really</b>")
    expect(page.locator(".error b")).to_have_count(0)
    traceback = attempt.locator("pre.traceback")
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("ValueError")
    tab.shot("failed-task")


def test_running_task_log_grows_without_a_reload(tab: Tab, ui: UI) -> None:
    page = tab.page
    run_id = ui.world.runs["running"]
    page.locator(f"tr[data-pipeline=web_demo] a.sq[href='/runs/{run_id}']").click()
    expect(page.locator("#run-state")).to_have_text("running")
    expect_node(page, "validate", "running")
    tab.shot("running-run")
    page.locator("tr[data-task=validate] a").click()
    expect(page).to_have_url(ui.url(f"/runs/{run_id}/tasks/validate"))
    log = page.locator("pre.log")
    expect(log).to_have_text("starting validate\n")
    expect(log).to_have_attribute("data-log", re.compile(r"/attempts/1/log$"))
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    path = ui.world.home / "logs" / "web_demo" / run_id / "validate" / "1.log"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("row 1 of 3 checked <i>not markup</i>\n")
    expect(log).to_have_text("starting validate\nrow 1 of 3 checked <i>not markup</i>\n")
    assert page.evaluate("window.sameDocument") is True
    expect(log.locator("i")).to_have_count(0)
    tab.shot("live-log")


def test_script_in_a_log_or_error_stays_text_on_every_page(tab: Tab, ui: UI) -> None:
    """web_demo's extract prints a <script> to its log and validate raises with <b> in its
    message: on no page may they become markup, and no dialog may open (the tab checks)."""
    page = tab.page
    runs = ui.world.runs
    pages = {"pipelines": "/", "pipeline": "/pipelines/web_demo", "runs": "/runs",
             "events": "/events", "artifacts": "/artifacts"}
    pages |= {f"pipeline-{view}": f"/pipelines/web_demo/{view}"
              for view in ("plan", "schedule", "markdown")}
    pages |= {f"run-{kind}": f"/runs/{run_id}" for kind, run_id in runs.items()}
    pages |= {f"run-{kind}-{task}": f"/runs/{runs[kind]}/tasks/{task}"
              for kind in ("success", "failed")
              for task in ("extract", "validate", "approve_gate", "publish")}
    for label, path in pages.items():
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        expect(page.locator("main h1")).to_be_visible()
        # The page's own script is the only one, and nothing user-made became an element.
        assert page.locator("script").evaluate_all("ss => ss.map(s => s.src)") == [
            ui.url("/static/cadenza.js")], path
        expect(page.locator("main b, main i")).to_have_count(0)
        tab.shot(label)
    page.goto(f"/runs/{runs['success']}/tasks/extract")
    expect(page.locator("pre.log")).to_contain_text("<script>alert('log')</script>")
    page.locator("#output a").click()  # on to the artifact page, with its lineage graph
    expect(page.locator("main h1")).to_be_visible()
    expect(page.locator("svg.dag")).to_be_visible()
    tab.shot("artifact")


# -- acting: these change the store, so they run last -------------------------------------------

@pytest.mark.parametrize(("threshold", "region", "ends", "gate"), [
    ("0.7", "us", "waiting", "awaiting_approval"),  # new inputs: the gate waits for a person
    ("0.5", "eu", "success", "cached"),  # the success run approved these very inputs
], ids=["gate-waits", "gate-approved-before"])
def test_trigger_a_run_and_watch_it_start(tab: Tab, ui: UI, threshold: str, region: str,
                                          ends: str, gate: str) -> None:
    page = tab.page
    page.goto("/pipelines/web_demo#trigger")
    form = page.locator("form.trigger")
    form.locator("input[name='param.threshold']").fill(threshold)
    form.locator("select[name='param.region']").select_option(region)
    tab.shot("form")
    form.get_by_role("button", name="Trigger run").click()
    expect(page).to_have_url(RUN_URL)
    match = RUN_URL.match(page.url)
    assert match is not None
    run_id = match.group(1)
    assert run_id not in ui.world.runs.values()
    tab.shot("just-triggered")
    # The UI's scheduler starts it; the page reloads itself as the run's state changes.
    expect(page.locator("#run-state")).to_have_text(ends.replace("_", " "))
    params = page.locator("#params")  # as JSON: the form's text became a number
    expect(params.locator("tr", has_text="threshold").locator("code")).to_have_text(threshold)
    expect(params.locator("tr", has_text="region").locator("code")).to_have_text(f'"{region}"')
    expect(page.locator("tr[data-task=approve_gate] .badge")).to_have_text(
        gate.replace("_", " "))
    expect_node(page, "approve_gate", gate)
    expect(page.locator("section.gate[data-gate=approve_gate]")).to_have_count(
        1 if ends == "waiting" else 0)
    if ends == "success":
        expect_node(page, "publish", "cached")
    tab.shot(ends)
    page.goto("/runs")
    expect(page.locator(f"tr[data-run='{run_id}'] .badge")).to_have_text(ends)


def test_approve_a_gate_and_the_run_goes_on(tab: Tab, ui: UI) -> None:
    page = tab.page
    run_id = ui.world.runs["waiting"]
    page.locator(f"tr[data-pipeline=web_demo] a.sq[href='/runs/{run_id}']").click()
    expect(page.locator("#run-state")).to_have_text("waiting")
    expect_node(page, "approve_gate", "awaiting_approval")
    expect_node(page, "publish", "pending")
    gate = page.locator("section.gate[data-gate=approve_gate]")
    approve = gate.locator("form[action$='/approve']")
    approve.locator("input[name=reason]").fill("numbers look right")
    tab.shot("waiting")
    approve.get_by_role("button", name="approve", exact=True).click()
    expect(page).to_have_url(ui.url(f"/runs/{run_id}"))
    # The scheduler resumes the run once its gate is decided; the page follows by itself.
    expect(page.locator("#run-state")).to_have_text("success")
    expect(page.locator("tr[data-task=publish] .badge")).to_have_text("success")
    expect(page.locator("tr[data-task=approve_gate]")).to_contain_text(
        f"approved by {getpass.getuser()}: numbers look right")  # not "token": web/api._who
    expect(page.locator("section.gate")).to_have_count(0)
    expect_node(page, "approve_gate", "success")
    expect_node(page, "publish", "success")
    tab.shot("approved")
