from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cadenza.testing.artifacts import MotoS3
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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    """An S3 API (moto's server) on 127.0.0.1 for the test session; make a bucket per test
    with ``.bucket()`` (skipped where cadenza[s3] or moto[server] is missing)."""
    pytest.importorskip("s3fs", reason="S3 needs cadenza[s3]")
    pytest.importorskip("moto.server", reason="the local S3 server needs moto[server]")
    from cadenza.testing.artifacts import moto_s3

    with moto_s3() as server:
        yield server


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """A Dask LocalCluster of two worker processes (one thread each) that Dask's nannies
    started, so not forks of this process; allowed-failures 0, as clusters cadenza starts
    (skipped where cadenza[dask] is missing)."""
    pytest.importorskip("distributed", reason="the dask executor needs cadenza[dask]")
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    try:
        yield cluster
    finally:
        cluster.close()
