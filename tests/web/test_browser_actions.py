"""Task actions and gates in a real browser (Debian's Chromium, Playwright) against a real
`cadenza ui` with its scheduler: a backfill leaves six runs waiting at a gate, decided from the
/gates page; a task cleared from the run page's task list runs again (its gate asks again);
a rejected gate marked success from the task page, then retried, lets the run end success.

Screenshots go to test-output/screenshots/ (tests/web/test_browser.py's folder); every tab
fails its test on a dialog, a script error or a console error (the CSP's included)."""

from __future__ import annotations

import getpass
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.web._server import Server, serve

from cadenza._loader import load_pipeline
from cadenza.cli import main
from cadenza.engine.launch import run_pipeline
from cadenza.workspace import Workspace

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:
    pytest.skip("playwright is not installed: pip install -e '.[dev]'", allow_module_level=True)
from tests.web.test_browser import SHOTS, WAIT_MS, chromium

pytestmark = pytest.mark.browser

TARGET = str(Path(__file__).parents[1] / "pipelines" / "web_actions.py")
TOKEN = "test-token-actions-789"
ASKS = "Publish the daily report to the team?"


@dataclass
class Ops:
    server: Server
    home: Path
    waiting: list[str]
    """The six runs the backfill left waiting at the gate, oldest first."""
    done: str
    """A run that succeeded, its gate approved up front."""


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    home = tmp_path_factory.mktemp("actions") / ".cadenza"
    filled = CliRunner().invoke(main, ["--home", str(home), "backfill", TARGET, "--start",
                                       "2026-03-01", "--end", "2026-03-08"])
    assert filled.exit_code == 1, filled.output  # six runs left waiting
    ws = Workspace.open(home)
    try:
        waiting = sorted(r.run_id for r in ws.store.runs_in_states(["waiting"]))
        done = run_pipeline(load_pipeline(TARGET), workspace=ws, target=TARGET,
                            approve=["publish"]).run_id
        ws.store.set_paused("web_ops", True)  # no scheduled run of its own beside these
    finally:
        ws.close()
    assert len(waiting) == 6
    with serve(home, TARGET, TOKEN) as server:
        yield Ops(server, home, waiting, done)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as found:
        yield found


@dataclass
class Tab:
    page: Page
    name: str
    trouble: list[str]
    shots: int = 0

    def shot(self, label: str) -> None:
        self.shots += 1
        self.page.screenshot(path=SHOTS / f"actions-{self.name}-{self.shots:02d}-{label}.png",
                             full_page=True)


