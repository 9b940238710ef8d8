"""The UI's pages and JSON API over a store with finished, failed, running and gated runs."""

from __future__ import annotations

import getpass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from tests.web.conftest import TARGET, TOKEN, World

from cadenza.web import create_app
from cadenza.workspace import Workspace

HTML = {"accept": "text/html"}


def test_health_needs_no_credentials(anonymous: TestClient) -> None:
    assert anonymous.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize("path", [
    "/", "/pipelines/web_demo", "/pipelines/web_demo/plan", "/pipelines/web_demo/schedule",
    "/pipelines/web_demo/markdown", "/runs", "/runs?pipeline=web_demo", "/events",
    "/artifacts", "/artifacts?pipeline=web_demo",
])
def test_every_page_renders(client: TestClient, path: str) -> None:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, response.text
    assert "text/html" in response.headers["content-type"]


def test_pipelines_page_lists_schedule_next_run_and_last_runs(client: TestClient) -> None:
    data = client.get("/api/v1/pipelines").json()
    (row,) = data["pipelines"]
    assert row["name"] == "web_demo" and row["loaded"] and not row["paused"]
    assert row["schedule"] == "at 06:00 every day (Europe/London)"
    assert row["next_run"].endswith(("+00:00", "+01:00"))
    assert {r["state"] for r in row["last_runs"]} == {"success", "failed", "waiting", "running"}
    assert row["success_rate"] == pytest.approx(1 / 2)  # of the two ended runs
    page = client.get("/", headers=HTML).text
    assert "at 06:00 every day" in page and page.count('class="sq state-') == 4


@pytest.mark.parametrize("kind", ["success", "failed", "waiting", "running"])
def test_run_page_and_api(client: TestClient, world: World, kind: str) -> None:
    run_id = world.runs[kind]
    data = client.get(f"/api/v1/runs/{run_id}").json()
    assert data["state"] == kind
    assert [t["task"] for t in data["tasks"]] == ["extract", "validate", "approve_gate",
                                                  "publish"]
    page = client.get(f"/runs/{run_id}", headers=HTML).text
    assert 'class="gantt"' in page and 'class="dag"' in page
    assert ('data-gate="approve_gate"' in page) == (kind == "waiting")
    assert ("retry failed tasks" in page) == (kind == "failed")
    assert ("cancel run" in page) == (kind in ("running", "waiting"))


def test_failed_task_shows_its_error_and_traceback(client: TestClient, world: World) -> None:
    data = client.get(f"/api/v1/runs/{world.runs['failed']}/tasks/validate").json()
    (attempt,) = data["attempts"]
    assert attempt["state"] == "failed"
    assert "too strict" in attempt["error"]
    assert "Traceback" in attempt["traceback"]


def test_task_page_links_its_input_and_output_artifacts(client: TestClient, world: World
                                                        ) -> None:
    data = client.get(f"/api/v1/runs/{world.runs['success']}/tasks/validate").json()
    assert data["output"]["task"] == "validate"
    assert [a["task"] for a in data["inputs"]] == ["extract"]
    page = client.get(f"/runs/{world.runs['success']}/tasks/validate", headers=HTML).text
    assert f'href="/artifacts/{data["output"]["hash"]}"' in page
    assert f'href="/artifacts/{data["inputs"][0]["hash"]}"' in page


def test_log_is_served_from_an_offset_for_a_live_tail(client: TestClient, world: World) -> None:
    url = f"/api/v1/runs/{world.runs['running']}/tasks/validate/attempts/1/log"
    first = client.get(url).json()
    assert first["text"] == "starting validate\n" and not first["done"]
    log = world.home / "logs" / "web_demo" / world.runs["running"] / "validate" / "1.log"
    with open(log, "a") as handle:
        handle.write("more\n")
    second = client.get(url, params={"offset": first["offset"]}).json()
    assert second["text"] == "more\n"
    page = client.get(f"/runs/{world.runs['running']}/tasks/validate", headers=HTML).text
    assert 'data-log="/api/v1/runs/' in page


def test_pipeline_page_draws_the_dag_in_the_latest_states(client: TestClient) -> None:
    data = client.get("/api/v1/pipelines/web_demo").json()
    assert [t["name"] for t in data["tasks"]] == ["extract", "validate", "approve_gate",
                                                  "publish"]
    assert len(data["runs"]) == 4 and set(data["grid"]) == {r["run_id"] for r in data["runs"]}
    page = client.get("/pipelines/web_demo", headers=HTML).text
    assert page.count('class="cell state-') == sum(len(g) for g in data["grid"].values())
    for task in data["tasks"]:
        assert f'data-node="{task["name"]}"' in page


