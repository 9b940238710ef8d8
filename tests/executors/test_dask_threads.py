"""DaskExecutor(isolation="threads"): attempts in the Dask worker's own thread, for clusters
that cannot fork. The executor contract, less what a thread cannot do (said in each skip), and
what it does instead: a killed call is let go and runs on; a crash takes the worker with it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cadenza.exceptions import InvalidOptionError, WorkerCrashedError
from cadenza.executors import Executor, make_executor
from cadenza.testing.executors import GUARD, ExecutorContract, add, hold, segfault, started, where

pytest.importorskip("distributed")

import dask
from distributed import LocalCluster

from cadenza.executors.dask import DaskExecutor

_CANNOT_STOP = ("a call in a Dask thread cannot be stopped: a kill lets it go (its future "
                "ends at once) and it runs on in its thread to its end")
_ENDS_THE_WORKER = ("a call that ends its process ends the Dask worker itself: Dask reports "
                    "KilledWorker, without the exit code (tested below, on a cluster of its own)")


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    yield cluster
    cluster.close()


class TestDaskThreadIsolation(ExecutorContract):
    running_at_once = 2

    @pytest.fixture(autouse=True)
    def _cluster(self, dask_cluster: Any) -> None:
        self.address = dask_cluster.scheduler_address

    def make_executor(self) -> Executor:
        return DaskExecutor(address=self.address, isolation="threads")

    def test_a_call_that_ends_its_process_is_a_worker_crash(self, *args: Any) -> None:
        pytest.skip(_ENDS_THE_WORKER)

    def test_every_one_of_many_crashes_is_reported_and_frees_its_slot(self, *a: Any) -> None:
        pytest.skip(_ENDS_THE_WORKER)

    def test_a_crash_while_shutting_down_lets_the_rest_finish(self, *args: Any) -> None:
        pytest.skip(_ENDS_THE_WORKER)

    def test_no_process_that_ran_a_call_outlives_shutdown(self, *args: Any) -> None:
        pytest.skip("calls run in the Dask workers' own processes, which are the cluster's "
                    "and outlive the executor")

    def test_kill_stops_a_running_call_and_frees_its_slot(self, *args: Any) -> None:
        pytest.skip(_CANNOT_STOP)


def test_calls_run_in_the_workers_own_process_and_a_kill_lets_them_go(tmp_path: Path,
                                                                      dask_cluster: Any) -> None:
    executor = DaskExecutor(address=dask_cluster.scheduler_address, isolation="threads")
    try:
        workers = set(executor._client.run(os.getpid).values())
        assert executor.submit(where).result(GUARD)[0] in workers  # no child: the worker
        held = executor.submit(hold, str(tmp_path), "held")
        _wait(lambda: "held" in started(tmp_path))
        assert started(tmp_path)["held"] in workers
        assert executor.kill(held) is True
        assert isinstance(held.exception(GUARD), WorkerCrashedError)  # ended for the run
        assert executor.stops_calls is False
        assert executor.submit(add, 1, 2).result(GUARD) == 3  # on the other worker's thread
    finally:
        (tmp_path / "release").touch()
        executor.shutdown()


def test_a_crash_in_a_thread_takes_the_worker_and_is_a_crashed_call() -> None:
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    executor = DaskExecutor(address=cluster.scheduler_address, isolation="threads")
    try:
        error = executor.submit(segfault).exception(GUARD)
        assert isinstance(error, WorkerCrashedError), repr(error)
        assert "The Dask worker running this task died" in str(error)
        assert executor.submit(add, 2, 2).result(GUARD) == 4  # the nanny started another
    finally:
        executor.shutdown()
        cluster.close()


def test_isolation_is_checked_and_is_for_dask_only() -> None:
    with pytest.raises(InvalidOptionError, match=r"isolation='fork' is invalid: give"):
        DaskExecutor(address="tcp://127.0.0.1:1", isolation="fork")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match=r"'threads' is for the dask executor, not "
                                                 r"'processes'"):
        make_executor("processes", isolation="threads")


def _wait(done: Any) -> None:
    import time

    end = time.monotonic() + GUARD
    while not done():
        assert time.monotonic() < end, "a guard against hangs ran out"
        time.sleep(0.01)
