"""Guessing is slow and says nothing: failed logins are throttled per client (429 with
Retry-After), an unknown user costs the same scrypt as a known one, and scrypt never runs on
the event loop."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.security._http import bearer, call
from tests.security.conftest import DEMO, TOKEN
from tests.web._server import Server, serve

import cadenza.web.limits as limits
import cadenza.web.security as security
from cadenza.web import Site, create_app
from cadenza.web.limits import FAILURES, WINDOW, Throttle
from cadenza.web.security import Auth, hash_password
from cadenza.workspace import Workspace

PASSWORD = "a long enough password"
HASH = hash_password(PASSWORD, n=2**14)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Server]:
    """A UI of its own (the test locks clients out) with a user and a password."""
    with serve(tmp_path / ".cadenza", DEMO, TOKEN, args=["--no-scheduler", "--user", "ada"],
               env={"CADENZA_UI_PASSWORD_HASH": HASH}) as server:
        yield server


def test_failed_logins_are_throttled_per_client(guarded: Server) -> None:
    url = guarded.url
    wrong = [bearer("not-the-token"), _basic("ada", "wrong"), _basic("eve", PASSWORD)]
    for i in range(FAILURES):
        assert call(url, "GET", "/api/v1/runs", headers=wrong[i % 3]).status == 401
    locked = call(url, "GET", "/api/v1/runs", headers=bearer(TOKEN))  # even the right one
    assert locked.status == 429 and "try again" in locked.detail
    assert 1 <= int(locked.headers["retry-after"]) <= WINDOW
    assert "content-security-policy" in locked.headers
    form = call(url, "POST", "/login", body=f"secret={TOKEN}".encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 429 and "retry-after" in form.headers
    link = call(url, "GET", f"/runs?token={TOKEN}")
    assert link.status == 429
    assert call(url, "GET", "/health").status == 200  # open paths stay open
    if sys.platform == "linux":  # all of 127/8 is loopback there: another client
        other = call(url, "GET", "/api/v1/runs", headers=_basic("ada", PASSWORD),
                     source="127.0.0.2")
        assert other.status == 200


def test_the_login_form_counts_failures(guarded: Server) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    for _ in range(FAILURES):
        page = call(guarded.url, "POST", "/login", body=b"user=ada&secret=nope", headers=form)
        assert page.status == 401 and b"<form" in page.body
    refused = call(guarded.url, "POST", "/login", body=b"user=ada&secret=nope", headers=form)
    assert refused.status == 429 and b"try again" in refused.body
    assert "retry-after" in refused.headers


def test_a_success_clears_the_count(guarded: Server) -> None:
    for _ in range(FAILURES - 1):
        assert call(guarded.url, "GET", "/api/v1/runs", headers=bearer("nope")).status == 401
    assert call(guarded.url, "GET", "/api/v1/runs", headers=bearer(TOKEN)).status == 200
    for _ in range(FAILURES - 1):
        assert call(guarded.url, "GET", "/api/v1/runs", headers=bearer("nope")).status == 401
    assert call(guarded.url, "GET", "/api/v1/runs", headers=bearer(TOKEN)).status == 200


def test_the_throttle_forgets_after_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    throttle = Throttle(failures=3, window=60)
    for _ in range(3):
        assert throttle.wait("a") == 0
        throttle.failed("a")
    assert throttle.wait("a") == pytest.approx(60) and throttle.wait("b") == 0
    now[0] += 30
    assert throttle.wait("a") == pytest.approx(30)
    now[0] += 30
    assert throttle.wait("a") == 0


def test_the_throttle_remembers_a_bounded_number_of_clients(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_CLIENTS", 100)
    throttle = Throttle(failures=1)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._seen) <= 100
    assert throttle.wait("10.0.3.231") > 0  # the latest is kept


def _app(tmp_path: Path) -> tuple[TestClient, Workspace]:
    ws = Workspace.open(tmp_path / ".cadenza")
    auth = Auth.for_home(ws.home, token=TOKEN, user="ada", password_hash=HASH)
    return TestClient(create_app(Site(ws), auth)), ws


def test_scrypt_runs_in_a_worker_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loops: list[bool] = []
    real = security.verify_password

    def verify(password: str, encoded: str) -> bool:
        try:
            asyncio.get_running_loop()
            loops.append(True)
        except RuntimeError:
            loops.append(False)
        return real(password, encoded)

    monkeypatch.setattr(security, "verify_password", verify)
    client, ws = _app(tmp_path)
    with client, closing(ws):
        assert client.get("/api/v1/runs", headers=_basic("ada", PASSWORD)).status_code == 200
        assert client.get("/api/v1/runs", headers=_basic("bob", PASSWORD)).status_code == 401
        login = client.post("/login", data={"user": "ada", "secret": "wrong"})
        assert login.status_code == 401
    assert loops == [False, False, False]  # three hashes, none on the event loop


def test_an_unknown_user_costs_a_hash_of_the_same_cost(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    costs: list[str] = []
    real = security.verify_password
    monkeypatch.setattr(security, "verify_password", lambda password, encoded: (
        costs.append("$".join(encoded.split("$")[:4])) or real(password, encoded)))
    auth = Auth.for_home(tmp_path, token=TOKEN, user="ada", password_hash=HASH)
    assert auth.check("eve", PASSWORD) is None
    assert auth.check("ada", "wrong") is None
    assert costs == ["scrypt$16384$8$1"] * 2
    assert auth.check(None, "wrong") is None and len(costs) == 2  # no user named: no scrypt
