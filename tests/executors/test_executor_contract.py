"""The executor contract (cadenza.testing.executors) on every executor: inline, threads and
processes, and dask on a LocalCluster of worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cadenza.executors import Executor, InlineExecutor, ThreadExecutor
from cadenza.executors.processes import ProcessExecutor
from cadenza.testing.executors import ExecutorContract


class TestInlineExecutor(ExecutorContract):
    def make_executor(self) -> Executor:
        return InlineExecutor()


class TestThreadExecutor(ExecutorContract):
    def make_executor(self) -> Executor:
        return ThreadExecutor(max_workers=4)


class TestProcessExecutor(ExecutorContract):
    def make_executor(self) -> Executor:
        return ProcessExecutor(max_workers=2)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    """Two Dask worker processes of one thread each, run again by Dask never."""
    pytest.importorskip("distributed")
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    yield cluster
    cluster.close()


class TestDaskExecutor(ExecutorContract):
    """On a cluster given by address, each test's executor with a client of its own."""

    running_at_once = 2

    @pytest.fixture(autouse=True)
    def _cluster(self, dask_cluster: Any) -> None:
        self.address = dask_cluster.scheduler_address

    def make_executor(self) -> Executor:
        from cadenza.executors.dask import DaskExecutor

        return DaskExecutor(address=self.address)
