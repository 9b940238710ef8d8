"""Who may use ``cadenza ui``: tokens, password hashes, signed sessions that logout ends,
the bind check."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.responses import RedirectResponse, Response

from cadenza._files import write_once
from cadenza.exceptions import CadenzaError

COOKIE = "cadenza_session"
"""The session cookie's name; `cookie_name` adds the port the UI listens on."""
SESSION_MAX_AGE = 7 * 24 * 3600
MAX_SESSIONS = 10_000
"""Live sessions kept at most; past it the one that expires first is ended."""
MIN_TOKEN_LENGTH = 8
"""The shortest token accepted on a loopback address."""
MIN_PUBLIC_TOKEN_LENGTH = 32
"""The shortest token accepted on any other address."""
# OWASP's minimum for scrypt (N=2^17, r=8, p=1) takes 128 MiB per hash: the cap leaves room.
# Hashes made with other parameters (16384 before) keep verifying: each carries its own.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**17, 8, 1
_SCRYPT_MAXMEM = 256 * 1024 * 1024
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
    key = write_once(path, lambda: (secrets.token_hex(32) + "\n").encode(), 0o600)
    if len(key) < 32:
        raise UIConfigError(
            f"The UI signing key in {str(path)!r} is {len(key)} characters long, too short to "
            "sign sessions. Delete the file and cadenza makes a new one (everyone signs in again).",
            "ui_secret",
        )
    return key


def hash_password(password: str, *, n: int = _SCRYPT_N) -> str:
    """An scrypt hash of ``password`` with a fresh salt, as ``scrypt$n$r$p$<salt>$<hash>``.
    ``n`` below the default is for tests, which would otherwise spend 0.6 s per hash."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, _SCRYPT_R, _SCRYPT_P, 32)
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


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
    """A signed-in browser: who it is, the CSRF token its unsafe requests must echo, and the
    id that `Sessions` keeps while it lasts."""

    who: str
    csrf: str
    sid: str = ""


class Sessions:
    """The ids of the sessions that have not ended, kept in a file (``home/ui_sessions``, mode
    0o600) so that logout ends a session for good, across restarts with the same token too.

    A cookie is honoured only while its id is listed; logout removes it. The file is read
    again whenever it changes, so two UIs on one home see each other's logouts."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._live: dict[str, float] = {}
        """Session id -> when it expires (Unix time)."""
        self._seen: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def start(self) -> str:
        """A new session id, listed until `SESSION_MAX_AGE` from now or its `end`."""
        sid = secrets.token_urlsafe(18)
        with self._lock:
            self._reload()
            now = time.time()
            live = {k: v for k, v in self._live.items() if v > now}
            while len(live) >= MAX_SESSIONS:
                del live[min(live, key=live.__getitem__)]
            live[sid] = now + SESSION_MAX_AGE
            self._save(live)
        return sid

    def alive(self, sid: str) -> bool:
        with self._lock:
            self._reload()
            expires = self._live.get(sid)
        return expires is not None and expires > time.time()

    def end(self, sid: str) -> None:
        with self._lock:
            self._reload()
            if sid in self._live:
                self._save({k: v for k, v in self._live.items() if k != sid})

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._live, self._seen = {}, None
            return
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return
        live: dict[str, float] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            sid, _, expires = line.partition(" ")
            try:
                live[sid] = float(expires)
            except ValueError:  # a damaged line ends that session, nothing else
                continue
        self._live, self._seen = live, seen

    def _save(self, live: dict[str, float]) -> None:
        self._live = live
        if self.path is None:
            return
        text = "".join(f"{sid} {expires:.0f}\n" for sid, expires in live.items())
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.path)
        stat = self.path.stat()
        self._seen = (stat.st_mtime_ns, stat.st_size)


