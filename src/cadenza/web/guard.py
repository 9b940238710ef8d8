"""The guard in front of every route of ``cadenza ui``: the Host check, body limits,
credentials (throttled), same-origin and CSRF checks, and security headers on every answer,
500s included, as pure ASGI middleware (it must see and replay bodies)."""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from cadenza.web.limits import MAX_BODY_BYTES, Throttle, Throttled, too_large
from cadenza.web.security import Auth, _utf8, is_loopback, login_response, safe_next

MAX_FORM_BYTES = MAX_BODY_BYTES
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARD = frozenset({"0.0.0.0", "::", ""})
_HASHING = threading.BoundedSemaphore(2)
"""scrypt takes 128 MiB and 0.6 s a hash: two at a time, whatever the thread pool's size."""
log = logging.getLogger("cadenza.web")


@dataclass(frozen=True)
class Hosts:
    """The names a request's ``Host`` may give: anything else is refused with 400, so that a
    DNS-rebinding page (a name of the attacker's, resolving to this machine) cannot reach even
    /login. Ports are not compared: only the name carries the attack."""

    names: frozenset[str]
    """Lower-case host names and addresses (IPv6 without brackets); "*" allows any."""
    any_address: bool = False
    """Also allow any IP address literal (a wildcard bind): rebinding needs a name."""

    @classmethod
    def for_bind(cls, host: str, extra: tuple[str, ...] = ()) -> Hosts:
        """The bound address, its loopback names, and ``extra`` (``--allowed-host``)."""
        bound = host.strip("[]").lower()
        names = {bound, *(name.strip("[]").lower() for name in extra)}
        if is_loopback(bound) or bound in _WILDCARD:
            names |= {"localhost", "127.0.0.1", "::1"}
        if bound in _WILDCARD:
            names.add(socket.gethostname().lower())
        return cls(frozenset(names - {""}), any_address=bound in _WILDCARD)

    def allows(self, header: str | None) -> bool:
        if "*" in self.names:
            return True
        if not header:
            return False
        try:
            name = urlsplit(f"//{header}").hostname
        except ValueError:
            return False
        if name is None:
            return False
        if name in self.names:
            return True
        if self.any_address:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return False
            return True
        return False


async def verify(auth: Auth, throttle: Throttle, client: str, user: str | None,
                 secret: str) -> str | None:
    """`Auth.check` for a server: throttled per client (raises `Throttled`), and scrypt in a
    worker thread, never on the event loop."""
    wait = throttle.wait(client)
    if wait:
        raise Throttled(wait)
    if auth.costly(user, secret):
        who = await run_in_threadpool(_hashing_check, auth, user, secret)
    else:
        who = auth.check(user, secret)
    if who is None:
        throttle.failed(client)
    else:
        throttle.succeeded(client)
    return who