def test_plan_schedule_and_markdown(client: TestClient) -> None:
    plan = client.get("/api/v1/pipelines/web_demo/plan").json()
    assert [s["task"] for s in plan["steps"]] == ["extract", "validate", "approve_gate",
                                                  "publish"]
    schedule = client.get("/api/v1/pipelines/web_demo/schedule", params={"count": 3}).json()
    assert schedule["timezone"] == "Europe/London" and len(schedule["next"]) == 3
    markdown = client.get("/api/v1/pipelines/web_demo/markdown").json()["markdown"]
    assert "```mermaid" in markdown


def test_events_page_backwards(client: TestClient) -> None:
    first = client.get("/api/v1/events").json()
    ids = [e["id"] for e in first["events"]]
    assert ids == sorted(ids, reverse=True)
    if first["older"] is not None:
        older = client.get("/api/v1/events", params={"before": first["older"]}).json()
        assert max(e["id"] for e in older["events"]) < min(ids)


def test_artifact_page_shows_versions_alias_and_lineage(client: TestClient, world: World
                                                        ) -> None:
    output = client.get(f"/api/v1/runs/{world.runs['success']}/tasks/publish").json()["output"]
    data = client.get(f"/api/v1/artifacts/{output['hash']}").json()
    assert data["task"] == "publish" and data["versions"][0]["hash"] == output["hash"]
    assert [c["task"] for c in data["lineage"]["children"]] == ["validate"]
    page = client.get(f"/artifacts/{output['hash']}", headers=HTML).text
    assert "make active" in page


def test_openapi_schema_lists_the_api(client: TestClient) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/runs/{run_id}" in schema["paths"]
    assert "post" in schema["paths"]["/api/v1/pipelines/{name}/runs"]
    assert all(path.startswith("/api/v1/") for path in schema["paths"])


# -- every route needs credentials --------------------------------------------------------------

ALLOWED = {"/health", "/login"}
SAMPLE = {"name": "web_demo", "run_id": "web_demo-x", "task": "extract", "attempt": "1",
          "digest": "ab" * 16, "path": "cadenza.css", "index": "0"}


