"""The guard in front of every route of ``cadenza ui``: credentials, same-origin and CSRF
checks, and security headers, as pure ASGI middleware (it must see and replay form bodies)."""

from __future__ import annotations

import base64
import binascii
import hmac
import html
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from cadenza.web.security import COOKIE, Auth, _utf8, login_response, safe_next

MAX_FORM_BYTES = 1024 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Guard:
    """ASGI middleware: credentials, same-origin and CSRF checks, and security headers.

    Paths in ``allow`` (exact) and under ``allow_prefixes`` (without ".." segments) are open.
    On GET, the query parameter ``token`` is reserved for Jupyter-style login links.
    On success ``request.state.who`` names who is signed in and ``request.state.csrf`` holds
    the session's CSRF token ("" for header credentials). Websockets need a header or cookie
    credential and a same-origin Origin, or are closed before accept with code 4401 or 4403.
    Lifespan events pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        auth: Auth,
        *,
        allow: frozenset[str] = frozenset({"/health", "/login"}),
        allow_prefixes: tuple[str, ...] = ("/static/",),
    ) -> None:
        self.app = app
        self.auth = auth
        self.allow = allow
        self.allow_prefixes = allow_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        if scope["type"] == "websocket":
            await self._websocket(conn, scope, receive, send)
            return
        send = _with_security_headers(send)
        unsafe = scope["method"] not in _SAFE_METHODS
        cookie = conn.cookies.get(COOKIE)
        session = self.auth.read_session(cookie) if cookie else None
        response: Response | None = None
        if unsafe and not _same_origin(conn):
            response = _deny(403, "cross-origin request refused: Origin/Referer is not this site.")
        elif self._allowed(scope["path"]):
            _set_state(scope, session.who if session else None, session.csrf if session else "")
        elif scope["method"] == "GET" and "token" in conn.query_params:
            # Jupyter-style links: trade the token for a cookie and drop it from the address bar.
            if self.auth.check(None, conn.query_params["token"]) is None:
                response = _unauthorized(conn)
            else:
                target = _path_and_query(scope, drop="token")
                secure = scope["scheme"] == "https"
                response = login_response(self.auth, "token", target, secure=secure)
        elif "authorization" in conn.headers:
            # No CSRF token here: only scripts set these headers, and without CORS no other
            # site's script may. Browsers do keep Basic credentials, but only after a Basic
            # challenge, and we only ever send a Bearer one. The Origin check above still runs.
            who = self._from_header(conn.headers["authorization"])
            if who is None:
                response = _unauthorized(conn)
            else:
                _set_state(scope, who, "")
        elif session is None:
            response = _unauthorized(conn)
        else:
            if unsafe:
                receive, response = await _check_csrf(scope, receive, session.csrf)
            _set_state(scope, session.who, session.csrf)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _allowed(self, path: str) -> bool:
        if path in self.allow:
            return True
        # "/static/../api" must not count as static, however the ".." was spelled on the wire.
        segments = path.replace("\\", "/").split("/")
        return path.startswith(self.allow_prefixes) and ".." not in segments

    def _from_header(self, value: str) -> str | None:
        scheme, _, credentials = value.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return self.auth.check(None, credentials)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            user, colon, password = decoded.partition(":")
            return self.auth.check(user, password) if colon else None
        return None

    async def _websocket(
        self, conn: HTTPConnection, scope: Scope, receive: Receive, send: Send
    ) -> None:
        who: str | None = None
        csrf = ""
        if "authorization" in conn.headers:
            who = self._from_header(conn.headers["authorization"])
        elif (session := self.auth.read_session(conn.cookies.get(COOKIE, ""))) is not None:
            who, csrf = session.who, session.csrf
        if not _same_origin(conn) or who is None:
            await WebSocketClose(4403 if who else 4401)(scope, receive, send)
            return
        _set_state(scope, who, csrf)
        await self.app(scope, receive, send)


def _set_state(scope: Scope, who: str | None, csrf: str) -> None:
    state = scope.setdefault("state", {})
    state["who"] = who
    state["csrf"] = csrf


def _with_security_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                headers[name] = value
        await send(message)

    return send_with_headers


def _origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower-cased and without a default port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


def _same_origin(conn: HTTPConnection) -> bool:
    """Whether the Origin (else the Referer) names this site; true when neither is sent."""
    # The own origin comes from the Host header and the scope's scheme: behind a TLS proxy,
    # run uvicorn with --proxy-headers so that the scheme says https.
    scheme = {"ws": "http", "wss": "https"}.get(conn.scope["scheme"], conn.scope["scheme"])
    own = _origin_of(f"{scheme}://{conn.headers.get('host', '')}")
    claimed = conn.headers.get("origin", conn.headers.get("referer"))
    if claimed is None:
        return True
    return own is not None and _origin_of(claimed) == own


async def _check_csrf(
    scope: Scope, receive: Receive, expected: str
) -> tuple[Receive, Response | None]:
    """Check a cookie-borne unsafe request's CSRF token, from the header or the form body.

    Returns the ``receive`` to pass on (replaying a buffered body) and a refusal, if any.
    """
    headers = Headers(scope=scope)
    given = headers.get("x-csrf-token")
    content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if given is None and content_type == "application/x-www-form-urlencoded":
        body = await _read_body(receive)
        if body is None:
            return receive, _deny(413, f"form body larger than {MAX_FORM_BYTES} bytes refused.")
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        given = fields.get("csrf_token", [None])[0]
        receive = _replay(body, receive)
    if given is None or not hmac.compare_digest(_utf8(given), _utf8(expected)):
        return receive, _deny(
            403, "CSRF token missing or wrong: send the page's token as X-CSRF-Token or csrf_token."
        )
    return receive, None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None past `MAX_FORM_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_FORM_BYTES:
            return None
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then defers to the server (e.g. disconnects)."""
    pending = [body]

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replay


def _path_and_query(scope: Scope, *, drop: str) -> str:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    query = [
        (k, v)
        for k, v in parse_qsl(scope["query_string"].decode("utf-8", "replace"), True)
        if k != drop
    ]
    return path + ("?" + urlencode(query) if query else "")


def _deny(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)


def _unauthorized(conn: HTTPConnection) -> Response:
    challenge = {"WWW-Authenticate": "Bearer"}
    if "text/html" in conn.headers.get("accept", ""):
        login = "/login?" + urlencode(
            {"next": safe_next(_path_and_query(conn.scope, drop="token"))}
        )
        page = (
            "<!doctype html><title>Sign in - cadenza</title>"
            f'<p>Please <a href="{html.escape(login)}">sign in</a> to use cadenza.</p>'
        )
        return HTMLResponse(page, status_code=401, headers=challenge)
    detail = "not signed in: send 'Authorization: Bearer <token>' or sign in at /login."
    return JSONResponse({"detail": detail}, status_code=401, headers=challenge)