def _hashing_check(auth: Auth, user: str | None, secret: str) -> str | None:
    with _HASHING:
        return auth.check(user, secret)


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class Guard:
    """ASGI middleware: the Host check, body limits, credentials, same-origin and CSRF checks,
    and security headers.

    ``hosts`` None checks no Host (in-process use; `cadenza ui` always passes one). A body
    declared larger than `MAX_BODY_BYTES` is refused before anything else; an unsafe request
    that gets past the credentials has its body read (up to the limit) and replayed to the app.
    Paths in ``allow`` (exact) and under ``allow_prefixes`` (without ".." segments) are open.
    On GET, the query parameter ``token`` is reserved for Jupyter-style login links. Every
    credential check counts against the client's `Throttle` (429 with Retry-After).
    On success ``request.state.who`` names who is signed in and ``request.state.csrf`` holds
    the session's CSRF token ("" for header credentials). Websockets need a header or cookie
    credential and a same-origin Origin, or are closed before accept with code 4401 or 4403
    (4400 for a wrong Host). Lifespan events pass through untouched. An exception from the app
    is logged and answered 500, with the headers.
    """

    def __init__(
        self,
        app: ASGIApp,
        auth: Auth,
        *,
        hosts: Hosts | None = None,
        throttle: Throttle | None = None,
        allow: frozenset[str] = frozenset({"/health", "/login"}),
        allow_prefixes: tuple[str, ...] = ("/static/",),
    ) -> None:
        self.app = app
        self.auth = auth
        self.hosts = hosts
        self.throttle = throttle if throttle is not None else Throttle()
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
        started: list[bool] = []
        send = _with_security_headers(send, started)
        try:
            receive, response = await self._check(conn, scope, receive)
            if response is None:
                await self.app(scope, receive, send)
            else:
                await response(scope, receive, send)
        except Exception:
            log.exception("cadenza ui: %s %s failed", scope["method"], scope["path"])
            if not started:
                await _deny(500, "internal error: the server's log has the details; "
                                 "please report it.")(scope, receive, send)

    async def _check(self, conn: HTTPConnection, scope: Scope, receive: Receive
                     ) -> tuple[Receive, Response | None]:
        """The ``receive`` to pass on (replaying a read body) and a refusal, if any."""
        if self.hosts is not None and not self.hosts.allows(conn.headers.get("host")):
            return receive, _deny(400, f"Host {conn.headers.get('host')!r} is not one this "
                                       "server answers to; start cadenza ui with "
                                       "--allowed-host NAME to add it.")
        unsafe = scope["method"] not in _SAFE_METHODS
        if unsafe:
            declared = _content_length(conn.headers)
            if declared is not None and declared > MAX_BODY_BYTES:
                return receive, _deny(413, str(too_large(declared)))
        if unsafe and not _same_origin(conn):
            return receive, _deny(
                403, "cross-origin request refused: Origin/Referer is not this site.")
        client = client_of(scope)
        cookie = conn.cookies.get(self.auth.cookie)
        session = self.auth.read_session(cookie) if cookie else None
        who: str | None
        try:
            if self._allowed(scope["path"]):
                _set_state(scope, session.who if session else None,
                           session.csrf if session else "")
                return await _buffered(receive) if unsafe else (receive, None)
            if scope["method"] == "GET" and "token" in conn.query_params:
                # Jupyter-style links: trade the token for a cookie, drop it from the address.
                who = await verify(self.auth, self.throttle, client, None,
                                   conn.query_params["token"])
                if who is None:
                    return receive, _unauthorized(conn)
                target = _path_and_query(scope, drop="token")
                secure = scope["scheme"] == "https"
                return receive, login_response(self.auth, "token", target, secure=secure)
            if "authorization" in conn.headers:
                # No CSRF token here: only scripts set these headers, and without CORS no other
                # site's script may. Browsers do keep Basic credentials, but only after a Basic
                # challenge, and we only ever send a Bearer one. The Origin check above ran.
                who = await self._from_header(client, conn.headers["authorization"])
                if who is None:
                    return receive, _unauthorized(conn)
                _set_state(scope, who, "")
                return await _buffered(receive) if unsafe else (receive, None)
        except Throttled as exc:
            return receive, _deny(429, str(exc), {"Retry-After": str(exc.retry_after)})
        if session is None:
            return receive, _unauthorized(conn)
        _set_state(scope, session.who, session.csrf)
        if not unsafe:
            return receive, None
        body = await _read_body(receive)
        if body is None:
            return receive, _deny(413, str(too_large()))
        return _replay(body, receive), _check_csrf(scope, body, session.csrf)

    def _allowed(self, path: str) -> bool:
        if path in self.allow:
            return True
        # "/static/../api" must not count as static, however the ".." was spelled on the wire.
        segments = path.replace("\\", "/").split("/")
        return path.startswith(self.allow_prefixes) and ".." not in segments

    async def _from_header(self, client: str, value: str) -> str | None:
        scheme, _, credentials = value.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return await verify(self.auth, self.throttle, client, None, credentials)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, colon, password = decoded.partition(":")
            if colon:
                return await verify(self.auth, self.throttle, client, user, password)
        self.throttle.failed(client)
        return None

    async def _websocket(
        self, conn: HTTPConnection, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if self.hosts is not None and not self.hosts.allows(conn.headers.get("host")):
            await WebSocketClose(4400)(scope, receive, send)
            return
        who: str | None = None
        csrf = ""
        try:
            if "authorization" in conn.headers:
                who = await self._from_header(client_of(scope), conn.headers["authorization"])
            elif (session := self.auth.read_session(
                    conn.cookies.get(self.auth.cookie, ""))) is not None:
                who, csrf = session.who, session.csrf
        except Throttled:
            who = None
        if not _same_origin(conn) or who is None:
            await WebSocketClose(4403 if who else 4401)(scope, receive, send)
            return
        _set_state(scope, who, csrf)
        await self.app(scope, receive, send)


def _set_state(scope: Scope, who: str | None, csrf: str) -> None:
    state = scope.setdefault("state", {})
    state["who"] = who
    state["csrf"] = csrf


def _with_security_headers(send: Send, started: list[bool]) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(True)
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                if name == "Content-Security-Policy" and "sandbox" in headers.get(name, ""):
                    continue  # a stricter one of its own: an artifact opened (web/preview.py)
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


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


async def _buffered(receive: Receive) -> tuple[Receive, Response | None]:
    """Read the body (at most `MAX_BODY_BYTES`, else 413) and a ``receive`` that replays it."""
    body = await _read_body(receive)
    if body is None:
        return receive, _deny(413, str(too_large()))
    return _replay(body, receive), None


def _check_csrf(scope: Scope, body: bytes, expected: str) -> Response | None:
    """A refusal unless a cookie-borne unsafe request echoes the session's CSRF token, in the
    X-CSRF-Token header or the ``csrf_token`` field of its (already buffered) form body."""
    headers = Headers(scope=scope)
    given = headers.get("x-csrf-token")
    content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if given is None and content_type == "application/x-www-form-urlencoded":
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        given = fields.get("csrf_token", [None])[0]
    if given is None or not hmac.compare_digest(_utf8(given), _utf8(expected)):
        return _deny(
            403, "CSRF token missing or wrong: send the page's token as X-CSRF-Token or csrf_token."
        )
    return None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None past `MAX_BODY_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY_BYTES:
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


def _deny(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


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
