"""The UI's polish (issue 16, part 7) in a real browser, as a user meets it: a paused pipeline
says so instead of a next run, the orchestration plan reads as a document (and its hostile
bits stay text), the schedule names its timezone once, the trigger form keeps what was typed
and says beside the field what is wrong, checkboxes and selects trigger the run they show,
and the run page lists tasks in DAG order. Against a real `cadenza ui` over
tests/pipelines/polish_demo.py.

Screenshots go to test-output/screenshots/polish-*.png (or $CADENZA_TEST_OUTPUT)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.web._polish_world import DAG_ORDER, RUN_ID, TARGET, add_ordered_run
from tests.web._server import Server, serve
from tests.web.conftest import TOKEN
from tests.web.test_browser import Tab, chromium

from cadenza.workspace import Workspace

try:
    from playwright.sync_api import Browser, expect
except ImportError:  # test_browser skips this module first; mypy and ruff still read it
    pytest.skip("playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser

RUN_URL = re.compile(r".*/runs/(polish_demo-\d{8}T\d{6}-[0-9a-f]+)$")


@dataclass
class Polish:
    server: Server
    home: str

    def url(self, path: str) -> str:
        return self.server.url + path


@pytest.fixture(scope="module")
def polish(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Polish]:
    home = tmp_path_factory.mktemp("polish") / ".cadenza"
    ws = Workspace.open(home)
    try:
        add_ordered_run(ws)
        ws.store.set_paused("polish_demo", True)  # every 10 minutes: it would queue runs
    finally:
        ws.close()
    with serve(home, TARGET, TOKEN) as server:
        yield Polish(server, str(home))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as found:
        yield found


@pytest.fixture
def tab(browser: Browser, polish: Polish, request: pytest.FixtureRequest) -> Iterator[Tab]:
    found = Tab(browser, polish, f"polish-{request.node.name}", signed_in=True)  # type: ignore[arg-type]
    try:
        # Signed in on a page that does not reload itself, so a test's first goto is its own.
        found.page.goto(f"/pipelines/polish_demo/schedule?token={TOKEN}")
        expect(found.page).to_have_url(polish.url("/pipelines/polish_demo/schedule"))
        yield found
    finally:
        found.close()
        polish.server.check_alive()


def test_a_paused_pipeline_says_paused_not_next_run(tab: Tab) -> None:
    page = tab.page
    page.goto("/")
    row = page.locator("tr[data-pipeline=polish_demo]")
    expect(row.locator(".badge.paused")).to_be_visible()
    expect(row.locator("td.next")).to_have_text("paused")
    tab.shot("pipelines")
    row.get_by_role("link", name="polish_demo", exact=True).click()
    expect(page.locator("#next-run")).to_contain_text("paused")
    expect(page.locator("#next-run")).not_to_contain_text("next run")
    page.get_by_role("link", name="schedule", exact=True).click()
    expect(page.locator("p.paused-note")).to_be_visible()
    # The timezone, once.
    expect(page.locator("main p", has_text=re.compile(r"^every 10 minutes"))).to_have_text(
        "every 10 minutes (UTC)")
    assert "(UTC) (UTC)" not in page.locator("main").inner_text()
    tab.shot("schedule-paused")
    page.get_by_role("button", name="unpause").click()
    expect(page.locator("#next-run")).to_contain_text("next run")
    expect(page.locator("#next-run")).to_contain_text("(in ")
    tab.shot("unpaused")
    page.goto("/")
    expect(page.locator("tr[data-pipeline=polish_demo] td.next")).to_contain_text("(in ")
    page.locator("tr[data-pipeline=polish_demo]").get_by_role("button", name="pause").click()
    expect(page.locator("tr[data-pipeline=polish_demo] td.next")).to_have_text("paused")


def test_the_orchestration_plan_reads_as_a_document(tab: Tab) -> None:
    page = tab.page
    page.goto("/pipelines/polish_demo")
    page.get_by_role("link", name="orchestration plan").click()
    doc = page.locator("article#markdown")
    expect(doc.locator("h2").first).to_have_text("Orchestration plan: polish_demo")
    expect(page.locator("main h1")).to_have_count(1)  # the page's own: the plan's are below
    expect(doc.locator("strong", has_text="rows")).to_be_visible()
    expect(doc.locator("table").first).to_be_visible()
    expect(doc.locator("td", has_text="1 retry, backoff")).to_be_visible()
    # The hostile parts are text: no script ran (the tab fails on a dialog), no image, and
    # only the web and app links are links.
    expect(doc).to_contain_text("<script>alert('md')</script>")
    expect(doc.locator("img, script, iframe")).to_have_count(0)
    hrefs = doc.locator("a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.org/docs", "/runs"], hrefs
    expect(doc).to_contain_text("[click me](javascript:alert('md'))")
    tab.shot("markdown")


def test_a_bad_param_shows_the_form_again_with_the_error_and_the_values(tab: Tab) -> None:
    page = tab.page
    page.goto("/pipelines/polish_demo#trigger")
    form = page.locator("form.trigger")
    checkbox = form.locator("input[type=checkbox][name='param.dry_run']")
    expect(checkbox).not_to_be_checked()
    checkbox.check()
    form.locator("select[name='param.size']").select_option("large")
    form.locator("input[name='param.rows']").fill("5000")
    form.locator("input[name='param.note']").fill("keep this")
    tab.shot("form-filled")
    form.get_by_role("button", name="Trigger run").click()
    expect(page).to_have_url(re.compile(r".*/pipelines/polish_demo/trigger$"))
    form = page.locator("form.trigger")
    rows = form.locator("label[data-param=rows]")
    expect(rows).to_have_class(re.compile(r"\binvalid\b"))
    expect(rows.locator(".field-error")).to_have_text(
        "Param 'rows' must be at most 1000, but got 5000.")
    expect(rows.locator("input")).to_be_focused()
    # Nothing typed was lost.
    expect(rows.locator("input")).to_have_value("5000")
    expect(form.locator("input[name='param.note']")).to_have_value("keep this")
    expect(form.locator("select[name='param.size']")).to_have_value("large")
    expect(form.locator("input[type=checkbox][name='param.dry_run']")).to_be_checked()
    tab.shot("form-error")
    # The browser reports the refusal's status (422) in its console: expected, and only that.
    refused = [t for t in tab.trouble if "status of 422" in t and "/trigger" in t]
    assert len(refused) == 1, tab.trouble
    tab.trouble.remove(refused[0])
    # Fixed, it triggers the run the form shows.
    rows.locator("input").fill("40")
    form.get_by_role("button", name="Trigger run").click()
    expect(page).to_have_url(RUN_URL)
    params = page.locator("#params")
    expect(params.locator("tr", has_text="rows").locator("code")).to_have_text("40")
    expect(params.locator("tr", has_text="dry_run").locator("code")).to_have_text("true")
    expect(params.locator("tr", has_text="size").locator("code")).to_have_text('"large"')
    expect(params.locator("tr", has_text="note").locator("code")).to_have_text('"keep this"')
    tab.shot("triggered")


def test_an_unchecked_box_triggers_false(tab: Tab) -> None:
    page = tab.page
    page.goto("/pipelines/polish_demo#trigger")
    form = page.locator("form.trigger")
    expect(form.locator("input[type=checkbox][name='param.dry_run']")).not_to_be_checked()
    form.get_by_role("button", name="Trigger run").click()
    expect(page).to_have_url(RUN_URL)
    expect(page.locator("#params tr", has_text="dry_run").locator("code")).to_have_text("false")
    expect(page.locator("#params tr", has_text="size").locator("code")).to_have_text('"small"')


def test_the_run_page_lists_tasks_in_dag_order(tab: Tab) -> None:
    page = tab.page
    page.goto(f"/runs/{RUN_ID}")
    expect(page.locator("#tasks tbody tr")).to_have_count(len(DAG_ORDER))
    shown = page.locator("#tasks tbody tr").evaluate_all("rs => rs.map(r => r.dataset.task)")
    assert shown == DAG_ORDER  # zeta; mid, alpha as declared; omega: not by start or name
    tab.shot("dag-order")
