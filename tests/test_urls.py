"""URLs from outside are checked before anything is fetched (cadenza/urls.py)."""

from __future__ import annotations

import pytest

from cadenza.exceptions import CadenzaError
from cadenza.urls import UrlRefusedError, check_url


@pytest.mark.parametrize("url, why", [
    ("file:///etc/hostname", "only http:// and https://"),
    ("gopher://example.com/", "only http:// and https://"),
    ("example.com/prices", "without a scheme"),
    ("http:///prices", "names no host"),
])
def test_only_http_urls_with_a_host(url: str, why: str) -> None:
    with pytest.raises(UrlRefusedError, match=why) as info:
        check_url(url)
    assert isinstance(info.value, CadenzaError) and info.value.url == url


def test_hosts_limit_where_a_url_may_point() -> None:
    assert check_url("https://Prices.Example.com/x.csv", hosts=["prices.example.com"])
    with pytest.raises(UrlRefusedError, match=r"host 'evil\.example' is not one of the hosts"):
        check_url("https://evil.example/x.csv", hosts=["prices.example.com"])
    with pytest.raises(UrlRefusedError, match=r"\(none\)"):
        check_url("https://prices.example.com/x.csv", hosts=[])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.7",
                                  "169.254.169.254", "[::1]", "0.0.0.0"])
def test_public_only_refuses_addresses_that_are_not_global(host: str) -> None:
    with pytest.raises(UrlRefusedError, match="private, loopback or link-local"):
        check_url(f"http://{host}/latest/meta-data", public_only=True)


def test_the_path_of_a_refused_url_is_not_shown() -> None:
    with pytest.raises(UrlRefusedError) as info:
        check_url("http://127.0.0.1/hooks/T0/credential", public_only=True)
    assert "credential" not in str(info.value)
