"""A real `cadenza ui` over an empty store, without its scheduler, shared by a module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.web._server import Server, serve

DEMO = str(Path(__file__).parents[1] / "pipelines" / "web_demo.py")
TOKEN = "security-tests-token-0123456789abcdef"


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ui") / ".cadenza"
    with serve(home, DEMO, TOKEN, args=["--no-scheduler"]) as server:
        yield server
