"""cadenza.web.security: credentials, sessions, CSRF, same-origin checks and headers."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from itsdangerous.timed import TimestampSigner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from cadenza.web.guard import MAX_FORM_BYTES, SECURITY_HEADERS, Guard
from cadenza.web.security import (
    COOKIE,
    Auth,
    Session,
    UIConfigError,
    check_bind,
    hash_password,
    login_response,
    logout_response,
    safe_next,
    secret_key,
    verify_password,
)

with warnings.catch_warnings():
    # starlette now asks for `httpx2` in its TestClient; the dev extra installs httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

TOKEN = "t0ken-for-the-tests"
PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD, n=2**14)  # the cost of older hashes: quick, and still valid
OWN = "http://testserver"


async def _echo(request: Request) -> Response:
    body = (await request.body()).decode()
    form = {k: v[0] for k, v in parse_qs(body).items()}
    return JSONResponse({"who": request.state.who, "csrf": request.state.csrf, "form": form})


async def _login(request: Request) -> Response:
    if request.method == "GET":
        return PlainTextResponse("login form")
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    who = request.app.state.auth.check(form.get("user"), form.get("secret", ""))
    if who is None:
        return PlainTextResponse("wrong", status_code=401)
    return login_response(request.app.state.auth, who, form.get("next", "/"), secure=False)


async def _plain(request: Request) -> Response:
    return PlainTextResponse("open")


async def _socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.state.who)
    await websocket.close()


def _app(auth: Auth) -> Guard:
    app = Starlette(
        routes=[
            Route("/health", _plain),
            Route("/healthx", _plain),
            Route("/login", _login, methods=["GET", "POST"]),
            Route("/static/{name:path}", _plain),
            Route("/secret", _echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/api/v1/runs", _echo, methods=["GET", "POST"]),
            WebSocketRoute("/ws", _socket),
        ]
    )
    app.state.auth = auth
    return Guard(app, auth)


@pytest.fixture
def auth(tmp_path: Path) -> Auth:
    return Auth.for_home(tmp_path, token=TOKEN, user="ada", password_hash=HASH)


@pytest.fixture
def client(auth: Auth) -> TestClient:
    return TestClient(_app(auth), base_url=OWN, follow_redirects=False)


def _signed_in(client: TestClient) -> str:
    """Sign ``client`` in through ?token=; the session's CSRF token."""
    assert client.get(f"/secret?token={TOKEN}").status_code == 303
    response = client.get("/secret")
    assert response.status_code == 200
    csrf: str = response.json()["csrf"]
    return csrf


