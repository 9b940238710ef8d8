"""The UI's polish (issue 16, part 7) through its HTTP API and pages: paused pipelines say
"paused", the orchestration plan is Markdown rendered safely, the schedule names its timezone
once, the trigger form keeps what was typed and says what is wrong beside it, bools are
checkboxes and choices selects, tasks are listed in DAG order, and counts agree with nouns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.web._polish_world import DAG_ORDER, RUN_ID, TARGET, add_ordered_run, polish_pipeline
from tests.web.conftest import TOKEN

from cadenza._words import plural, plural_of
from cadenza.report import dag_order
from cadenza.schedule.scheduler import Entry
from cadenza.web import Site, create_app
from cadenza.web.markdown_html import markdown_html
from cadenza.web.security import Auth
from cadenza.workspace import Workspace

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("polish") / ".cadenza"
    ws = Workspace.open(home)
    add_ordered_run(ws)
    pipe = polish_pipeline()
    yield Site(ws, {pipe.name: Entry(pipe, TARGET)})
    ws.close()


@pytest.fixture
def client(site: Site) -> Iterator[TestClient]:
    auth = Auth.for_home(site.workspace.home, token=TOKEN)
    with TestClient(create_app(site, auth), headers={"Authorization": f"Bearer {TOKEN}"}
                    ) as found:
        yield found


def runs_of(site: Site) -> set[str]:
    return {r.run_id for r in site.workspace.store.list_runs("polish_demo", 100)}


# -- paused, and the schedule's timezone -------------------------------------------------------

def test_a_paused_pipeline_says_paused_instead_of_its_next_run(client: TestClient,
                                                               site: Site) -> None:
    site.workspace.store.set_paused("polish_demo", True)
    try:
        listing = client.get("/", headers=HTML).text
        row = re.search(r'<tr data-pipeline="polish_demo">.*?</tr>', listing, re.S)
        assert row is not None
        next_cell = re.search(r'<td class="next">(.*?)</td>', row.group(0), re.S)
        assert next_cell is not None and "paused" in next_cell.group(1)
        assert "(in " not in next_cell.group(1)
        for path in ("/pipelines/polish_demo", "/pipelines/polish_demo/schedule"):
            head = re.search(r'<span id="next-run">(.*?)</span>', client.get(path).text, re.S)
            assert head is not None and "paused" in head.group(1), path
            assert "next run" not in head.group(1), path
        assert "paused-note" in client.get("/pipelines/polish_demo/schedule").text
    finally:
        site.workspace.store.set_paused("polish_demo", False)
    head = re.search(r'<span id="next-run">(.*?)</span>',
                     client.get("/pipelines/polish_demo").text, re.S)
    assert head is not None and "next run" in head.group(1) and "(in " in head.group(1)


def test_the_schedule_tab_names_its_timezone_once(client: TestClient) -> None:
    page = client.get("/pipelines/polish_demo/schedule").text
    assert "every 10 minutes (UTC)" in page
    assert "(UTC) (UTC)" not in page and "(UTC)</strong> <span" not in page
    line = re.search(r"<p>every 10 minutes.*?</p>", page, re.S)
    assert line is not None and line.group(0).count("(UTC)") == 1


# -- Markdown ----------------------------------------------------------------------------------

def test_the_orchestration_plan_is_rendered_markdown_without_raw_html(client: TestClient
                                                                      ) -> None:
    page = client.get("/pipelines/polish_demo/markdown").text
    body = page.split('id="markdown">', 1)[1].split("</article>", 1)[0]
    assert "<h2>Orchestration plan: polish_demo</h2>" in body  # the page's h1 is its own
    assert "<h3>Params</h3>" in body and "<h1" not in body
    assert "<strong>rows</strong>" in body and "<table>" in body
    assert '<a href="https://example.org/docs">docs</a>' in body
    assert '<a href="/runs">home</a>' in body
    # What was HTML in the Markdown is text; the unsafe links are not links.
    assert "&lt;script&gt;alert('md')&lt;/script&gt;" in body
    assert "<script" not in body and "<img" not in body
    assert not re.search(r"<[^>]*\bon\w+=", body)  # no handler on any tag
    assert "[click me](javascript:" in body  # as text
    assert not re.search(r'href="(?!https?://|/)', body)  # every link is web or app-relative
    assert "1 retry, backoff" in body


@pytest.mark.parametrize("link", [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "&#106;avascript:alert(1)",
    "vbscript:msgbox(1)", "data:text/html,<script>alert(1)</script>", "file:///etc/passwd",
    "//evil.example/x", "ftp://example.org/x",
])
def test_hostile_links_stay_text(link: str) -> None:
    html = str(markdown_html(f"[go]({link}) <{link}>"))
    assert "<a " not in html, html


@pytest.mark.parametrize(("link", "href"), [
    ("https://example.org/a?b=1", "https://example.org/a?b=1"),
    ("http://example.org", "http://example.org"),
    ("/runs/x", "/runs/x"), ("other/page", "other/page"), ("#part", "#part"),
])
def test_web_and_relative_links_are_kept(link: str, href: str) -> None:
    assert f'<a href="{href}">go</a>' in str(markdown_html(f"[go]({link})"))


def test_headings_start_below_the_pages_own() -> None:
    html = str(markdown_html("# a\n\n## b\n\n###### f"))
    assert html.split() == ["<h2>a</h2>", "<h3>b</h3>", "<h6>f</h6>"]
    assert str(markdown_html("# a", top=1)).strip() == "<h1>a</h1>"


def test_raw_html_blocks_and_images_are_text() -> None:
    html = str(markdown_html(
        "<div onclick=alert(1)>x</div>\n\n<iframe src=//e></iframe>\n\n![i](https://e/i.png)"
        "\n\n<style>body{display:none}</style>"))
    for tag in ("<div", "<iframe", "<img", "<style"):
        assert tag not in html
    assert "&lt;div onclick=alert(1)&gt;" in html


# -- the trigger form --------------------------------------------------------------------------

def test_bools_are_checkboxes_and_choices_are_selects(client: TestClient) -> None:
    page = client.get("/pipelines/polish_demo").text
    form = page.split('<form method="post" action="/pipelines/polish_demo/trigger"', 1)[1]
    assert re.search(r'<input type="hidden" name="param.dry_run" value="false">'
                     r'<input type="checkbox" name="param.dry_run" value="true">', form)
    assert re.search(r'<select name="param.size"[^>]*><option value="small" selected>small'
                     r'</option><option value="large">large</option></select>', form)
    assert 'name="param.rows" value="100"' in form


@pytest.mark.parametrize(("sent", "dry_run"), [(["false", "true"], True), (["false"], False)],
                         ids=["checked", "unchecked"])
def test_the_server_takes_what_checkboxes_and_selects_send(
        client: TestClient, site: Site, sent: list[str], dry_run: bool) -> None:
    response = client.post("/pipelines/polish_demo/trigger", follow_redirects=False,
                           data={"param.dry_run": sent, "param.size": "large",
                                 "param.rows": "7", "param.note": ""})
    assert response.status_code == 303, response.text
    run_id = response.headers["location"].removeprefix("/runs/")
    run = site.workspace.store.get_run(run_id)
    assert run.params == {"dry_run": dry_run, "size": "large", "rows": 7, "note": ""}
    site.workspace.store.request_cancel(run_id)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("rows", "5000", "must be at most 1000"),
    ("rows", "many", "takes an int"),
    ("size", "huge", "must be one of"),
])
def test_a_refused_param_shows_the_form_again_with_the_error_beside_it(
        client: TestClient, site: Site, field: str, value: str, words: str) -> None:
    before = runs_of(site)
    sent = {"param.dry_run": ["false", "true"], "param.size": "large", "param.rows": "12",
            "param.note": "keep <me>", f"param.{field}": value}
    response = client.post("/pipelines/polish_demo/trigger", data=sent, headers=HTML)
    assert response.status_code == 422
    assert runs_of(site) == before  # nothing was queued
    page = response.text
    label = re.search(rf'<label class="[^"]*invalid" data-param="{field}">.*?</label>', page,
                      re.S)
    assert label is not None, page
    error = re.search(rf'<span class="error field-error" id="error-{field}">(.*?)</span>',
                      label.group(0), re.S)
    assert error is not None and words in error.group(1)
    assert value in error.group(1)  # the value, shown
    assert 'aria-invalid="true"' in label.group(0) and "autofocus" in label.group(0)
    # Every value as it was typed, the refused one too.
    assert 'name="param.note" value="keep &lt;me&gt;"' in page
    assert 'type="checkbox" name="param.dry_run" value="true" checked' in page
    if field != "size":
        assert '<option value="large" selected>' in page
        assert f'name="param.rows" value="{value if field == "rows" else "12"}"' in page
    assert "data-live=" not in page  # a live reload would lose them


def test_an_unknown_param_is_said_above_the_form(client: TestClient, site: Site) -> None:
    before = runs_of(site)
    response = client.post("/pipelines/polish_demo/trigger", data={"param.rowz": "3"})
    assert response.status_code == 422 and runs_of(site) == before
    error = re.search(r'<p class="error field-error" id="error">(.*?)</p>', response.text, re.S)
    assert error is not None and "no param &#39;rowz&#39;" in error.group(1)
    assert "Did you mean &#39;rows&#39;?" in error.group(1)


def test_a_secret_value_is_never_sent_back(tmp_path: Path) -> None:
    from cadenza import Param, Pipeline

    pipe = Pipeline("secretive", params={"token": Param("", secret=True),
                                         "n": Param(1, min=0)})

    @pipe.task
    def one(n):  # type: ignore[no-untyped-def]
        return n

    ws = Workspace.open(tmp_path / ".cadenza")
    try:
        site = Site(ws, {"secretive": Entry(pipe, "inline")})
        auth = Auth.for_home(ws.home, token=TOKEN)
        with TestClient(create_app(site, auth),
                        headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            response = client.post("/pipelines/secretive/trigger",
                                   data={"param.token": "hunter2-secret", "param.n": "-1"})
        assert response.status_code == 422
        assert "hunter2-secret" not in response.text
        assert 'name="param.n" value="-1"' in response.text
    finally:
        ws.close()


# -- DAG order ---------------------------------------------------------------------------------

def test_the_run_page_lists_tasks_in_dag_order(client: TestClient) -> None:
    data = client.get(f"/api/v1/runs/{RUN_ID}").json()
    assert [t["task"] for t in data["tasks"]] == DAG_ORDER
    page = client.get(f"/runs/{RUN_ID}").text
    assert re.findall(r'<tr data-task="(\w+)">', page) == DAG_ORDER


def test_dag_order_is_layer_by_layer_in_declared_order() -> None:
    upstream = {"publish": ["approve", "validate"], "extract": [], "approve": ["validate"],
                "validate": ["extract"], "side": []}
    assert dag_order(upstream) == ["extract", "side", "validate", "approve", "publish"]
    assert dag_order({"b": [], "a": []}) == ["b", "a"]  # declared, not alphabetical
    assert dag_order({"x": ["ghost"]}) == ["x"]
    chain = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(5000)}
    assert dag_order(chain) == list(chain)
    assert sorted(dag_order({"a": ["c"], "b": ["a"], "c": ["b"]})) == ["a", "b", "c"]


# -- plurals -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "noun", "text"), [
    (0, "task", "0 tasks"), (1, "task", "1 task"), (2, "retry", "2 retries"),
    (1, "retry", "1 retry"), (1, "pipeline", "1 pipeline"), (3, "pipeline", "3 pipelines"),
    (2, "pass", "2 passes"), (2, "day", "2 days"), (1200, "row", "1200 rows"),
    (2, "datum", "2 data"),
])
def test_plural(count: int, noun: str, text: str) -> None:
    assert plural(count, noun, "data" if noun == "datum" else None) == text


def test_plural_of_regular_nouns() -> None:
    assert [plural_of(n) for n in ("box", "batch", "key", "entry", "item")] == [
        "boxes", "batches", "keys", "entries", "items"]


def test_the_ui_counts_in_agreement(tmp_path: Path) -> None:
    from cadenza.web.draw import Bar, Node, dag_svg, gantt_svg

    assert 'aria-label="Task graph of 1 task"' in dag_svg([Node("a", "a")], [])
    assert 'aria-label="Timeline of 1 attempt in 1 row"' in gantt_svg([Bar("a", 0, 1, "success")])
