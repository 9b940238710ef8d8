"""A real `cadenza ui` bounds what it reads: bodies (413, before reading when declared), JSON
nesting, integers and params (422), page offsets and ids (422); each answer names the limit."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.security._http import Answer, bearer, call
from tests.security.conftest import TOKEN
from tests.web._server import Server

from cadenza.web.limits import MAX_BODY_BYTES, MAX_DEPTH, MAX_PARAM_BYTES

TRIGGER = "/api/v1/pipelines/web_demo/runs"
AUTH = bearer(TOKEN)


def _rss_kib(server: Server) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _raw(server: Server, head: bytes, chunks: list[bytes]) -> bytes:
    """Send ``head`` and then ``chunks`` until the server answers; its answer's first bytes."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer) < _expected(answer):
            try:
                got = sock.recv(65536)
            except ConnectionResetError:  # pragma: no cover - the rest was lost with the reset
                break
            if not got:
                break
            answer += got
        return answer


def _expected(answer: bytes) -> int:
    """The full length of an answer whose head is ``answer``'s start."""
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(answer)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for memory")
def test_a_declared_100_mb_login_is_refused_unread(ui: Server) -> None:
    before = _rss_kib(ui)
    head = (f"POST /login HTTP/1.1\r\nHost: {urlsplit(ui.url).netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n").encode()
    answer = _raw(ui, head, [b"[" * 65536])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert str(MAX_BODY_BYTES).encode() in answer and b"100000000 bytes" in answer
    assert b"content-security-policy" in answer.lower()  # refusals carry the headers too
    assert _rss_kib(ui) - before < 20_000  # KiB: nothing like 100 MB was read
    assert call(ui.url, "GET", "/health").status == 200


def test_an_undeclared_body_is_cut_at_the_limit(ui: Server) -> None:
    head = (f"POST /login HTTP/1.1\r\nHost: {urlsplit(ui.url).netloc}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    piece = b"a" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = _raw(ui, head, [chunk] * (3 * MAX_BODY_BYTES // len(piece)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert str(MAX_BODY_BYTES).encode() in answer


def test_authenticated_bodies_are_bounded_too(ui: Server) -> None:
    big = b'{"params": {"region": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    answer = call(ui.url, "POST", TRIGGER, headers={**AUTH, "Content-Type": "application/json"},
                  body=big)
    assert answer.status == 413 and str(MAX_BODY_BYTES) in answer.detail


def _trigger(ui: Server, raw: bytes) -> Answer:
    return call(ui.url, "POST", TRIGGER, headers={**AUTH, "Content-Type": "application/json"},
                body=raw)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deep_json_is_422_naming_the_limit(ui: Server, depth: int) -> None:
    raw = b'{"params": {"region": ' + b"[" * depth + b"]" * depth + b"}}"
    answer = _trigger(ui, raw)
    assert answer.status == 422, answer.body[:300]
    assert f"deeper than {MAX_DEPTH}" in answer.detail


@pytest.mark.parametrize(("value", "said"), [
    (b"9223372036854775808", "out of range"),     # 2**63
    (b"-9223372036854775809", "out of range"),
    (b"1" * 5000, "not JSON"),                    # past Python's digit limit
    (b"NaN", "not JSON"),
    (b"Infinity", "not JSON"),
])
def test_bad_numbers_are_422(ui: Server, value: bytes, said: str) -> None:
    answer = _trigger(ui, b'{"params": {"threshold": ' + value + b"}}")
    assert answer.status == 422 and said in answer.detail, answer.body[:300]


def test_a_large_param_is_422_naming_the_limit(ui: Server) -> None:
    value = "x" * (MAX_PARAM_BYTES + 1)
    answer = call(ui.url, "POST", TRIGGER, headers=AUTH, json_body={"params": {"region": value}})
    assert answer.status == 422 and str(MAX_PARAM_BYTES) in answer.detail
    assert value not in answer.detail
    form = call(ui.url, "POST", TRIGGER, body=f"param.region={value}".encode(),
                headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 422 and str(MAX_PARAM_BYTES) in form.detail


@pytest.mark.parametrize("body", [b"[1]", b'"x"', b"{", b'{"params": [1]}',
                                  b'{"params": {}, "extra": 1}', b"\x80\x04K."])
def test_malformed_bodies_are_422(ui: Server, body: bytes) -> None:
    answer = _trigger(ui, body)
    assert answer.status == 422, (body, answer.status, answer.body[:300])
    assert answer.detail


@pytest.mark.parametrize("path", [
    "/api/v1/runs?offset=-1", "/api/v1/runs?offset=10000000001",
    "/api/v1/runs?offset=99999999999999999999999", "/api/v1/pipelines/web_demo?offset=1e9",
    "/api/v1/events?before=0", f"/api/v1/events?before={2**63}",
    "/api/v1/pipelines/web_demo/schedule?count=0", "/api/v1/pipelines/web_demo/schedule?count=201",
    "/api/v1/runs/web_demo-x/tasks/extract/attempts/99999999999999999999/log",
    "/api/v1/runs/web_demo-x/tasks/extract/attempts/0/log",
    "/api/v1/runs/web_demo-x/tasks/extract/attempts/1/log?offset=-5",
    "/runs?offset=99999999999999999999",
])
def test_page_offsets_and_numbers_are_validated(ui: Server, path: str) -> None:
    answer = call(ui.url, "GET", path, headers=AUTH)
    assert answer.status == 422, (path, answer.status, answer.body[:300])
    assert answer.detail.startswith("Bad request:")


def test_a_big_offset_within_the_limit_is_an_empty_page(ui: Server) -> None:
    answer = call(ui.url, "GET", "/api/v1/runs?offset=1000000000", headers=AUTH)
    assert answer.status == 200 and answer.json()["runs"] == []


def test_the_body_limit_is_the_documented_one(ui: Server) -> None:
    schema = call(ui.url, "GET", "/api/v1/openapi.json", headers=AUTH).json()
    trigger = schema["paths"]["/api/v1/pipelines/{name}/runs"]["post"]
    assert "413" in trigger["responses"] and "422" in trigger["responses"]
    assert json.dumps(trigger).count("64 KiB") == 1