def _basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def _call(
    guard: Guard, path: str, raw_path: bytes, query: bytes = b""
) -> tuple[int, dict[str, str]]:
    """Run one GET through ``guard`` with a hand-made scope: its status and headers."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": [(b"host", b"testserver")],
    }
    start: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)

    asyncio.run(guard(scope, receive, send))
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers


# -- who gets in -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_protected_paths_answer_401_without_credentials(client: TestClient, method: str) -> None:
    response = client.request(method, "/secret")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("not signed in")
    assert response.headers["www-authenticate"] == "Bearer"


def test_browsers_get_an_html_401_linking_to_login(client: TestClient) -> None:
    response = client.get("/secret?a=1", headers={"Accept": "text/html,*/*"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/login?next=%2Fsecret%3Fa%3D1"' in response.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/health", 200),
        ("/login", 200),
        ("/static/app.css", 200),
        ("/healthx", 401),
        ("/health/", 401),
        ("/static", 401),
        ("/static/%2e%2e/secret", 401),
        ("/api/v1/runs", 401),
    ],
)
def test_the_allowlist_is_exact(client: TestClient, path: str, status: int) -> None:
    assert client.get(path).status_code == status


@pytest.mark.parametrize("path", ["/static/../secret", "/static/a/..", "/static/..\\secret"])
def test_dot_dot_never_counts_as_static(auth: Auth, path: str) -> None:
    # Built by hand: HTTP clients would resolve the ".." before sending.
    status, _ = _call(_app(auth), path, path.encode())
    assert status == 401


def test_bearer_token(client: TestClient) -> None:
    response = client.get("/secret", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json() == {"who": "token", "csrf": "", "form": {}}
    assert client.get("/secret", headers={"Authorization": "Bearer nope-nope"}).status_code == 401
    assert client.get("/secret", headers={"Authorization": "Digest x"}).status_code == 401


def test_basic_with_user_and_password(client: TestClient) -> None:
    response = client.get("/secret", headers=_basic("ada", PASSWORD))
    assert response.status_code == 200
    assert response.json()["who"] == "ada"
    assert client.get("/secret", headers=_basic("ada", "wrong")).status_code == 401
    assert client.get("/secret", headers=_basic("bob", PASSWORD)).status_code == 401
    assert client.get("/secret", headers={"Authorization": "Basic %%%"}).status_code == 401


def test_token_query_trades_the_token_for_a_cookie(client: TestClient) -> None:
    response = client.get(f"/secret?a=1&token={TOKEN}&b=2")
    assert response.status_code == 303
    assert response.headers["location"] == "/secret?a=1&b=2"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie
    assert client.get("/secret").json()["who"] == "token"


def test_token_query_with_a_wrong_token_is_refused(client: TestClient) -> None:
    response = client.get("/secret?token=wrong-token")
    assert response.status_code == 401
    assert COOKIE not in client.cookies


def test_cookie_is_secure_over_https(auth: Auth) -> None:
    client = TestClient(_app(auth), base_url="https://testserver", follow_redirects=False)
    assert "Secure" in client.get(f"/secret?token={TOKEN}").headers["set-cookie"]


def test_token_login_never_redirects_off_site(auth: Auth) -> None:
    status, headers = _call(_app(auth), "//evil.com/x", b"//evil.com/x", f"token={TOKEN}".encode())
    assert status == 303
    assert headers["location"] == "/"


def test_login_form_sets_the_session(client: TestClient) -> None:
    data = {"user": "ada", "secret": PASSWORD, "next": "/secret"}
    response = client.post("/login", data=data, headers={"Origin": OWN})
    assert response.status_code == 303
    assert response.headers["location"] == "/secret"
    assert client.get("/secret").json()["who"] == "ada"


def test_tampered_cookie_is_refused(client: TestClient, auth: Auth) -> None:
    value = auth.session_cookie("token")
    client.cookies.set(COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert client.get("/secret").status_code == 401


def test_cookies_expire_after_seven_days(
    client: TestClient, auth: Auth, monkeypatch: pytest.MonkeyPatch
) -> None:
    def days_ago(days: float) -> str:
        with monkeypatch.context() as m:
            m.setattr(
                TimestampSigner, "get_timestamp", lambda self: int(time.time() - days * 86400)
            )
            return auth.session_cookie("token")

    client.cookies.set(COOKIE, days_ago(6.9))
    assert client.get("/secret").status_code == 200
    client.cookies.set(COOKIE, days_ago(7.1))
    assert client.get("/secret").status_code == 401


def test_sessions_end_when_the_token_changes(tmp_path: Path) -> None:
    old = Auth.for_home(tmp_path, token=TOKEN)
    new = Auth.for_home(tmp_path, token="another-token")
    value = old.session_cookie("token")
    assert old.read_session(value) is not None
    assert new.read_session(value) is None


def test_read_session(auth: Auth) -> None:
    session = auth.read_session(auth.session_cookie("ada"))
    assert isinstance(session, Session) and session.who == "ada" and len(session.csrf) > 20
    assert auth.read_session("") is None
    assert auth.read_session("garbage.value.here") is None


def test_logout_ends_the_session_and_clears_the_cookie(auth: Auth) -> None:
    cookie = auth.session_cookie("token")
    assert auth.read_session(cookie) is not None
    response = logout_response(auth, cookie)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert response.headers["set-cookie"].startswith(f'{COOKIE}=""')
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert auth.read_session(cookie) is None  # the cookie is dead even if a browser keeps it
    assert logout_response(auth, None).status_code == 303


def test_sessions_outlive_a_restart_but_not_a_logout(tmp_path: Path) -> None:
    first = Auth.for_home(tmp_path, token=TOKEN)
    kept, ended = first.session_cookie("token"), first.session_cookie("token")
    first.end_session(ended)
    again = Auth.for_home(tmp_path, token=TOKEN)  # a restart with the same --token
    assert again.read_session(kept) is not None
    assert again.read_session(ended) is None
    again.end_session(kept)
    assert first.read_session(kept) is None  # another UI on the home sees the logout
    if sys.platform != "win32":
        assert (tmp_path / "ui_sessions").stat().st_mode & 0o777 == 0o600


def test_sessions_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadenza.web.security as security

    monkeypatch.setattr(security, "MAX_SESSIONS", 3)
    auth = Auth.for_home(tmp_path, token=TOKEN)
    cookies = [auth.session_cookie("token") for _ in range(5)]
    assert [auth.read_session(c) is not None for c in cookies] == [False] * 2 + [True] * 3


def test_a_cookie_without_a_session_id_is_refused(auth: Auth) -> None:
    old_style = auth._serializer().dumps({"who": "token", "csrf": "x" * 40})
    assert auth.read_session(old_style) is None


def test_the_cookie_name_carries_the_port(tmp_path: Path) -> None:
    assert Auth.for_home(tmp_path, token=TOKEN, port=8080).cookie == f"{COOKIE}_8080"
    assert Auth.for_home(tmp_path, token=TOKEN).cookie == COOKIE


def test_websockets_need_credentials_and_the_same_origin(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == 4401
    with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        assert ws.receive_text() == "token"
    _signed_in(client)
    with client.websocket_connect("/ws", headers={"Origin": OWN}) as ws:
        assert ws.receive_text() == "token"
    foreign = {"Origin": "http://evil.com"}
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/ws", headers=foreign),
    ):
        pass
    assert refused.value.code == 4403


def test_lifespan_passes_through(auth: Auth) -> None:
    with TestClient(_app(auth), base_url=OWN) as client:
        assert client.get("/health").status_code == 200


# -- CSRF and same origin --------------------------------------------------------------------


def test_cookie_post_needs_the_csrf_token(client: TestClient) -> None:
    csrf = _signed_in(client)
    refused = client.post("/secret")
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("CSRF token missing or wrong")
    assert client.post("/secret", headers={"X-CSRF-Token": "not-it"}).status_code == 403
    assert client.delete("/secret", headers={"X-CSRF-Token": csrf}).status_code == 200
    response = client.post("/secret", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    assert response.json()["who"] == "token"


def test_csrf_token_in_a_form_leaves_the_form_readable(client: TestClient) -> None:
    csrf = _signed_in(client)
    data = {"name": "nightly", "csrf_token": csrf, "note": "a&b=c"}
    response = client.post("/secret", data=data)
    assert response.status_code == 200
    assert response.json()["form"] == data
    assert client.post("/secret", data={"name": "x", "csrf_token": "bad"}).status_code == 403


def test_oversized_forms_are_refused(client: TestClient) -> None:
    csrf = _signed_in(client)
    data = {"csrf_token": csrf, "blob": "x" * MAX_FORM_BYTES}
    assert client.post("/secret", data=data).status_code == 413


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.com"},
        {"Origin": "null"},
        {"Origin": "https://testserver"},
        {"Referer": "http://evil.com/page"},
        {"Referer": "http://testserver.evil.com/page"},
    ],
)
def test_cross_origin_cookie_requests_are_refused(
    client: TestClient, headers: dict[str, str]
) -> None:
    csrf = _signed_in(client)
    response = client.post("/secret", headers={"X-CSRF-Token": csrf, **headers})
    assert response.status_code == 403
    assert response.json()["detail"].startswith("cross-origin request refused")


@pytest.mark.parametrize(
    "headers", [{"Origin": OWN}, {"Origin": "http://TESTSERVER:80"}, {"Referer": OWN + "/runs"}]
)
def test_same_origin_cookie_requests_pass(client: TestClient, headers: dict[str, str]) -> None:
    csrf = _signed_in(client)
    assert client.post("/secret", headers={"X-CSRF-Token": csrf, **headers}).status_code == 200


def test_header_credentials_need_no_csrf_token_but_the_same_origin(client: TestClient) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/v1/runs", headers=bearer).status_code == 200
    assert client.post("/api/v1/runs", headers=_basic("ada", PASSWORD)).status_code == 200
    foreign = {**bearer, "Origin": "http://evil.com"}
    assert client.post("/api/v1/runs", headers=foreign).status_code == 403


def test_login_post_checks_the_origin_only(client: TestClient) -> None:
    data = {"secret": TOKEN}
    foreign = {"Origin": "http://evil.com"}
    assert client.post("/login", data=data, headers=foreign).status_code == 403
    assert client.post("/login", data=data, headers={"Origin": OWN}).status_code == 303


# -- headers on every response ---------------------------------------------------------------


def test_security_headers_and_no_cors(client: TestClient) -> None:
    responses = [
        client.get("/health"),
        client.get("/secret"),
        client.options("/secret", headers={"Origin": "http://evil.com"}),
        client.post("/secret", headers={"Origin": "http://evil.com"}),
        client.get(f"/secret?token={TOKEN}"),
        client.get("/secret"),
    ]
    assert [r.status_code for r in responses] == [200, 401, 401, 403, 303, 200]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


# -- keys, passwords, settings ---------------------------------------------------------------


def test_secret_key_is_made_once_and_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = secret_key(home)
    assert len(key) == 64 and int(key, 16) >= 0
    assert secret_key(home) == key
    assert sorted(p.name for p in home.iterdir()) == ["ui_secret"]
    if sys.platform != "win32":
        assert (home / "ui_secret").stat().st_mode & 0o777 == 0o600


def test_secret_key_races_end_with_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: secret_key(tmp_path), range(16)))
    assert keys == {(tmp_path / "ui_secret").read_text().strip()}


def test_a_damaged_secret_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "ui_secret").write_text("short\n")
    with pytest.raises(UIConfigError, match="Delete the file"):
        secret_key(tmp_path)


def test_password_hashes_meet_owasps_minimum_and_old_ones_still_verify() -> None:
    encoded = hash_password("hunter2")
    assert encoded.startswith("scrypt$131072$8$1$")  # N=2^17, r=8, p=1
    assert verify_password("hunter2", encoded)
    assert not verify_password("hunter3", encoded)
    old = hash_password("hunter2", n=2**14)
    assert old.startswith("scrypt$16384$8$1$") and verify_password("hunter2", old)
    assert hash_password("hunter2", n=2**14) != old  # a fresh salt each time


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "scrypt",
        "bcrypt$16384$8$1$00112233445566778899aabbccddeeff$" + "00" * 32,
        "scrypt$16384$8$1$nothex$" + "00" * 32,
        "scrypt$1000$8$1$00112233445566778899aabbccddeeff$" + "00" * 32,
        "scrypt$1073741824$8$1$00112233445566778899aabbccddeeff$" + "00" * 32,
        "scrypt$16384$8$1$00112233445566778899aabbccddeeff$00",
        "scrypt$$8$1$$",
    ],
)
def test_malformed_hashes_never_verify(encoded: str) -> None:
    assert not verify_password("anything", encoded)


def test_check(auth: Auth) -> None:
    assert auth.check(None, TOKEN) == "token"
    assert auth.check("whoever", TOKEN) == "token"
    assert auth.check("ada", PASSWORD) == "ada"
    assert auth.check("bob", PASSWORD) is None
    assert auth.check(None, PASSWORD) is None
    assert auth.check("ada", "") is None


def test_for_home(tmp_path: Path) -> None:
    generated = Auth.for_home(tmp_path)
    assert not generated.configured and len(generated.token) >= 32
    assert generated.secret == secret_key(tmp_path)
    assert Auth.for_home(tmp_path, token=TOKEN).configured
    assert Auth.for_home(tmp_path, user="ada", password_hash=HASH).configured


def test_for_home_refuses_unusable_settings(tmp_path: Path) -> None:
    with pytest.raises(UIConfigError, match="cadenza ui --hash-password") as missing:
        Auth.for_home(tmp_path, user="ada")
    assert missing.value.option == "user"
    with pytest.raises(UIConfigError, match="not one cadenza made") as malformed:
        Auth.for_home(tmp_path, user="ada", password_hash="scrypt")
    assert malformed.value.option == "password_hash"
    with pytest.raises(UIConfigError, match="no user"):
        Auth.for_home(tmp_path, password_hash=HASH)
    with pytest.raises(UIConfigError, match="at least 8") as short:
        Auth.for_home(tmp_path, token="short")
    assert "short" not in str(short.value).replace("characters", "")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"]
)
def test_check_bind_allows_loopback(host: str, tmp_path: Path) -> None:
    check_bind(host, Auth.for_home(tmp_path))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "example.com"])
def test_check_bind_needs_chosen_credentials_elsewhere(tmp_path: Path, host: str) -> None:
    with pytest.raises(UIConfigError) as refused:
        check_bind(host, Auth.for_home(tmp_path))
    assert repr(host) in str(refused.value) and "CADENZA_UI_TOKEN" in str(refused.value)
    check_bind(host, Auth.for_home(tmp_path, token="x" * 32))


def test_check_bind_needs_a_long_token_and_a_password_elsewhere(tmp_path: Path) -> None:
    check_bind("127.0.0.1", Auth.for_home(tmp_path, token="short-but-ok"))
    with pytest.raises(UIConfigError, match="at least 32") as short:
        check_bind("0.0.0.0", Auth.for_home(tmp_path, token="y" * 31))
    assert short.value.option == "token" and "y" * 31 not in str(short.value)
    empty = Auth.for_home(tmp_path, token="x" * 32, user="ada",
                          password_hash=hash_password("", n=2**14))
    check_bind("::1", empty)
    with pytest.raises(UIConfigError, match="'ada' is empty") as refused:
        check_bind("192.168.1.20", empty)
    assert refused.value.option == "password_hash"
    check_bind("192.168.1.20", Auth.for_home(tmp_path, token="x" * 32, user="ada",
                                             password_hash=HASH))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/runs?x=1", "/runs?x=1"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("//evil.com", "/"),
        ("https://evil.com", "/"),
        ("/\\evil.com", "/"),
        ("/\t/evil.com", "/"),
        ("javascript:alert(1)", "/"),
        ("runs", "/"),
    ],
)
def test_safe_next(url: str | None, expected: str) -> None:
    assert safe_next(url) == expected


def test_a_verified_password_is_not_hashed_again(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP Basic sends the password with every request: scrypt runs once per password."""
    import cadenza.web.security as security

    auth = Auth.for_home(tmp_path, user="ann",
                         password_hash=hash_password("pw-long-enough", n=2**14))
    calls: list[str] = []
    real = security.verify_password
    monkeypatch.setattr(security, "verify_password",
                        lambda password, encoded: calls.append(password) or real(password, encoded))
    assert [auth.check("ann", "pw-long-enough") for _ in range(3)] == ["ann"] * 3
    assert auth.check("ann", "wrong-password") is None
    assert calls == ["pw-long-enough", "wrong-password"]