def cookie_name(port: int | None) -> str:
    """The session cookie's name for a UI on ``port``: two UIs on one host (cookies ignore
    ports) then keep a session each instead of overwriting each other's."""
    return COOKIE if port is None else f"{COOKIE}_{port}"


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
    cookie: str = COOKIE
    """The session cookie's name (`cookie_name`)."""
    sessions: Sessions = field(default_factory=lambda: Sessions(None), compare=False,
                               repr=False)
    """The sessions not yet ended; in memory unless `for_home` made it."""
    _proven: set[str] = field(default_factory=set, compare=False, repr=False)
    """Digests of user:password pairs scrypt has verified: HTTP Basic sends the password with
    every request, and 50 ms of scrypt each time would stall the server."""

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
                "('scrypt$131072$8$1$<salt>$<hash>'). If it was set in double quotes, the shell "
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
        port: int | None = None,
    ) -> Auth:
        """The access settings for the install at ``home``, generating a token if none given;
        ``port`` names the session cookie (`cookie_name`)."""
        return cls(
            secret=secret_key(home),
            token=secrets.token_urlsafe(24) if token is None else token,
            user=user,
            password_hash=password_hash,
            configured=token is not None or user is not None,
            cookie=cookie_name(port),
            sessions=Sessions(home / "ui_sessions"),
        )

    def check(self, user: str | None, secret: str) -> str | None:
        """Who ``secret`` proves to be: "token" for the token (any user), the user name for
        the user's password, else None. May run scrypt (`costly` says when): call it from a
        worker thread in a server."""
        if hmac.compare_digest(_utf8(secret), _utf8(self.token)):
            return "token"
        if user is None or self.user is None or self.password_hash is None:
            return None
        if not hmac.compare_digest(_utf8(user), _utf8(self.user)):
            # An unknown name costs one scrypt like a known one: the time taken must not tell
            # which names exist.
            verify_password(secret, _dummy_of(self.password_hash))
            return None
        if self._digest(user, secret) in self._proven:
            return self.user
        if verify_password(secret, self.password_hash):
            self._proven.add(self._digest(user, secret))
            return self.user
        return None

    def costly(self, user: str | None, secret: str) -> bool:
        """Whether `check` would run scrypt for these credentials."""
        if user is None or self.password_hash is None:
            return False
        if hmac.compare_digest(_utf8(secret), _utf8(self.token)):
            return False
        return self._digest(user, secret) not in self._proven

    @staticmethod
    def _digest(user: str, secret: str) -> str:
        return hashlib.sha256(_utf8(f"{user}\0{secret}")).hexdigest()

    def session_cookie(self, who: str) -> str:
        """A signed cookie value for ``who`` with a fresh CSRF token and a new session id."""
        return self._serializer().dumps(
            {"who": who, "csrf": secrets.token_urlsafe(32), "sid": self.sessions.start()})

    def read_session(self, value: str) -> Session | None:
        """The session in a cookie value, or None if forged, altered, older than 7 days or
        ended (logged out)."""
        try:
            data: Any = self._serializer().loads(value, max_age=SESSION_MAX_AGE)
        except BadData:
            return None
        if not isinstance(data, dict):
            return None
        who, csrf, sid = data.get("who"), data.get("csrf"), data.get("sid")
        if not (isinstance(who, str) and isinstance(csrf, str) and isinstance(sid, str)):
            return None
        if csrf and sid and self.sessions.alive(sid):
            return Session(who=who, csrf=csrf, sid=sid)
        return None

    def end_session(self, value: str) -> None:
        """End the session in a cookie value (logout); nothing if it is not a live one."""
        session = self.read_session(value)
        if session is not None:
            self.sessions.end(session.sid)

    def _serializer(self) -> URLSafeTimedSerializer:
        # Salting with the credentials ends every session when the token, user or password
        # changes, so rotating a leaked token also logs out whoever used it.
        credentials = f"{self.token}\0{self.user or ''}\0{self.password_hash or ''}"
        salt = "cadenza.ui.session." + hashlib.sha256(_utf8(credentials)).hexdigest()
        return URLSafeTimedSerializer(self.secret, salt=salt)


def _dummy_of(encoded: str) -> str:
    """A hash with ``encoded``'s cost that no password matches."""
    n, r, p = encoded.split("$")[1:4]
    return f"scrypt${n}${r}${p}${'00' * 16}${'00' * 32}"


def check_bind(host: str, auth: Auth) -> None:
    """Refuse to serve beyond this machine unless the credentials were set on purpose and
    are strong enough: a token of `MIN_PUBLIC_TOKEN_LENGTH` and a password that is not empty.
    (The empty-password check runs scrypt once.)"""
    if is_loopback(host):
        return
    if not auth.configured:
        raise UIConfigError(
            f"Refusing to serve the UI on {host!r} with a generated token: beyond 127.0.0.1 "
            "the credentials must be chosen on purpose. Pass --token-file (or set "
            "CADENZA_UI_TOKEN), or --user with CADENZA_UI_PASSWORD_HASH, or bind to 127.0.0.1.",
            "host",
        )
    if len(auth.token) < MIN_PUBLIC_TOKEN_LENGTH:  # not shown: the token would end up in logs
        raise UIConfigError(
            f"Refusing to serve the UI on {host!r} with a token of {len(auth.token)} "
            f"characters: beyond 127.0.0.1 use at least {MIN_PUBLIC_TOKEN_LENGTH}, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
            "token",
        )
    if auth.password_hash is not None and verify_password("", auth.password_hash):
        raise UIConfigError(
            f"Refusing to serve the UI on {host!r}: the password of user {auth.user!r} is "
            f"empty. {_HASH_HELP[0].upper()}{_HASH_HELP[1:]} for a real password.",
            "password_hash",
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is this machine only."""
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
    """A 303 to ``next_url`` (if safe, else "/") that sets a new session cookie for ``who``."""
    response = RedirectResponse(safe_next(next_url), status_code=303)
    cookie = auth.session_cookie(who)
    response.set_cookie(
        auth.cookie, cookie, SESSION_MAX_AGE, path="/", secure=secure, httponly=True,
        samesite="strict",
    )
    return response


def logout_response(auth: Auth, cookie: str | None = None) -> Response:
    """A 303 to /login that ends the session in ``cookie`` (if any) and clears the cookie."""
    if cookie:
        auth.end_session(cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.cookie, path="/", httponly=True, samesite="strict")
    return response
