"""Graphs that fit, in a real browser (issue 16, part 4): churn's eleven steps, the gate and
promote included, lie inside a 1280x800 window without scrolling; the buttons, the wheel and a
drag zoom and pan; the legend names each state shown in its colour; with JavaScript off the
graph is still whole. Against a real `cadenza ui` over a store of real churn runs.

Screenshots go to test-output/screenshots/graphs-*.png (or $CADENZA_TEST_OUTPUT)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.web._server import Server, serve
from tests.web.conftest import TOKEN
from tests.web.test_browser import Tab, chromium

from cadenza._loader import load_pipeline
from cadenza.workspace import Workspace

try:
    from playwright.sync_api import Browser, Page, expect
except ImportError:  # test_browser skips this module first; mypy and ruff still read it
    pytest.skip("playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.browser

CHURN = Path(__file__).resolve().parents[2] / "examples" / "churn"
SMALL = {"rows": 600, "cv_folds": 3}
STEPS = ["land", "ingest", "store_raw", "validate", "prepare", "transform", "feature_store",
         "train", "evaluate", "promote_gate", "promote"]
WIDTH, HEIGHT = 1280, 800


@dataclass
class Churn:
    server: Server
    approved: str
    """A run whose gate was approved: every step succeeded."""
    waiting: str
    """A run waiting at promote_gate."""

    def url(self, path: str) -> str:
        return self.server.url + path


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Churn]:
    home = tmp_path_factory.mktemp("graphs") / ".cadenza"
    pipe = load_pipeline(str(CHURN))
    approved = pipe.run(home=home, params={**SMALL, "batch_date": "2026-01-05"},
                        approve=["promote_gate"]).run_id
    waiting = pipe.run(home=home, params={**SMALL, "batch_date": "2026-01-06"}).run_id
    ws = Workspace.open(home)
    try:
        ws.store.set_paused("churn", True)  # its schedule would queue runs of its own
    finally:
        ws.close()
    with serve(home, str(CHURN), TOKEN) as server:
        yield Churn(server, approved, waiting)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as found:
        yield found


def _open(browser: Browser, churn: Churn, request: pytest.FixtureRequest, *,
          script: bool = True) -> Iterator[Tab]:
    tab = Tab(browser, churn, f"graphs-{request.node.name}", signed_in=True)  # type: ignore[arg-type]
    if not script:  # the same tab with JavaScript off: a context of its own
        tab.context.close()
        tab.context = browser.new_context(base_url=churn.server.url, java_script_enabled=False,
                                          viewport={"width": WIDTH, "height": HEIGHT})
        tab.page = tab.context.new_page()
    try:
        # Signed in on a page that does not reload itself, so a test's first goto is its own.
        tab.page.goto(f"/pipelines/churn/schedule?token={TOKEN}")
        expect(tab.page).to_have_url(churn.url("/pipelines/churn/schedule"))
        yield tab
    finally:
        tab.close()
        churn.server.check_alive()


@pytest.fixture
def tab(browser: Browser, churn: Churn, request: pytest.FixtureRequest) -> Iterator[Tab]:
    yield from _open(browser, churn, request)


@pytest.fixture
def tab_without_script(browser: Browser, churn: Churn, request: pytest.FixtureRequest
                       ) -> Iterator[Tab]:
    yield from _open(browser, churn, request, script=False)


def boxes(page: Page) -> dict[str, dict[str, float]]:
    """Each task node's rectangle on screen, by task name."""
    found: dict[str, dict[str, float]] = page.locator("svg.dag g.node").evaluate_all(
        "gs => Object.fromEntries(gs.map(g => { const r = g.getBoundingClientRect();"
        " return [g.dataset.node, {x: r.x, y: r.y, right: r.right, bottom: r.bottom,"
        " width: r.width}]; }))")
    return found


def assert_all_in_view(page: Page) -> dict[str, dict[str, float]]:
    assert page.evaluate("[window.scrollX, window.scrollY]") == [0, 0]
    found = boxes(page)
    assert sorted(found) == sorted(STEPS)
    for task, r in found.items():
        assert r["x"] >= 0 and r["y"] >= 0, (task, r)
        assert r["right"] <= WIDTH and r["bottom"] <= HEIGHT, (task, r)
        assert r["width"] >= 100, (task, r)  # fitted, not shrunk past reading: 200 px boxes
    return found


def zoom_of(page: Page) -> float:
    return float(page.locator("svg.dag").get_attribute("data-zoom") or "1")


@pytest.mark.parametrize("where", ["pipeline", "waiting-run", "approved-run"])
def test_every_step_of_churn_is_in_the_window(tab: Tab, churn: Churn, where: str) -> None:
    path = {"pipeline": "/pipelines/churn", "waiting-run": f"/runs/{churn.waiting}",
            "approved-run": f"/runs/{churn.approved}"}[where]
    tab.page.goto(path)
    expect(tab.page.locator("svg.dag g.node")).to_have_count(len(STEPS))
    if where == "waiting-run":  # the gate's box sits above the graph and still leaves room
        expect(tab.page.locator("section.gate[data-gate=promote_gate]")).to_be_visible()
    tab.shot(where)
    found = assert_all_in_view(tab.page)
    # A long chain is folded into rows, read left to right then down.
    assert found["land"]["y"] < found["prepare"]["y"] < found["promote"]["y"]