@pytest.fixture
def tab(browser: Browser, ops: Ops, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context = browser.new_context(base_url=ops.server.url,
                                  viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    found = Tab(page, re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-"), [])
    page.on("dialog", lambda d: (found.trouble.append(f"a dialog: {d.message!r}"),
                                 d.dismiss()))
    page.on("pageerror", lambda exc: found.trouble.append(f"script error: {exc}"))
    page.on("console", lambda m: found.trouble.append(f"console: {m.text}")
            if m.type == "error" else None)
    seen = len(ops.server.output())
    page.goto(f"/?token={TOKEN}")
    try:
        yield found
    finally:
        context.close()
        said = ops.server.output()[seen:]
        ops.server.check_alive()
        assert not found.trouble, found.trouble
        assert "Traceback" not in said, said


def _state(page: Page, run_id: str) -> str:
    state: str = page.request.get(f"/api/v1/runs/{run_id}").json()["state"]
    return state


def _until(page: Page, run_id: str, state: str) -> None:
    """Wait (up to WAIT_MS) for the UI's scheduler to bring the run to ``state``."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while _state(page, run_id) != state and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _state(page, run_id) == state, run_id


def test_the_run_page_shows_what_the_gate_asks(tab: Tab, ops: Ops) -> None:
    page = tab.page
    page.goto(f"/runs/{ops.waiting[0]}")
    box = page.locator("section.gate[data-gate=publish]")
    expect(box.locator(".gate-message")).to_have_text(ASKS)
    tab.shot("run-gate")
    page.goto(f"/runs/{ops.waiting[0]}/tasks/publish")
    expect(page.locator("section.gate .gate-message")).to_have_text(ASKS)
    expect(page.locator("p.task-actions")).to_contain_text("once the run has ended")
    tab.shot("task-gate")


def test_six_waiting_runs_are_approved_and_rejected_from_the_gates_page(tab: Tab,
                                                                        ops: Ops) -> None:
    page = tab.page
    page.get_by_role("link", name="Gates").click()
    rows = page.locator("#waiting tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.locator("td.gate-message").first).to_have_text(ASKS)
    tab.shot("six-waiting")
    everything = page.locator("#pick-all")
    everything.check()  # picks every row, and unpicks them all again
    expect(rows.locator("input.pick:checked")).to_have_count(6)
    everything.uncheck()
    expect(rows.locator("input.pick:checked")).to_have_count(0)
    for run_id in ops.waiting[:4]:
        page.locator(f"tr[data-run='{run_id}'] input.pick").check()
    page.get_by_role("button", name="approve picked").click()
    expect(page).to_have_url(ops.server.url + "/gates")
    expect(rows).to_have_count(2)
    tab.shot("two-left")
    for run_id in ops.waiting[4:]:
        page.locator(f"tr[data-run='{run_id}'] input.pick").check()
    page.locator("#many-reason").fill("numbers look off")
    page.get_by_role("button", name="reject picked").click()
    expect(page.locator("#none-waiting")).to_be_visible()
    tab.shot("none-waiting")
    for run_id in ops.waiting[:4]:  # the UI's scheduler goes on with the approved runs
        _until(page, run_id, "success")
    for run_id in ops.waiting[4:]:
        _until(page, run_id, "failed")
    page.goto(f"/runs/{ops.waiting[0]}")
    decided = page.locator("#run-actions tr[data-kind=gate_decided]")
    expect(decided).to_contain_text(getpass.getuser())
    tab.shot("approved-run")


def test_a_task_cleared_from_the_run_page_runs_again(tab: Tab, ops: Ops) -> None:
    page = tab.page
    page.goto(f"/runs/{ops.done}")
    row = page.locator("#tasks tr[data-task=report]")
    row.locator("details.clear-task summary").click()
    row.locator("input[name=downstream]").check()
    row.locator("input[name=reason]").fill("source fixed")
    tab.shot("clear-form")
    row.get_by_role("button", name="clear report").click()
    expect(page).to_have_url(ops.server.url + f"/runs/{ops.done}")
    _until(page, ops.done, "waiting")  # run again: report, then the cleared gate asks again
    page.reload()
    expect(page.locator("section.gate[data-gate=publish] .gate-message")).to_have_text(ASKS)
    cleared = page.locator("#run-actions tr[data-kind=task_cleared]")
    expect(cleared).to_contain_text("cleared report, publish, send")
    expect(cleared).to_contain_text("source fixed")
    tab.shot("cleared")
    attempts = page.request.get(f"/api/v1/runs/{ops.done}").json()["tasks"]
    assert {t["task"]: t["attempt"] for t in attempts}["report"] == 2


def test_a_rejected_gate_marked_success_then_retried_ends_the_run_success(tab: Tab,
                                                                          ops: Ops) -> None:
    page = tab.page
    run_id = ops.waiting[4]  # rejected above
    page.goto(f"/runs/{run_id}/tasks/publish")
    page.locator("details.mark-task summary").click()
    page.locator("details.mark-task select[name=state]").select_option("success")
    page.locator("details.mark-task input[name=reason]").fill("approved by phone")
    tab.shot("mark-form")
    page.get_by_role("button", name="mark").click()
    expect(page.locator("h1 .badge")).to_have_text("success")
    tab.shot("marked")
    page.get_by_role("link", name=run_id).click()
    expect(page.locator("#run-actions tr[data-kind=task_marked]")).to_contain_text(
        "approved by phone")
    page.get_by_role("button", name="retry failed tasks").click()
    _until(page, run_id, "success")  # send, held back by the rejection, runs now
    page.reload()
    expect(page.locator("#run-state")).to_have_text("success")
    tab.shot("retried")
