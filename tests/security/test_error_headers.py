"""Every answer carries the security headers, errors included: 400-429 from the guard and the
app, and a 500 from an exception nobody expected (logged, never shown)."""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.security._http import bearer, call
from tests.security.conftest import TOKEN
from tests.web._server import Server

from cadenza.web import Site, create_app
from cadenza.web.guard import SECURITY_HEADERS
from cadenza.web.security import Auth
from cadenza.workspace import Workspace


def _has_headers(headers: dict[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name.lower()) == value, name


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/v1/runs/web_demo-nope", 404),
    ("GET", "/runs/web_demo-nope", 404),
    ("GET", "/api/v1/runs?offset=-1", 422),
    ("GET", "/api/v1/nothing-here", 404),
    ("POST", "/api/v1/pipelines/web_demo/runs", 422),
    ("POST", "/api/v1/runs/web_demo-nope/retry", 404),
    ("PUT", "/api/v1/runs", 405),
])
def test_error_answers_carry_the_headers(ui: Server, method: str, path: str,
                                         status: int) -> None:
    for accept in ("application/json", "text/html"):
        answer = call(ui.url, method, path, body=b"[]" if path.endswith("/runs") else b"{}",
                      headers={**bearer(TOKEN), "Accept": accept,
                               "Content-Type": "application/json"})
        assert answer.status == status, (path, accept, answer.body[:300])
        _has_headers(answer.headers)


def test_an_unexpected_exception_is_a_500_with_the_headers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ws = Workspace.open(tmp_path / ".cadenza")
    with closing(ws):
        app = create_app(Site(ws), Auth.for_home(ws.home, token=TOKEN))

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("secret internals")

        with TestClient(app, headers=bearer(TOKEN)) as client, caplog.at_level(logging.ERROR):
            answer = client.get("/boom")
    assert answer.status_code == 500
    _has_headers({k.lower(): v for k, v in answer.headers.items()})
    assert "internal error" in answer.json()["detail"]
    assert "secret internals" not in answer.text  # logged, not shown
    assert "secret internals" in caplog.text


def test_a_store_that_fails_is_503_not_500(tmp_path: Path) -> None:
    from cadenza.exceptions import StoreBusyError
    from cadenza.web.app import _status_of

    assert _status_of(StoreBusyError("x.db", timeout=1.0)) == 503
