from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cadenza.testing.postgres import PostgresServer, PostgresUnavailableError


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh .cadenza folder for one test."""
    return tmp_path / ".cadenza"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the test session (skipped where none can run)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL tests need cadenza[postgres]")
    try:
        server = PostgresServer().start()
    except PostgresUnavailableError as missing:
        pytest.skip(str(missing))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """The DSN of a new, empty database of its own for one test."""
    return postgres_server.new_database(f"t_{uuid.uuid4().hex[:16]}")
