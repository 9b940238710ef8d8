"""Who may use ``cadenza ui``: tokens, passwords, signed sessions, CSRF and security headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from cadenza.exceptions import CadenzaError

COOKIE = "cadenza_session"
SESSION_MAX_AGE = 7 * 24 * 3600
MAX_FORM_BYTES = 1024 * 1024
MIN_TOKEN_LENGTH = 8
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_HASH_HELP = "make one with `cadenza ui --hash-password` and set it as CADENZA_UI_PASSWORD_HASH"


class UIConfigError(CadenzaError):
    """The UI's access settings are unusable or unsafe; ``.option`` names the setting."""

    def __init__(self, message: str, option: str):
        super().__init__(message)
        self.option = option


def secret_key(home: Path) -> str:
    """The install's signing key from ``home/ui_secret``, made (mode 0o600) on first use."""
    path = home / "ui_secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".ui_secret.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(secrets.token_hex(32) + "\n")
            os.chmod(tmp, 0o600)  # an odd umask may have taken away the owner's read bit
            try:
                # A hard link never replaces: when two processes race, the first key wins and
                # both read it back below. os.replace would let the last writer win instead.
                os.link(tmp, path)
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < 32:
        raise UIConfigError(
            f"The UI signing key in {str(path)!r} is {len(key)} characters long, too short to "
            "sign sessions. Delete the file and cadenza makes a new one (everyone signs in again).",
            "ui_secret",
        )
    return key


def hash_password(password: str) -> str:
    """An scrypt hash of ``password`` with a fresh salt, as ``scrypt$n$r$p$<salt>$<hash>``."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P, 32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (from `hash_password`); False if malformed."""
    parsed = _parse_hash(encoded)
    if parsed is None:
        return False
    n, r, p, salt, expected = parsed
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, digest = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return None
    # The memory bound keeps a mistyped hash from asking scrypt for gigabytes at each login.
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * r * (n + p + 2) > _SCRYPT_MAXMEM:
        return None
    if len(salt) < 8 or len(digest) < 16:
        return None
    return n, r, p, salt, digest


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        _utf8(password), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_SCRYPT_MAXMEM
    )


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who it is, and the CSRF token its unsafe requests must echo."""

    who: str
    csrf: str


@dataclass(frozen=True)
class Auth:
    """The credentials ``cadenza ui`` accepts, and the key its session cookies are signed with."""

    secret: str
    """The install's signing key (`secret_key`)."""
    token: str
    """The API and login token; generated per start when the user gave none."""
    user: str | None = None
    """The name for password logins, or None for token-only access."""
    password_hash: str | None = None
    """`hash_password`'s encoding of the user's password."""
    configured: bool = False
    """True when the token or user was given explicitly rather than generated."""

    def __post_init__(self) -> None:
        self._validate()

    def _validate(self) -> None:
        if len(self.token) < MIN_TOKEN_LENGTH:  # not shown: the token would end up in logs
            raise UIConfigError(
                f"The UI token has {len(self.token)} characters; use at least {MIN_TOKEN_LENGTH}, "
                "e.g. one from secrets.token_urlsafe(24).",
                "token",
            )
        if self.user is not None and self.password_hash is None:
            raise UIConfigError(
                f"UI user {self.user!r} has no password hash: {_HASH_HELP}.", "user"
            )
        if self.password_hash is not None and self.user is None:
            raise UIConfigError("A UI password hash is set but no user: pass --user too.", "user")
        if self.password_hash is not None and _parse_hash(self.password_hash) is None:
            raise UIConfigError(
                f"The UI password hash {self.password_hash!r} is not one cadenza made "
                "('scrypt$16384$8$1$<salt>$<hash>'). If it was set in double quotes, the shell "
                f"expanded its '$' parts: use single quotes. Or {_HASH_HELP}.",
                "password_hash",
            )

    @classmethod
    def for_home(
        cls,
        home: Path,
        *,
        token: str | None = None,
        user: str | None = None,
        password_hash: str | None = None,
    ) -> Auth:
        """The access settings for the install at ``home``, generating a token if none given."""
        return cls(
            secret=secret_key(home),
            token=secrets.token_urlsafe(24) if token is None else token,
            user=user,
            password_hash=password_hash,
            configured=token is not None or user is not None,
        )

    def check(self, user: str | None, secret: str) -> str | None:
        """Who ``secret`` proves to be: "token" for the token (any user), the user name for
        the user's password, else None."""
        if hmac.compare_digest(_utf8(secret), _utf8(self.token)):
            return "token"
        # The user name is compared first so that strangers cannot make us run scrypt at will.
        if (
            user is not None
            and self.user is not None
            and self.password_hash is not None
            and hmac.compare_digest(_utf8(user), _utf8(self.user))
            and verify_password(secret, self.password_hash)
        ):
            return self.user
        return None

    def session_cookie(self, who: str) -> str:
        """A signed cookie value for ``who``, holding a fresh CSRF token."""
        return self._serializer().dumps({"who": who, "csrf": secrets.token_urlsafe(32)})

    def read_session(self, value: str) -> Session | None:
        """The session in a cookie value, or None if forged, altered or older than 7 days."""
        try:
            data: Any = self._serializer().loads(value, max_age=SESSION_MAX_AGE)
        except BadData:
            return None
        if not isinstance(data, dict):
            return None
        who, csrf = data.get("who"), data.get("csrf")
        if isinstance(who, str) and isinstance(csrf, str) and csrf:
            return Session(who=who, csrf=csrf)
        return None

    def _serializer(self) -> URLSafeTimedSerializer:
        # Salting with the credentials ends every session when the token, user or password
        # changes, so rotating a leaked token also logs out whoever used it.
        credentials = f"{self.token}\0{self.user or ''}\0{self.password_hash or ''}"
        salt = "cadenza.ui.session." + hashlib.sha256(_utf8(credentials)).hexdigest()
        return URLSafeTimedSerializer(self.secret, salt=salt)


def check_bind(host: str, auth: Auth) -> None:
    """Refuse to serve beyond this machine unless the credentials were set on purpose."""
    if auth.configured or _is_loopback(host):
        return
    raise UIConfigError(
        f"Refusing to serve the UI on {host!r} with a generated token: beyond 127.0.0.1 the "
        "credentials must be chosen on purpose. Pass --token (or set CADENZA_UI_TOKEN), or "
        "--user with CADENZA_UI_PASSWORD_HASH, or bind to 127.0.0.1.",
        "host",
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def safe_next(url: str | None) -> str:
    """``url`` if it is a path on this site, else "/": a ``next=`` must never lead elsewhere."""
    # "//host" and "/\host" are read by browsers as other sites; they also drop tabs and
    # newlines, so "/\t/host" would become "//host".
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "/"
    return url


def login_response(auth: Auth, who: str, next_url: str, *, secure: bool) -> Response:
    """A 303 to ``next_url`` (if safe, else "/") that sets the session cookie for ``who``."""
    response = RedirectResponse(safe_next(next_url), status_code=303)
    cookie = auth.session_cookie(who)
    response.set_cookie(
        COOKIE, cookie, SESSION_MAX_AGE, path="/", secure=secure, httponly=True, samesite="strict"
    )
    return response


def logout_response() -> Response:
    """A 303 to /login that clears the session cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


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
