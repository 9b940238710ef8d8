"""The data views in a real browser (Debian's Chromium, Playwright) against a real `cadenza
ui` over tests/web/_data_pipeline.py: a mapped task's item grid, an item's page and retrying
its failed items; artifact previews, metrics, and HTML / SVG outputs that try to run script
and must not; the asset view. Screenshots go under test-output/screenshots/ as data-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from tests.web._server import serve
from tests.web.test_browser import SHOTS, UI, Tab, _tab, chromium
from tests.web.test_data_views import AFTER, TARGET, TOKEN, Data, build

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # test_browser skipped the module already; this keeps mypy quiet
    pytest.skip("playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UI, Data]]:
    data = build(tmp_path_factory.mktemp("browser-data"))
    home = data.site.workspace.home
    data.site.workspace.store.set_paused("web_data_after", True)  # no triggered runs
    data.site.workspace.close()
    with serve(home, TARGET, TOKEN, args=[AFTER]) as server:
        yield UI(server, None), data  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("data-*.png"):
        old.unlink()
    with chromium() as found:
        yield found


@pytest.fixture
def tab(browser: Browser, world: tuple[UI, Data], request: pytest.FixtureRequest
        ) -> Iterator[Tab]:
    ui = world[0]
    with _tab(browser, ui, request, signed_in=True) as found:
        found.name = "data-" + found.name
        found.page.goto(f"/?token={TOKEN}")
        expect(found.page).to_have_url(ui.url("/"))
        yield found


def _popup(page: Page, link: str) -> Page:
    """Click ``link`` (target=_blank) and return the tab it opens, loaded."""
    with page.context.expect_page() as opened:
        page.locator(link).click()
    popup = opened.value
    popup.wait_for_load_state()
    return popup


# -- artifacts ----------------------------------------------------------------------------------

def test_a_table_previews_its_first_rows(tab: Tab, world: tuple[UI, Data]) -> None:
    page, data = tab.page, world[1]
    page.goto(f"/artifacts/{data.outputs['table']}")
    table = page.locator("#preview-table")
    expect(table.locator("thead th")).to_have_text(["customer_id", "tenure", "churned"])
    expect(table.locator("tbody tr")).to_have_count(50)
    expect(page.locator("#preview-note")).to_contain_text("the first 50 of 120 rows")
    tab.shot("table-preview")
    with page.expect_download() as got:
        page.locator("#download").click()
    assert got.value.suggested_filename.endswith(".parquet")


def test_json_preview_is_escaped_text(tab: Tab, world: tuple[UI, Data]) -> None:
    page, data = tab.page, world[1]
    page.goto(f"/artifacts/{data.outputs['doc']}")
    expect(page.locator("#preview-text")).to_contain_text('"<script>alert(1)</script>"')
    expect(page.locator("#preview-note")).to_contain_text("the first 20,000")
    tab.shot("json-preview")


def test_metrics_show_on_the_model_and_its_task(tab: Tab, world: tuple[UI, Data]) -> None:
    page, data = tab.page, world[1]
    page.goto(f"/artifacts/{data.outputs['train']}")
    expect(page.locator("#preview-note")).to_contain_text("never unpickles")
    expect(page.locator("#metrics tr[data-metric=roc_auc] td.num")).to_have_text("0.8731")
    tab.shot("model-metrics")
    page.get_by_role("link", name="task", exact=True).click()
    expect(page.locator("#metrics tr[data-metric=rows] td.num")).to_have_text("120")
    tab.shot("task-metrics")


def test_an_opened_html_output_runs_no_script(tab: Tab, world: tuple[UI, Data]) -> None:
    page, data = tab.page, world[1]
    page.goto(f"/artifacts/{data.outputs['report:page']}")
    expect(page.locator("#preview")).to_have_attribute("data-kind", "html")
    tab.shot("html-artifact")
    report = _popup(page, "#open")
    expect(report.locator("#title")).to_have_text("Churn report")  # the script would rename it
    assert report.title() == "report"
    assert report.evaluate("window.origin") == "null"  # sandboxed: not the UI's origin
    colour = report.locator("#title").evaluate("e => getComputedStyle(e).color")
    assert colour == "rgb(102, 51, 153)"  # its own inline style still applies
    report.screenshot(path=SHOTS / "data-opened-report.png", full_page=True)
    report.close()
    assert not [c for c in page.context.cookies() if c["name"] == "pwned"]


def test_an_opened_svg_runs_no_script(tab: Tab, world: tuple[UI, Data]) -> None:
    page, data = tab.page, world[1]
    page.goto(f"/artifacts/{data.outputs['report:picture']}")
    expect(page.locator("#preview")).to_have_attribute("data-kind", "svg")
    picture = _popup(page, "#open")
    assert picture.evaluate("document.documentElement.getAttribute('data-ran')") is None
    assert picture.evaluate("window.origin") == "null"
    picture.close()
    assert not [c for c in page.context.cookies() if c["name"] == "pwned"]


def test_an_image_output_is_shown_inline(tab: Tab, world: tuple[UI, Data]) -> None:
    page, data = tab.page, world[1]
    page.goto(f"/artifacts/{data.outputs['report:chart']}")
    image = page.locator("#preview-image")
    expect(image).to_be_visible()
    assert image.evaluate("e => e.complete && e.naturalWidth") == 1
    tab.shot("image-preview")


# -- the asset view -----------------------------------------------------------------------------

def test_the_asset_view_links_versions_runs_and_triggers(tab: Tab, world: tuple[UI, Data]
                                                         ) -> None:
    page, data = tab.page, world[1]
    page.locator("header nav").get_by_role("link", name="Assets").click()
    row = page.locator("tr[data-asset='web_data.train.return']")
    expect(row.locator("a.trigger")).to_have_text("web_data_after")
    expect(row.locator("a.asset-ref")).to_have_text(["web_data.table"])
    tab.shot("assets")
    row.locator("a.asset-ref").click()
    expect(page.locator("tr[data-asset='web_data.table.return']")).to_be_in_viewport()
    row.locator("a.version").click()
    expect(page).to_have_url(re.compile(rf"/artifacts/{data.outputs['train']}$"))
    page.go_back()
    page.locator("tr[data-asset='web_data.train.return'] a.run").click()
    expect(page).to_have_url(re.compile(rf"/runs/{data.run_id}$"))


# -- mapped items (last: retrying changes the run) ----------------------------------------------

def test_the_item_grid_an_item_and_retrying_failed_items(tab: Tab, world: tuple[UI, Data]
                                                         ) -> None:
    page, data = tab.page, world[1]
    task = f"/runs/{data.run_id}/tasks/square"
    page.goto(task)
    cells = page.locator("#items a.cell.item")
    expect(cells).to_have_count(12)
    expect(page.locator("#items a[data-index='3']")).to_have_class(re.compile(r"state-failed"))
    tab.shot("item-grid")
    page.locator("#item-filters a[data-state=failed]").click()
    expect(cells).to_have_count(1)
    tab.shot("item-grid-failed")
    cells.first.click()
    expect(page.locator("h1")).to_contain_text("item 3")
    attempt = page.locator("section.attempt[data-attempt='1']")
    expect(attempt.locator("h3")).to_contain_text("item 3 · attempt 1")
    expect(attempt.locator("pre.traceback")).to_contain_text("ValueError")
    expect(attempt.locator("pre.log")).to_contain_text("squaring item 3")
    tab.shot("item-failed")
    (data.root / "fixed").write_text("yes")  # what the user fixes before retrying
    page.goto(task)
    page.get_by_role("button", name=re.compile("retry failed items only")).click()
    expect(page).to_have_url(re.compile(rf"/runs/{data.run_id}$"))
    expect(page.locator("#run-state")).to_have_text("success")  # the page reloads live
    page.goto(task + "/items/3")
    expect(page.locator("section.attempt[data-attempt='2'] h3")).to_contain_text(
        "item 3 · attempt 2")
    tab.shot("item-retried")
    page.goto(task)
    expect(page.locator("#items a.cell.item.state-failed")).to_have_count(0)
    kept = page.locator("#items a[data-index='0']").get_attribute("title") or ""
    assert "attempt 1" in kept  # the items that had succeeded did not run again