def test_the_graph_fits_with_javascript_off(tab_without_script: Tab, churn: Churn) -> None:
    page = tab_without_script.page
    page.goto(f"/runs/{churn.waiting}")
    expect(page.locator("svg.dag g.node")).to_have_count(len(STEPS))
    expect(page.locator("figure.dag-box .zoom")).to_have_count(0)  # no buttons that do nothing
    expect(page.locator("ul.legend li")).not_to_have_count(0)
    tab_without_script.shot("no-script")
    assert_all_in_view(page)


def test_zoom_buttons_change_the_scale_and_fit_restores_it(tab: Tab, churn: Churn) -> None:
    page = tab.page
    page.goto(f"/runs/{churn.approved}")
    before = boxes(page)["train"]
    page.get_by_role("button", name="zoom in").click()
    page.get_by_role("button", name="zoom in").click()
    assert zoom_of(page) == pytest.approx(1.5625, abs=0.01)
    after = boxes(page)["train"]
    assert after["width"] == pytest.approx(before["width"] * 1.5625, rel=0.02)
    tab.shot("zoomed-in")
    page.get_by_role("button", name="zoom out").click()
    assert zoom_of(page) == pytest.approx(1.25, abs=0.01)
    page.get_by_role("button", name="fit the graph to its box").click()
    assert zoom_of(page) == pytest.approx(1.0)
    assert boxes(page)["train"] == pytest.approx(before)


def test_the_wheel_zooms_about_the_pointer(tab: Tab, churn: Churn) -> None:
    page = tab.page
    page.goto("/pipelines/churn")
    train = boxes(page)["train"]
    x, y = (train["x"] + train["right"]) / 2, (train["y"] + train["bottom"]) / 2
    page.mouse.move(x, y)
    page.mouse.wheel(0, -300)
    page.wait_for_function("Number(document.querySelector('svg.dag').dataset.zoom) > 1.2")
    assert page.evaluate("window.scrollY") == 0  # the wheel zoomed, it did not scroll
    moved = boxes(page)["train"]
    assert moved["width"] > train["width"] * 1.2
    # The point under the pointer stays under it.
    assert moved["x"] < x < moved["right"] and moved["y"] < y < moved["bottom"]
    tab.shot("wheel")


def test_a_drag_pans_and_does_not_follow_the_link(tab: Tab, churn: Churn) -> None:
    page = tab.page
    page.goto(f"/runs/{churn.approved}")
    url = page.url
    before = boxes(page)
    start = before["transform"]
    x, y = (start["x"] + start["right"]) / 2, (start["y"] + start["bottom"]) / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 60, y + 20, steps=6)
    page.mouse.move(x - 120, y + 40, steps=6)
    page.mouse.up()
    after = boxes(page)
    for task in STEPS:
        assert after[task]["x"] == pytest.approx(before[task]["x"] - 120, abs=2), task
        assert after[task]["y"] == pytest.approx(before[task]["y"] + 40, abs=2), task
    assert page.url == url  # the drag began on transform's link and did not follow it
    tab.shot("panned")
    # A click without a drag still follows the node's link.
    page.locator("svg.dag g.node[data-node=train]").click()
    expect(page).to_have_url(re.compile(r".*/runs/churn-[^/]+/tasks/train$"))


def test_zoom_and_pan_survive_the_page_reloading(tab: Tab, churn: Churn) -> None:
    page = tab.page
    page.goto("/pipelines/churn")
    page.get_by_role("button", name="zoom in").click()
    box = page.locator("svg.dag").get_attribute("viewBox")
    page.reload()  # as a live page does when its run changes
    assert page.locator("svg.dag").get_attribute("viewBox") == box
    page.get_by_role("button", name="fit the graph to its box").click()


def test_the_legend_lists_the_states_shown_in_their_colours(tab: Tab, churn: Churn) -> None:
    page = tab.page
    page.goto(f"/runs/{churn.waiting}")
    nodes: list[list[Any]] = page.locator("svg.dag g.node").evaluate_all(
        "gs => gs.map(g => [g.dataset.state, getComputedStyle(g.querySelector('rect')).fill])")
    items: list[list[Any]] = page.locator("ul.legend li").evaluate_all(
        "ls => ls.map(l => [l.dataset.state, l.textContent.trim(),"
        " getComputedStyle(l.querySelector('.sq')).backgroundColor])")
    shown = {state: fill for state, fill in nodes}
    assert {"success", "awaiting_approval", "pending"} <= set(shown), shown
    # Each state shown once, in the order a run goes through them.
    order = ["success", "failed", "running", "queued", "up_for_retry", "upstream_failed",
             "skipped", "awaiting_approval", "waiting", "cached", "cancelled", "interrupted",
             "pending"]
    assert [state for state, _, _ in items] == [s for s in order if s in shown]
    for state, text, colour in items:
        assert text == state.replace("_", " "), (state, text)
        assert colour == shown[state], (state, colour, shown[state])  # the node's own colour
    tab.shot("legend")


def test_the_lineage_graph_fits_and_zooms_too(tab: Tab, churn: Churn) -> None:
    page = tab.page
    page.goto(f"/runs/{churn.approved}/tasks/promote")
    page.locator("#output a").click()
    expect(page.locator("figure.dag-box svg.dag g.node")).not_to_have_count(0)
    legend = page.locator("figure.dag-box ul.legend")
    expect(legend.locator("li[data-state=success]")).to_have_text("this version")
    expect(legend.locator("li[data-state=cached]")).to_have_text("made from")
    for r in boxes(page).values():
        assert r["x"] >= 0 and r["right"] <= WIDTH, r
    page.get_by_role("button", name="zoom in").click()
    assert zoom_of(page) == pytest.approx(1.25, abs=0.01)
    tab.shot("lineage")
