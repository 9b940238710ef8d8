"""URLs that come from outside (params, configuration) checked before anything is fetched or
sent: http or https only, optionally only to listed hosts, optionally never to a private,
loopback or link-local address (checked on the addresses the host resolves to, at use)."""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Iterable

from cadenza.exceptions import CadenzaError


class UrlRefusedError(CadenzaError):
    def __init__(self, message: str, *, url: str):
        super().__init__(message)
        self.url = url


def _shown(url: str) -> str:
    """The URL without its path and query, which may carry a secret (a webhook's path)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url[:60]


def check_url(url: str, *, hosts: Iterable[str] | None = None, public_only: bool = False
              ) -> str:
    """``url`` if it may be used; else UrlRefusedError saying why and what to change.

    ``hosts``: the only host names allowed (None: any). ``public_only``: refuse a host that
    resolves to a private, loopback, link-local or otherwise non-global address."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlRefusedError(
            f"URL {_shown(url)!r} is refused: only http:// and https:// URLs are fetched, not "
            f"{parts.scheme or 'a URL without a scheme'}.", url=url)
    host = parts.hostname
    if not host:
        raise UrlRefusedError(f"URL {_shown(url)!r} is refused: it names no host.", url=url)
    allowed = None if hosts is None else {h.lower() for h in hosts}
    if allowed is not None and host.lower() not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        raise UrlRefusedError(
            f"URL {_shown(url)!r} is refused: host {host!r} is not one of the hosts this "
            f"pipeline fetches from ({listed}). Add it to the pipeline's list if it is trusted.",
            url=url)
    if public_only:
        try:
            found = {str(info[4][0]) for info in socket.getaddrinfo(host, parts.port or 443)}
        except OSError as error:
            raise UrlRefusedError(f"URL {_shown(url)!r} is refused: host {host!r} does not "
                                  f"resolve ({error}).", url=url) from None
        for address in sorted(found):
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global:
                raise UrlRefusedError(
                    f"URL {_shown(url)!r} is refused: host {host!r} resolves to {address}, a "
                    "private, loopback or link-local address. Only public addresses are "
                    "allowed for this URL.", url=url)
    return url
