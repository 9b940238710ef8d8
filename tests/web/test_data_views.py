"""The data views over a real SQLite workspace, through the JSON API and the pages: a mapped
task's items (grid, one item, its log, retry of failed items only), artifact previews,
downloads and sandboxed opening, ctx.log_metric's metrics, and the asset view."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from cadenza._loader import load_pipeline
from cadenza.cli import main
from cadenza.engine.launch import run_pipeline
from cadenza.schedule.scheduler import Entry
from cadenza.web import Site, create_app
from cadenza.web.preview import ROWS, TEXT_CHARS
from cadenza.web.security import Auth
from cadenza.workspace import Workspace

FILE = str(Path(__file__).parent / "_data_pipeline.py")
TARGET, AFTER = f"{FILE}:web_data", f"{FILE}:web_data_after"
TOKEN = "data-token-123"


@dataclass
class Data:
    root: Path
    site: Site
    run_id: str
    outputs: dict[str, str]
    """task (or task:file) -> artifact hash."""

    def client(self) -> TestClient:
        return TestClient(create_app(self.site, Auth.for_home(self.site.workspace.home,
                                                              token=TOKEN)),
                          headers={"Authorization": f"Bearer {TOKEN}"})


def build(root: Path) -> Data:
    pipe, after = load_pipeline(TARGET), load_pipeline(AFTER)
    ws = Workspace.open(root / ".cadenza")
    run_id = run_pipeline(pipe, {}, workspace=ws, target=TARGET).run_id
    outputs: dict[str, str] = {}
    for ti in ws.store.task_instances(run_id, mapped=False):
        if ti.output:
            outputs[ti.task] = ti.output
        outputs.update({f"{ti.task}:{name}": h for name, h in ti.files.items()})
    site = Site(ws, {pipe.name: Entry(pipe, TARGET), after.name: Entry(after, AFTER)})
    return Data(root, site, run_id, outputs)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    found = build(tmp_path_factory.mktemp("data"))
    yield found
    found.site.workspace.close()


@pytest.fixture
def client(data: Data) -> Iterator[TestClient]:
    with data.client() as found:
        yield found


# -- mapped items -------------------------------------------------------------------------------

def test_the_items_grid_counts_and_filters_by_state(data: Data, client: TestClient) -> None:
    base = f"/api/v1/runs/{data.run_id}/tasks/square/items"
    grid = client.get(base).json()
    assert grid["total"] == 12 and grid["counts"] == {"success": 11, "failed": 1}
    assert grid["failed"] == [3]
    assert [i["index"] for i in grid["items"]] == list(range(12))
    failed = client.get(base, params={"state": "failed"}).json()
    assert [(i["index"], i["state"]) for i in failed["items"]] == [(3, "failed")]
    assert "broken" in failed["items"][0]["error"]
    assert client.get(base, params={"offset": 10}).json()["items"][0]["index"] == 10
    missing = client.get(f"/api/v1/runs/{data.run_id}/tasks/table/items")
    assert missing.status_code == 404 and "no mapped items" in missing.json()["detail"]


def test_one_item_shows_its_attempt_traceback_and_log(data: Data, client: TestClient) -> None:
    base = f"/api/v1/runs/{data.run_id}/tasks/square/items/3"
    item = client.get(base).json()
    assert item["state"] == "failed" and "broken" in item["error"]
    [attempt] = item["attempts"]
    assert attempt["label"] == "item 3 · attempt 1"
    assert "ValueError" in attempt["traceback"]
    log = client.get(base + "/attempts/1/log").json()
    assert "squaring item 3" in log["text"] and log["done"]
    assert client.get(f"/api/v1/runs/{data.run_id}/tasks/square/items/99").status_code == 404
    page = client.get(f"/runs/{data.run_id}/tasks/square/items/3").text
    assert "item 3 · attempt 1" in page and "ValueError" in page and "squaring item 3" in page


def test_the_task_page_draws_the_grid_only_for_a_mapped_task(data: Data,
                                                              client: TestClient) -> None:
    page = client.get(f"/runs/{data.run_id}/tasks/square").text
    assert len(re.findall(r'class="cell item state-', page)) == 12
    assert "retry failed items only (1)" in page
    assert "No attempts yet" not in page and "open an item in the grid above" in page
    only = client.get(f"/runs/{data.run_id}/tasks/square?state=failed").text
    assert len(re.findall(r'class="cell item state-', only)) == 1
    assert 'id="mapped"' not in client.get(f"/runs/{data.run_id}/tasks/table").text


def test_retry_failed_items_runs_only_them_and_keeps_the_rest(
        tmp_path: Path) -> None:
    world = build(tmp_path)
    try:
        with world.client() as client:
            url = f"/api/v1/runs/{world.run_id}/tasks/square/retry-failed-items"
            (tmp_path / "fixed").write_text("yes")
            answer = client.post(url)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"run_id": world.run_id, "state": "queued", "items": [3]}
            again = client.post(url)  # queued now: not twice
            assert again.status_code == 409
        ws = world.site.workspace
        result = run_pipeline(world.site.pipeline("web_data"), workspace=ws, target=TARGET,
                              resume=world.run_id)
        assert result.state == "success" and result.output("total") == sum(
            i * i for i in range(12))
        items = {ti.map_index: ti for ti in ws.store.task_instances(world.run_id)
                 if ti.task == "square" and ti.map_index >= 0}
        assert items[3].attempt == 2 and items[3].state == "success"
        assert {items[i].attempt for i in items if i != 3} == {1}  # kept, not run again
        kinds = [e.kind for e in ws.store.events(world.run_id)]
        assert "items_retried" in kinds
        with world.client() as client:
            refused = client.post(f"/api/v1/runs/{world.run_id}/tasks/square/retry-failed-items")
            assert refused.status_code == 409 and "no failed mapped items" in refused.text
    finally:
        world.site.workspace.close()


def test_cadenza_logs_names_an_item_and_its_attempt(data: Data) -> None:
    home = str(data.site.workspace.home)
    result = CliRunner().invoke(main, ["--home", home, "logs", data.run_id, "square"],
                                env={**os.environ, "NO_COLOR": "1"})
    assert "square · item 3 · attempt 1" in result.output, result.output
    assert "attempt 3.1" not in result.output


# -- previews, downloads, opening ---------------------------------------------------------------

def test_a_dataframe_previews_its_first_rows(data: Data, client: TestClient) -> None:
    shown = client.get(f"/api/v1/artifacts/{data.outputs['table']}/preview").json()
    assert shown["kind"] == "table" and shown["columns"] == ["customer_id", "tenure", "churned"]
    assert len(shown["rows"]) == ROWS and shown["shape"] == [120, 3] and shown["truncated"]
    assert shown["rows"][1] == ["c0001", 1, False]
    page = client.get(f"/artifacts/{data.outputs['table']}").text
    assert 'id="preview-table"' in page and "c0049" in page and "c0050" not in page


def test_json_and_text_are_pretty_and_truncated(data: Data, client: TestClient) -> None:
    doc = client.get(f"/api/v1/artifacts/{data.outputs['doc']}/preview").json()
    assert doc["kind"] == "json" and doc["truncated"] and len(doc["text"]) == TEXT_CHARS
    assert doc["text"].startswith('{\n  "model": "gbm"')
    page = client.get(f"/artifacts/{data.outputs['doc']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    notes = client.get(f"/api/v1/artifacts/{data.outputs['report:notes']}/preview").json()
    assert notes["kind"] == "text" and notes["truncated"] and notes["text"].startswith("notes\n")


def test_a_pickle_is_never_unpickled(data: Data, client: TestClient) -> None:
    shown = client.get(f"/api/v1/artifacts/{data.outputs['train']}/preview").json()
    assert shown["kind"] == "pickle" and shown["text"] is None and shown["open_url"] is None
    assert "never unpickles" in shown["note"]


@pytest.mark.parametrize(("output", "kind", "media"), [
    ("report:page", "html", "text/html"), ("report:picture", "svg", "image/svg+xml"),
    ("report:chart", "image", "image/png"), ("table", "table", "application/vnd.apache.parquet"),
])
def test_download_is_an_attachment_with_its_type(data: Data, client: TestClient, output: str,
                                                 kind: str, media: str) -> None:
    digest = data.outputs[output]
    shown = client.get(f"/api/v1/artifacts/{digest}/preview").json()
    assert shown["kind"] == kind and shown["content_type"] == media
    got = client.get(shown["download_url"])
    assert got.status_code == 200 and got.headers["content-type"].startswith(media)
    assert got.headers["content-disposition"].startswith("attachment; filename=")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]


@pytest.mark.parametrize("output", ["report:page", "report:picture", "report:chart"])
def test_opened_html_and_images_are_sandboxed_without_script(data: Data, client: TestClient,
                                                            output: str) -> None:
    got = client.get(f"/api/v1/artifacts/{data.outputs[output]}/open")
    assert got.status_code == 200 and got.headers["content-disposition"].startswith("inline")
    policy = got.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "allow-scripts" not in policy
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["x-frame-options"] == "DENY"


def test_what_cannot_be_shown_opens_as_an_attachment(data: Data, client: TestClient) -> None:
    got = client.get(f"/api/v1/artifacts/{data.outputs['train']}/open")
    assert got.headers["content-disposition"].startswith("attachment")
    assert got.headers["content-type"] == "application/octet-stream"


def test_other_pages_keep_the_uis_own_policy(client: TestClient) -> None:
    policy = client.get("/assets").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "sandbox" not in policy


# -- metrics ------------------------------------------------------------------------------------

def test_logged_metrics_show_on_the_task_and_its_output(data: Data, client: TestClient) -> None:
    found = client.get(f"/api/v1/runs/{data.run_id}/tasks/train/metrics").json()["metrics"]
    assert {(m["name"], m["value"], m["attempt"]) for m in found} == {
        ("roc_auc", 0.8731, 1), ("rows", 120.0, 1)}
    for page in (client.get(f"/runs/{data.run_id}/tasks/train").text,
                 client.get(f"/artifacts/{data.outputs['train']}").text):
        assert 'data-metric="roc_auc"' in page and "0.8731" in page
    assert 'id="metrics"' not in client.get(f"/runs/{data.run_id}/tasks/table").text


# -- assets -------------------------------------------------------------------------------------

def test_the_asset_view_has_versions_lineage_and_triggers(data: Data,
                                                           client: TestClient) -> None:
    rows = {(a["pipeline"], a["task"], a["name"]): a
            for a in client.get("/api/v1/assets").json()["assets"]}
    train = rows[("web_data", "train", "return")]
    assert train["latest"]["hash"] == data.outputs["train"]
    assert train["latest"]["run_id"] == data.run_id
    assert train["upstream"] == [{"pipeline": "web_data", "task": "table", "name": "return"}]
    assert train["triggers"] == ["web_data_after"]
    table = rows[("web_data", "table", "return")]
    assert {"pipeline": "web_data", "task": "train", "name": "return"} in table["downstream"]
    assert table["triggers"] == []
    page_file = rows[("web_data", "report", "page")]
    assert page_file["upstream"] == [{"pipeline": "web_data", "task": "doc", "name": "return"}]
    never = rows[("web_data_after", "score", "return")]
    assert never["latest"] is None
    page = client.get("/assets").text
    assert 'data-asset="web_data.train.return"' in page and ">web_data_after</a>" in page
    assert f'href="/runs/{data.run_id}"' in page


def test_every_data_view_answers_what_its_schema_says(data: Data, client: TestClient) -> None:
    from jsonschema import Draft202012Validator

    schema = client.get("/api/v1/openapi.json").json()
    samples = {"run_id": data.run_id, "task": "square", "index": "3", "attempt": "1",
               "digest": data.outputs["table"]}
    checked = []
    for path, item in schema["paths"].items():
        if "get" not in item or not re.search(r"/items|/preview|/metrics|/assets", path):
            continue
        documented = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        answer = client.get(path.format(**samples))
        assert answer.status_code == 200, (path, answer.text[:300])
        validator = Draft202012Validator({**documented, "components": schema["components"]})
        assert not list(validator.iter_errors(answer.json())), path
        checked.append(path)
    assert len(checked) == 6
    assert "/api/v1/artifacts/{digest}/download" not in schema["paths"]  # bytes, not JSON


def test_an_artifact_whose_bytes_are_gone_says_so(tmp_path: Path) -> None:
    world = build(tmp_path)
    try:
        digest = world.outputs["report:notes"]
        stored = world.site.workspace.artifacts.path(digest)
        assert stored is not None
        stored.unlink()
        with world.client() as client:
            shown = client.get(f"/api/v1/artifacts/{digest}/preview").json()
            assert shown["kind"] == "none" and "not in the artifact store" in shown["note"]
            assert "not in the artifact store" in client.get(f"/artifacts/{digest}").text
            lost = client.get(f"/api/v1/artifacts/{digest}/download")
            assert lost.status_code == 404 and "run its task again" in lost.json()["detail"]
    finally:
        world.site.workspace.close()


def test_thousands_of_items_are_shown_a_page_at_a_time(tmp_path: Path) -> None:
    from cadenza.store.base import Batch, RunRecord, TaskInstanceRecord
    from cadenza.web.items import ITEMS_PAGE

    ws = Workspace.open(tmp_path / ".cadenza")
    try:
        run = RunRecord("web_data-20261122T000000-aaaaaa", "web_data", "failed", {}, 1.0,
                        started_at=1.0, ended_at=2.0)
        ws.store.apply(Batch(runs=[run], task_instances=[
            TaskInstanceRecord(run.run_id, "square", -1, "failed"), *(
                TaskInstanceRecord(run.run_id, "square", i,
                                   "failed" if i % 500 == 7 else "success", 1)
                for i in range(2500))]))
        site = Site(ws, {"web_data": Entry(load_pipeline(TARGET), TARGET)})
        with Data(tmp_path, site, run.run_id, {}).client() as client:
            base = f"/api/v1/runs/{run.run_id}/tasks/square/items"
            first = client.get(base).json()
            assert len(first["items"]) == ITEMS_PAGE and first["matching"] == 2500
            last = client.get(base, params={"offset": 2000}).json()
            assert [i["index"] for i in last["items"]] == list(range(2000, 2500))
            failed = client.get(base, params={"state": "failed"}).json()
            assert [i["index"] for i in failed["items"]] == [7, 507, 1007, 1507, 2007]
            page = client.get(f"/runs/{run.run_id}/tasks/square").text
            assert len(re.findall(r'class="cell item ', page)) == ITEMS_PAGE
            assert "items_offset=1000" in page
            second = client.get(f"/runs/{run.run_id}/tasks/square?items_offset=2000").text
            assert len(re.findall(r'class="cell item ', second)) == 500
    finally:
        ws.close()
