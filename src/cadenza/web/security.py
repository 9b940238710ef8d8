"""Who may use ``cadenza ui``: tokens, password hashes, signed sessions, the bind check."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.responses import RedirectResponse, Response

from cadenza.exceptions import CadenzaError

COOKIE = "cadenza_session"
SESSION_MAX_AGE = 7 * 24 * 3600
MIN_TOKEN_LENGTH = 8
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
            user is None
            or self.user is None
            or self.password_hash is None
            or not hmac.compare_digest(_utf8(user), _utf8(self.user))
        ):
            return None
        digest = hashlib.sha256(_utf8(f"{user}\0{secret}")).hexdigest()
        if digest in self._proven:
            return self.user
        if verify_password(secret, self.password_hash):
            self._proven.add(digest)
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
