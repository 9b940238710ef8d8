"""DNS rebinding cannot reach a real `cadenza ui`: a Host it was not told about gets 400 on
every path, /login and /health included, and a forged Host cannot pass the origin check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.security._http import bearer, call
from tests.security.conftest import DEMO, TOKEN
from tests.web._server import Server, serve

from cadenza.web.guard import Hosts


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("hosts") / ".cadenza"
    with serve(home, DEMO, TOKEN, args=["--no-scheduler", "--allowed-host", "ui.example.org"]
               ) as server:
        yield server


@pytest.mark.parametrize("path", ["/login", "/health", "/api/v1/runs", "/static/cadenza.css"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.nip.io",
                                  "localhost.evil.example", "", "[::1"])
def test_a_foreign_host_gets_400_everywhere(named: Server, path: str, host: str) -> None:
    answer = call(named.url, "GET", path, headers={"Host": host, **bearer(TOKEN)})
    assert answer.status == 400, (host, path, answer.status)
    assert "--allowed-host" in answer.detail
    assert "content-security-policy" in answer.headers


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]",
                                  "ui.example.org", "UI.example.org:443"])
def test_own_and_configured_names_pass(named: Server, host: str) -> None:
    port = urlsplit(named.url).port
    with_port = host if ":" in host.replace("[::1]", "") else f"{host}:{port}"
    answer = call(named.url, "GET", "/api/v1/runs", headers={"Host": with_port, **bearer(TOKEN)})
    assert answer.status == 200, (host, answer.body[:200])


def test_a_forged_host_cannot_vouch_for_a_forged_origin(named: Server) -> None:
    # What a rebinding page would send: its own name as both Host and Origin.
    evil = {"Host": "evil.example", "Origin": "http://evil.example", **bearer(TOKEN)}
    answer = call(named.url, "POST", "/api/v1/pipelines/web_demo/pause", headers=evil)
    assert answer.status == 400
    login = call(named.url, "POST", "/login", body=f"secret={TOKEN}".encode(), headers={
        "Host": "evil.example", "Origin": "http://evil.example",
        "Content-Type": "application/x-www-form-urlencoded"})
    assert login.status == 400 and not login.cookies


def test_hosts_for_a_bind() -> None:
    loopback = Hosts.for_bind("127.0.0.1")
    assert loopback.allows("localhost:1") and loopback.allows("[::1]:2")
    assert not loopback.allows("10.0.0.5:8080") and not loopback.allows(None)
    wildcard = Hosts.for_bind("0.0.0.0", ("ci.internal",))
    assert wildcard.allows("10.0.0.5:8080") and wildcard.allows("[fe80::1]")  # IPs: no DNS
    assert wildcard.allows("ci.internal") and not wildcard.allows("evil.example")
    assert Hosts.for_bind("192.168.1.20").names == frozenset({"192.168.1.20"})
    assert Hosts.for_bind("127.0.0.1", ("*",)).allows("anything.example")


def test_the_cli_refuses_nothing_it_should_serve(tmp_path: Path) -> None:
    with serve(tmp_path / ".cadenza", DEMO, TOKEN, args=["--no-scheduler"]) as ui:
        assert call(ui.url, "GET", "/health").status == 200  # http.client sends 127.0.0.1:port
