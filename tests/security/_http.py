"""Plain HTTP against a real `cadenza ui`: whatever the status, no exceptions, any header
(Host too) as the test writes it."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    """Lower-case names; a repeated header keeps its last value."""
    body: bytes
    cookies: list[str]
    """Every Set-Cookie header."""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def detail(self) -> str:
        return str(self.json()["detail"])


def call(base: str, method: str, path: str, *, headers: dict[str, str] | None = None,
         body: bytes | None = None, json_body: Any = None, source: str | None = None
         ) -> Answer:
    """One request on a fresh connection; ``headers`` may set Host; ``source`` is the address
    to send from (another loopback one, e.g. 127.0.0.2, is another client)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30,
                                      source_address=(source, 0) if source else None)
    sent = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        sent.setdefault("Content-Type", "application/json")
    try:
        conn.putrequest(method, path, skip_host="Host" in sent, skip_accept_encoding=True)
        for name, value in sent.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data,
                      response.headers.get_all("set-cookie") or [])
    finally:
        conn.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
