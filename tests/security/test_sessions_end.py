"""Logout ends a session for good, on a real `cadenza ui`: the old cookie stops working at
once and after a restart with the same --token; a new token or password ends every session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.security._http import Answer, call
from tests.security.conftest import DEMO, TOKEN
from tests.web._server import Server, free_port, serve

from cadenza.web.security import COOKIE, Auth, hash_password


def _sign_in(ui: Server, port: int) -> str:
    """Trade the token for a cookie; its value."""
    answer = call(ui.url, "GET", f"/runs?token={TOKEN}")
    assert answer.status == 303 and answer.headers["location"] == "/runs"
    name = f"{COOKIE}_{port}"
    (cookie,) = answer.cookies
    assert cookie.startswith(f"{name}=")  # the name carries the port
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    return cookie.split(";")[0].partition("=")[2]


def _with(port: int, value: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}_{port}={value}", **headers}


def _get(ui: Server, port: int, value: str) -> Answer:
    return call(ui.url, "GET", "/api/v1/pipelines", headers=_with(port, value))


def _log_out(ui: Server, port: int, value: str) -> None:
    page = call(ui.url, "GET", "/", headers=_with(port, value, Accept="text/html"))
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.body.decode())
    assert csrf is not None, page.body[:500]
    answer = call(ui.url, "POST", "/logout", body=f"csrf_token={csrf[1]}".encode(),
                  headers=_with(port, value, **{
                      "Content-Type": "application/x-www-form-urlencoded",
                      "Origin": ui.url}))
    assert answer.status == 303 and answer.headers["location"] == "/login"
    assert any("Max-Age=0" in c for c in answer.cookies)


def test_logout_ends_the_session_now_and_after_a_restart(tmp_path: Path) -> None:
    home, port = tmp_path / ".cadenza", free_port()
    args = ["--no-scheduler"]
    with serve(home, DEMO, TOKEN, args=args, port=port) as ui:
        kept, ended = _sign_in(ui, port), _sign_in(ui, port)
        assert _get(ui, port, kept).status == 200 and _get(ui, port, ended).status == 200
        _log_out(ui, port, ended)
        assert _get(ui, port, ended).status == 401
        assert _get(ui, port, kept).status == 200
    with serve(home, DEMO, TOKEN, args=args, port=port) as ui:  # the same fixed --token
        assert _get(ui, port, ended).status == 401
        assert _get(ui, port, kept).status == 200
    with serve(home, DEMO, TOKEN[::-1], args=args, port=port) as ui:  # a changed token
        assert _get(ui, port, kept).status == 401


def test_a_changed_password_ends_sessions(tmp_path: Path) -> None:
    old = Auth.for_home(tmp_path, token=TOKEN, user="ada",
                        password_hash=hash_password("first password", n=2**14))
    value = old.session_cookie("ada")
    new = Auth.for_home(tmp_path, token=TOKEN, user="ada",
                        password_hash=hash_password("second password", n=2**14))
    assert old.read_session(value) is not None
    assert new.read_session(value) is None


def test_a_session_file_damaged_by_hand_ends_only_what_it_lost(tmp_path: Path) -> None:
    auth = Auth.for_home(tmp_path, token=TOKEN)
    first, second = auth.session_cookie("token"), auth.session_cookie("token")
    path = tmp_path / "ui_sessions"
    lines = path.read_text().splitlines()
    path.write_text(lines[0].split()[0] + " not-a-time\n" + lines[1] + "\n")
    again = Auth.for_home(tmp_path, token=TOKEN)
    assert again.read_session(first) is None and again.read_session(second) is not None


@pytest.mark.parametrize("cookie", ["", "garbage", "a.b.c"])
def test_forged_cookies_are_401(ui: Server, cookie: str) -> None:
    port = int(ui.url.rsplit(":", 1)[1])
    assert _get(ui, port, cookie).status == 401
