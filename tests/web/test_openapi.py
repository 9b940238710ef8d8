"""/api/v1/openapi.json tells the truth: every GET's real answer validates against its
documented schema, every endpoint documents its errors and how to authenticate, and the
trigger's body and the 422s are what the server does."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from starlette.testclient import TestClient
from tests.web.conftest import World

ERRORS_EVERYWHERE = {"401", "403", "422"}


@pytest.fixture(scope="module")
def schema(world: World) -> dict[str, Any]:
    from cadenza.web import create_app

    with TestClient(create_app(world.site, world.auth)) as client:
        found: dict[str, Any] = client.get("/api/v1/openapi.json",
                                           headers={"Authorization": "Bearer test-token-123"}
                                           ).json()
    return found


def _validator(schema: dict[str, Any], part: dict[str, Any]) -> Draft202012Validator:
    """A validator for ``part``, whose $refs point into ``schema``'s components."""
    return Draft202012Validator({**part, "components": schema["components"]})


def _samples(client: TestClient, world: World) -> dict[str, str]:
    output = client.get(f"/api/v1/runs/{world.runs['success']}/tasks/publish").json()["output"]
    return {"name": "web_demo", "run_id": world.runs["running"], "task": "validate",
            "attempt": "1", "digest": output["hash"]}


def test_every_get_answers_what_its_schema_says(client: TestClient, world: World,
                                                 schema: dict[str, Any]) -> None:
    samples = _samples(client, world)
    checked = []
    for path, item in schema["paths"].items():
        if "get" not in item or "/items" in path:  # web_demo maps nothing: test_data_views
            continue
        documented = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert documented.get("$ref"), f"{path}: a bare object is no documentation"
        url = path.format(**samples)
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.text[:300])
        errors = sorted(_validator(schema, documented).iter_errors(answer.json()), key=str)
        assert not errors, (url, [e.message for e in errors[:5]])
        checked.append(path)
    assert len(checked) == 16  # with /api/v1/gates (web/operate.py)


@pytest.mark.parametrize("kind", ["success", "failed", "waiting"])
def test_every_run_and_its_tasks_validate(client: TestClient, world: World,
                                          schema: dict[str, Any], kind: str) -> None:
    run = _validator(schema, {"$ref": "#/components/schemas/RunDetail"})
    task = _validator(schema, {"$ref": "#/components/schemas/TaskDetail"})
    data = client.get(f"/api/v1/runs/{world.runs[kind]}").json()
    run.validate(data)
    for row in data["tasks"]:
        task.validate(client.get(f"/api/v1/runs/{world.runs[kind]}/tasks/{row['task']}").json())


def test_every_operation_documents_its_errors(schema: dict[str, Any]) -> None:
    error = {"$ref": "#/components/schemas/Error"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert set(responses) >= ERRORS_EVERYWHERE, (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if method == "post":
                assert {"413", "303"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status.startswith("4"):
                    assert response["content"]["application/json"]["schema"] == error
    retry = schema["paths"]["/api/v1/runs/{run_id}/retry"]["post"]["responses"]
    assert "409" in retry


def test_auth_is_declared(schema: dict[str, Any], world: World) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["cookie"]["in"] == "cookie" and schemes["cookie"]["name"] == world.auth.cookie
    assert {"bearer": []} in schema["security"] and {"cookie": []} in schema["security"]


def test_the_trigger_body_is_documented_and_enforced(client: TestClient,
                                                      schema: dict[str, Any]) -> None:
    body = schema["paths"]["/api/v1/pipelines/{name}/runs"]["post"]["requestBody"]["content"]
    documented = body["application/json"]["schema"]
    assert documented["properties"]["params"]["type"] == "object"
    assert documented["additionalProperties"] is False
    validator = _validator(schema, documented)
    sent = {"params": {"threshold": 0.3}}
    validator.validate(sent)
    made = client.post("/api/v1/pipelines/web_demo/runs", json=sent)
    assert made.status_code == 200
    _validator(schema, {"$ref": "#/components/schemas/Queued"}).validate(made.json())
    extra = {"params": {}, "priority": 1}
    assert not validator.is_valid(extra)
    assert client.post("/api/v1/pipelines/web_demo/runs", json=extra).status_code == 422


@pytest.mark.parametrize("url", ["/api/v1/runs?offset=x", "/api/v1/events?before=-3",
                                 "/api/v1/pipelines/web_demo/schedule?count=1000"])
def test_validation_errors_are_the_documented_422(client: TestClient, schema: dict[str, Any],
                                                  url: str) -> None:
    answer = client.get(url)
    assert answer.status_code == 422
    _validator(schema, {"$ref": "#/components/schemas/Error"}).validate(answer.json())


def test_every_model_is_a_valid_json_schema(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.1")  # whose schemas are JSON Schema 2020-12
    for name, part in schema["components"]["schemas"].items():
        Draft202012Validator.check_schema({**part, "components": schema["components"]})
        assert part.get("description") or name in ("HTTPValidationError", "ValidationError") \
            or part.get("properties"), name
