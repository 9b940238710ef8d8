"""The JSON API and pages of task actions and gates: clear and mark a task of an ended run,
the gate's message where it is decided, and many waiting gates decided at once."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cadenza._loader import load_pipeline
from cadenza.engine.launch import run_pipeline
from cadenza.schedule.scheduler import Entry
from cadenza.web import Site, create_app
from cadenza.web.security import Auth
from cadenza.workspace import Workspace

TARGET = str(Path(__file__).parents[1] / "pipelines" / "web_actions.py")
TOKEN = "test-token-456"
HTML = {"accept": "text/html"}
ASKS = "Publish the daily report to the team?"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    found = Workspace.open(tmp_path / ".cadenza")
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def client(ws: Workspace) -> Iterator[TestClient]:
    site = Site(ws, {"web_ops": Entry(load_pipeline(TARGET), TARGET)})
    with TestClient(create_app(site, Auth.for_home(ws.home, token=TOKEN)),
                    headers={"Authorization": f"Bearer {TOKEN}"}) as found:
        yield found


def _run(ws: Workspace, approve: bool) -> str:
    pipe = load_pipeline(TARGET)
    return run_pipeline(pipe, workspace=ws, target=TARGET,
                        approve=["publish"] if approve else []).run_id


def test_clear_with_downstream_queues_the_run_and_records_who(client: TestClient,
                                                                ws: Workspace) -> None:
    run_id = _run(ws, approve=True)
    answer = client.post(f"/api/v1/runs/{run_id}/tasks/report/clear",
                         json={"downstream": True, "reason": "source fixed"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"run_id": run_id, "cleared": ["report", "publish", "send"],
                             "state": "queued"}
    again = client.post(f"/api/v1/runs/{run_id}/tasks/report/clear", json={})
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"Run {run_id} is queued; a task can be cleared only in an ended run (success, failed "
        "or cancelled): cancel it or let it end first.")
    data = client.get(f"/api/v1/runs/{run_id}").json()
    (cleared,) = [a for a in data["actions"] if a["kind"] == "task_cleared"]
    # the token names nobody: the UI's OS user acts for it, never "token"
    assert (cleared["by"], cleared["reason"], cleared["detail"]) == (
        getpass.getuser(), "source fixed", "cleared report, publish, send")
    page = client.get(f"/runs/{run_id}", headers=HTML).text
    assert 'id="run-actions"' in page and "source fixed" in page


def test_mark_by_form_goes_back_to_the_task_page(client: TestClient, ws: Workspace) -> None:
    run_id = _run(ws, approve=True)
    answer = client.post(f"/api/v1/runs/{run_id}/tasks/send/mark",
                         data={"state": "failed", "reason": "mail bounced",
                               "csrf_token": "ignored-with-a-token", "next": ""},
                         follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/runs/{run_id}/tasks/send"
    task = client.get(f"/api/v1/runs/{run_id}/tasks/send").json()
    assert task["state"] == "failed" and task["run_state"] == "failed"
    assert task["error"] == f"marked failed by {getpass.getuser()}: mail bounced"
    consumed = client.post(f"/api/v1/runs/{run_id}/tasks/extract/mark",
                           json={"state": "success", "reason": "fine"})
    assert consumed.status_code == 409
    assert "report reads its value" in consumed.json()["detail"]
    for body, why in [({"state": "failed", "reason": " "}, "needs a reason"),
                      ({"state": "skipped", "reason": "x"}, "success or failed"),
                      ({"reason": "x"}, "state")]:
        bad = client.post(f"/api/v1/runs/{run_id}/tasks/send/mark", json=body)
        assert bad.status_code == 422 and why in bad.json()["detail"], bad.text
    page = client.get(f"/runs/{run_id}/tasks/send", headers=HTML).text
    assert "clear this task" in page and "mark as" in page


def test_the_gate_message_is_shown_where_the_gate_is_decided(client: TestClient,
                                                               ws: Workspace) -> None:
    run_id = _run(ws, approve=False)
    data = client.get(f"/api/v1/runs/{run_id}").json()
    assert data["gate_messages"] == {"publish": ASKS}
    assert ASKS in client.get(f"/runs/{run_id}", headers=HTML).text
    task = client.get(f"/api/v1/runs/{run_id}/tasks/publish").json()
    assert task["gate_message"] == ASKS
    page = client.get(f"/runs/{run_id}/tasks/publish", headers=HTML).text
    assert ASKS in page and "Clear and mark open once the run has ended" in page
    assert client.get(f"/api/v1/runs/{run_id}/tasks/report").json()["gate_message"] is None


def test_many_waiting_gates_are_listed_and_decided_at_once(client: TestClient,
                                                            ws: Workspace) -> None:
    waiting = [_run(ws, approve=False) for _ in range(3)]
    listed = client.get("/api/v1/gates").json()
    assert [(w["run_id"], w["gate"], w["message"]) for w in listed["waiting"]] == [
        (run_id, "publish", ASKS) for run_id in waiting]
    assert listed["pipelines"] == ["web_ops"]
    assert client.get("/api/v1/gates?pipeline=other").json()["waiting"] == []
    page = client.get("/gates", headers=HTML).text
    assert page.count('name="pick"') == 3 and page.count(ASKS) == 3
    no_reason = client.post("/api/v1/gates/reject",
                            json={"gates": [{"run_id": waiting[0], "gate": "publish"}]})
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.json()["detail"]
    rejected = client.post("/api/v1/gates/reject", json={
        "gates": [{"run_id": waiting[0], "gate": "publish"}], "reason": "numbers look off"})
    assert rejected.json() == {"approved": False, "refused": {},
                               "decided": [{"run_id": waiting[0], "gate": "publish"}]}
    form = client.post("/api/v1/gates/approve", follow_redirects=False, content=(
        f"pick={waiting[1]}%2Fpublish&pick={waiting[2]}%2Fpublish&reason=ok&next=%2Fgates"),
        headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 303 and form.headers["location"] == "/gates"
    approvals = {a.run_id: (a.approved, a.by) for r in waiting for a in ws.store.approvals(r)}
    assert approvals == {waiting[0]: (False, getpass.getuser()),
                         waiting[1]: (True, getpass.getuser()),
                         waiting[2]: (True, getpass.getuser())}
    assert client.get("/api/v1/gates").json()["waiting"] == []  # decided: none left to list
    page = client.get("/gates", headers=HTML).text
    assert 'id="none-waiting"' in page