def _walk(routes: list[Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router
        if included is not None:
            found += _walk(included.routes)
        elif isinstance(route, APIRoute | Route):
            found += [(method, route.path) for method in sorted(route.methods or {"GET"})]
        elif isinstance(route, Mount):
            found.append(("GET", route.path + "/cadenza.css"))
        else:
            raise AssertionError(f"the walk does not know {route!r}: teach it")
    return found


def _routes(world: World) -> list[tuple[str, str]]:
    return _walk(create_app(world.site, world.auth).routes)


def test_the_route_table_is_walked(world: World) -> None:
    routes = _routes(world)
    assert len(routes) > 30
    assert ("POST", "/api/v1/runs/{run_id}/gates/{task}/approve") in routes


def test_every_route_but_the_allowlist_answers_401(anonymous: TestClient, world: World) -> None:
    for method, path in _routes(world):
        url = path.format(**SAMPLE)
        response = anonymous.request(method, url)
        if path in ALLOWED or path.startswith("/static"):  # a failed login may still be 401
            assert "www-authenticate" not in response.headers, (method, path)
        else:
            assert response.status_code == 401, (method, path, response.status_code)


# -- actions ------------------------------------------------------------------------------------

def test_trigger_checks_params_against_the_pipeline(client: TestClient) -> None:
    bad = client.post("/api/v1/pipelines/web_demo/runs", json={"params": {"threshold": 7}})
    assert bad.status_code == 422 and "threshold" in bad.json()["detail"]
    unknown = client.post("/api/v1/pipelines/web_demo/runs", json={"params": {"nope": 1}})
    assert unknown.status_code == 422 and "nope" in unknown.json()["detail"]
    wrong = client.post("/api/v1/pipelines/web_demo/runs", json={"params": [1]})
    assert wrong.status_code == 422
    not_json = client.post("/api/v1/pipelines/web_demo/runs", content=b"\x80\x04K.",
                           headers={"content-type": "application/octet-stream"})
    assert not_json.status_code == 422


def test_trigger_queues_a_run_with_its_params(world: World) -> None:
    with TestClient(create_app(world.site, world.auth),
                    headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        made = client.post("/api/v1/pipelines/web_demo/runs",
                           json={"params": {"threshold": 0.25, "region": "us"}}).json()
        run = world.site.workspace.store.get_run(made["run_id"])
        assert (run.state, run.params) == ("queued", {"threshold": 0.25, "region": "us"})
        assert client.get(f"/api/v1/runs/{made['run_id']}").json()["state"] == "queued"
        assert client.post(f"/api/v1/runs/{made['run_id']}/cancel").json()["cancel"] == \
            "cancelled"


def test_form_trigger_redirects_to_the_run(client: TestClient, world: World) -> None:
    response = client.post("/api/v1/pipelines/web_demo/runs",
                           data={"param.threshold": "0.3", "param.region": "eu"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/runs/")
    run_id = response.headers["location"].removeprefix("/runs/")
    assert world.site.workspace.store.get_run(run_id).params["threshold"] == 0.3
    world.site.workspace.store.request_cancel(run_id)


def test_pause_and_unpause(client: TestClient, world: World) -> None:
    assert client.post("/api/v1/pipelines/web_demo/pause").json()["paused"] is True
    assert "web_demo" in world.site.workspace.store.paused()
    assert client.post("/api/v1/pipelines/web_demo/unpause").json()["paused"] is False
    assert client.post("/api/v1/pipelines/nosuch/pause").status_code == 404


def test_gate_decisions(client: TestClient, world: World) -> None:
    run_id = world.runs["waiting"]
    no_reason = client.post(f"/api/v1/runs/{run_id}/gates/approve_gate/reject", json={})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    not_a_gate = client.post(f"/api/v1/runs/{run_id}/gates/extract/approve")
    assert not_a_gate.status_code == 409 and "not waiting" in not_a_gate.json()["detail"]


def test_retry_of_a_run_that_did_not_fail_is_refused(client: TestClient, world: World) -> None:
    response = client.post(f"/api/v1/runs/{world.runs['success']}/retry")
    assert response.status_code == 409 and "nothing to retry" in response.json()["detail"]


# -- hostile ids --------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "/runs/..%2F..%2Fcadenza.db", "/runs/%2E%2E", "/api/v1/runs/..", "/runs/x%00y",
    "/api/v1/runs/web_demo-x/tasks/..%2F..%2Fsecret", "/artifacts/..%2F..%2Fcadenza.db",
    "/api/v1/artifacts/%2Fetc%2Fpasswd", "/pipelines/%2E%2E", "/pipelines/%2Fetc",
    "/api/v1/runs/%2Fetc%2Fpasswd/tasks/x/attempts/1/log",
])
def test_hostile_ids_get_400_or_404_never_a_file(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code in (400, 404), (url, response.status_code)
    assert "SQLite" not in response.text and "root:" not in response.text


def test_a_log_path_outside_the_logs_is_never_served(client: TestClient, world: World,
                                                      tmp_path_factory: pytest.TempPathFactory
                                                      ) -> None:
    from cadenza.store.base import AttemptRecord, Batch

    secret = tmp_path_factory.mktemp("outside") / "secret.txt"
    secret.write_text("top secret")
    store = world.site.workspace.store
    store.apply(Batch(attempts=[AttemptRecord(world.runs["running"], "publish", -1, 1,
                                              "running", 1.0, log_path=str(secret))]))
    url = f"/api/v1/runs/{world.runs['running']}/tasks/publish/attempts/1/log"
    response = client.get(url)
    assert response.status_code == 404 and "top secret" not in response.text


# -- XSS ----------------------------------------------------------------------------------------

class _Scripts(HTMLParser):
    """Collects script elements and on* attributes: what would run in a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name in ("href", "src", "action") and value and \
                    value.strip().lower().startswith("javascript:"):
                self.handlers.append((tag, name))


PAYLOADS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>',
            "'><svg onload=alert(1)>", "javascript:alert(1)"]


def test_hostile_text_renders_inert(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Params, log lines, errors, check results and artifact metadata holding HTML."""
    from cadenza.store.base import (
        ArtifactRecord,
        AttemptRecord,
        Batch,
        Event,
        RunRecord,
        TaskInstanceRecord,
    )
    from cadenza.web.read import Site
    from cadenza.web.security import Auth

    home = tmp_path_factory.mktemp("xss") / ".cadenza"
    ws = Workspace.open(home)
    bad = " ".join(PAYLOADS)
    run_id = "evil-20261122T000000-abcdef"
    log = home / "logs" / "evil" / run_id / "t" / "1.log"
    log.parent.mkdir(parents=True)
    log.write_text(bad)
    digest = "ab" * 32
    ws.store.apply(Batch(
        runs=[RunRecord(run_id, "evil", "failed", {"p": bad, bad: 1}, 1.0, target=bad,
                        started_at=1.0, ended_at=2.0, logical_date=bad)],
        task_instances=[TaskInstanceRecord(run_id, "t", -1, "failed", 1, started_at=1.0,
                                           ended_at=2.0, error=bad, output=digest)],
        attempts=[AttemptRecord(run_id, "t", -1, 1, "failed", 1.0, 2.0, error=bad,
                                traceback=bad, log_path=str(log),
                                checks=[{"check": bad, "severity": bad, "passed": False,
                                         "description": bad, "metadata": {bad: bad}}])],
        artifacts=[ArtifactRecord(digest, bad, 3, "evil", "t", run_id, 1.0, name=bad)],
        events=[Event(run_id, bad, 1.0, "t", -1, {"error": bad}),
                Event(run_id, "run_started", 1.0, None, -1, {"upstream": {"t": []}})],
    ))
    site = Site(ws, {}, {bad: bad})
    with TestClient(create_app(site, Auth.for_home(home, token=TOKEN)),
                    headers={"Authorization": f"Bearer {TOKEN}", **HTML}) as client:
        for url in ["/", f"/runs/{run_id}", f"/runs/{run_id}/tasks/t", "/events", "/runs",
                    "/artifacts", f"/artifacts/{digest}", "/pipelines/evil"]:
            response = client.get(url)
            assert response.status_code == 200, url
            parser = _Scripts()
            parser.feed(response.text)
            assert parser.scripts == [{"src": "/static/cadenza.js", "defer": None}], url
            assert parser.handlers == [], url
            assert "<script>alert" not in response.text, url
    ws.close()


def test_pages_send_a_strict_content_security_policy(client: TestClient) -> None:
    policy = client.get("/", headers=HTML).headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


# -- CSRF on the real app -----------------------------------------------------------------------

def test_browser_posts_need_the_csrf_token_and_the_same_origin(world: World) -> None:
    with TestClient(create_app(world.site, world.auth)) as browser:
        login = browser.get(f"/?token={TOKEN}", follow_redirects=False)
        assert login.status_code == 303 and "cadenza_session" in login.headers["set-cookie"]
        page = browser.get("/pipelines/web_demo", headers=HTML).text
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        url = "/api/v1/pipelines/web_demo/pause"
        assert browser.post(url).status_code == 403
        assert browser.post(url, data={"csrf_token": "forged"}).status_code == 403
        foreign = browser.post(url, data={"csrf_token": token},
                               headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        done = browser.post(url, data={"csrf_token": token, "next": "/pipelines/web_demo"},
                            follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/pipelines/web_demo"
        assert "access-control-allow-origin" not in done.headers
        browser.post("/api/v1/pipelines/web_demo/unpause", data={"csrf_token": token})
        assert "web_demo" not in world.site.workspace.store.paused()


def test_a_queued_run_shows_the_pipeline_graph_before_it_starts(world: World) -> None:
    from cadenza import actions
    from cadenza.web import read

    store = world.site.workspace.store
    run_id = actions.trigger(store, world.site.entries["web_demo"].pipeline, {})
    try:
        data = read.run(world.site, run_id)
        assert [t["task"] for t in data["tasks"]] == ["extract", "validate", "approve_gate",
                                                      "publish"]
        assert {t["state"] for t in data["tasks"]} == {""}
    finally:
        actions.cancel(store, run_id)


def test_promote_and_roll_back_a_version(client: TestClient, world: World) -> None:
    outputs = [client.get(f"/api/v1/runs/{world.runs[kind]}/tasks/validate").json()["output"]
               for kind in ("success", "waiting")]
    first, second = (o["hash"] for o in outputs)
    assert first != second  # thresholds 0.5 and 0.4 gave two versions
    assert client.post(f"/api/v1/artifacts/{first}/promote").json() == {"active": first}
    assert client.post(f"/api/v1/artifacts/{second}/promote").json() == {"active": second}
    page = client.get(f"/artifacts/{second}", headers=HTML).text
    assert "roll back active" in page and "make active" not in page
    assert client.post(f"/api/v1/artifacts/{second}/rollback").json() == {"active": first}
    assert client.get(f"/api/v1/artifacts/{first}").json()["active"] == first
    history = client.get(f"/api/v1/artifacts/{first}").json()["alias_history"]
    assert [c["hash"] for c in history] == [first, second, first]
    # the token names nobody: the OS user who started the UI acts for it (web/api.py _who)
    assert {c["by"] for c in history} == {getpass.getuser()}


def test_live_pages_carry_the_version_the_api_answers_until_something_changes(
        client: TestClient, world: World) -> None:
    """A live page reloads when the API's version differs from the one it was rendered from:
    equal while nothing happens (durations grow all the same), different after a change."""
    run_id = world.runs["running"]
    for page, api in [(f"/runs/{run_id}", f"/api/v1/runs/{run_id}"),
                      ("/", "/api/v1/pipelines"), ("/runs", "/api/v1/runs?offset=0"),
                      ("/pipelines/web_demo", "/api/v1/pipelines/web_demo?offset=0")]:
        html = client.get(page, headers=HTML).text
        shown = html.split('data-live-version="')[1].split('"')[0]
        assert client.get(api).json()["version"] == shown, page
    before = client.get(f"/api/v1/runs/{run_id}").json()["version"]
    world.site.workspace.store.request_cancel(run_id)
    try:
        assert client.get(f"/api/v1/runs/{run_id}").json()["version"] != before
    finally:
        world.site.workspace.store.request_cancel(run_id, False)


def test_metrics_are_served_to_the_authenticated(client: TestClient,
                                                 anonymous: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert anonymous.get("/metrics").status_code == 401
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"cadenza_runs", "cadenza_task_duration_seconds",
            "cadenza_scheduler_tick_seconds"} <= names


def test_a_mapped_task_shows_how_many_items_are_in_each_state(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from cadenza.store.base import Batch, RunRecord, TaskInstanceRecord
    from cadenza.web import read
    from cadenza.web.read import Site

    ws = Workspace.open(tmp_path_factory.mktemp("mapped") / ".cadenza")
    run_id = "m-20261122T000000-abcdef"
    ws.store.apply(Batch(
        runs=[RunRecord(run_id, "m", "failed", {}, 1.0)],
        task_instances=[TaskInstanceRecord(run_id, "each", -1, "failed"),
                        TaskInstanceRecord(run_id, "each", 0, "success"),
                        TaskInstanceRecord(run_id, "each", 1, "success"),
                        TaskInstanceRecord(run_id, "each", 2, "failed"),
                        TaskInstanceRecord(run_id, "after", -1, "upstream_failed")],
    ))
    tasks = {t["task"]: t for t in read.run(Site(ws), run_id)["tasks"]}
    assert set(tasks) == {"each", "after"}
    assert tasks["each"]["mapped"] == {"success": 2, "failed": 1}
    assert tasks["after"]["mapped"] is None
    ws.close()


def test_errors_and_the_login_form_render_as_pages(client: TestClient,
                                                   anonymous: TestClient) -> None:
    missing = client.get("/runs/nope", headers=HTML)
    assert missing.status_code == 404 and '<p class="error" id="error">There is no run' in \
        missing.text
    assert anonymous.get("/login").status_code == 200
    wrong = anonymous.post("/login", data={"secret": "wrong-token"})
    assert wrong.status_code == 401 and "did not match" in wrong.text


def test_promote_writes_to_the_store_the_ui_was_given(tmp_path: Path) -> None:
    # `cadenza --db ELSEWHERE ui`: an alias set from the UI lands in that store, not in a
    # store of the home folder.
    from cadenza._loader import load_pipeline
    from cadenza.engine.launch import run_pipeline
    from cadenza.schedule.scheduler import Entry
    from cadenza.web import Site
    from cadenza.web.security import Auth
    from cadenza.workspace import locate

    home, elsewhere = tmp_path / ".cadenza", tmp_path / "shared" / "cadenza.db"
    home.mkdir()
    elsewhere.parent.mkdir()
    ws = Workspace.open(locate(home, db=elsewhere))
    try:
        pipe = load_pipeline(TARGET)
        run = run_pipeline(pipe, {"threshold": 0.5}, workspace=ws, target=TARGET,
                           approve=["approve_gate"])
        [version] = ws.store.versions("web_demo", "validate", "return")
        site = Site(ws, {pipe.name: Entry(pipe, TARGET)})
        with TestClient(create_app(site, Auth.for_home(home, token=TOKEN)),
                        headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            answer = client.post(f"/api/v1/artifacts/{version.hash}/promote")
        assert answer.status_code == 200, (run.run_id, answer.text)
        [change] = ws.store.alias_history("web_demo", "validate", "active", "return")
        assert change.hash == version.hash
    finally:
        ws.close()
    assert not (home / "cadenza.db").exists()
