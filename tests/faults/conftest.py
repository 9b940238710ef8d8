"""The stores the fault tests run against: ``workspaces`` (in-process tests, every store) and
``shared`` (tests with real `cadenza` processes, every store processes share)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.faults._harness import SHARED_STORES, STORES, Shared, workspace_maker

from cadenza.workspace import Workspace


@pytest.fixture(params=SHARED_STORES)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Shared:
    """A SQLite file in the test's home, or a PostgreSQL database given to each process as
    `cadenza --db postgresql://...`."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        return Shared(("--db", dsn), dsn)
    return Shared((), str(tmp_path / ".cadenza" / "cadenza.db"))


@pytest.fixture(params=STORES)
def workspaces(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Workspace]:
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else ""
    return workspace_maker(request.param, tmp_path, dsn)
