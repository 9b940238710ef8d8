"""DaskExecutor beyond the contract: the cluster it starts, the warm pool each worker keeps, a
Dask worker that dies mid-call, children that die with their worker, and a cluster that would
run an attempt twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cadenza.exceptions import WorkerCrashedError
from cadenza.testing.executors import GUARD, add, hold, started, where

pytest.importorskip("distributed")

import dask
from distributed import LocalCluster

from cadenza.executors.dask import DaskExecutor


def kill_worker() -> None:
    """From the forked child: SIGKILL the Dask worker process that forked it."""
    os.kill(os.getppid(), signal.SIGKILL)
    signal.pause()  # the parent-death signal ends this child


def parent_and_pid() -> tuple[int, int]:
    return os.getppid(), os.getpid()


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_cluster_it_starts_runs_calls_in_worker_processes_and_stops_with_it() -> None:
    executor = DaskExecutor(n_workers=1)
    try:
        assert executor.threads == 1 and executor.max_workers == 16
        assert executor.allowed_failures == 0
        pid, _ = executor.submit(where).result(GUARD)
        assert pid != os.getpid()
        assert executor.submit(add, 2, 2).result(GUARD) == 4
        workers = executor._client.run(os.getpid)
    finally:
        executor.shutdown()
    assert executor._cluster.status.name == "closed"
    for worker in workers.values():
        assert _gone(worker)


def test_calls_run_in_a_warm_child_of_their_worker_which_a_kill_replaces(
        tmp_path: Path) -> None:
    executor = DaskExecutor(n_workers=1)
    try:
        worker = next(iter(executor._client.run(os.getpid).values()))
        seen = {executor.submit(parent_and_pid).result(GUARD) for _ in range(5)}
        assert len(seen) == 1  # one thread: one child, forked once and reused
        ((parent, child),) = seen
        assert parent == worker
        held = executor.submit(hold, str(tmp_path), "held")
        assert _wait_started(tmp_path)["held"] == child
        assert executor.kill(held) is True
        assert isinstance(held.exception(GUARD), WorkerCrashedError)
        _wait(lambda: _gone(child))
        parent, replacement = executor.submit(parent_and_pid).result(GUARD)
        assert parent == worker and replacement != child
    finally:
        (tmp_path / "release").touch()
        executor.shutdown()
    _wait(lambda: _gone(replacement))


def test_a_dask_worker_that_dies_mid_call_is_a_crash_and_takes_its_child(tmp_path: Path) -> None:
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    executor = DaskExecutor(address=cluster.scheduler_address)
    try:
        held = executor.submit(hold, str(tmp_path), "held")
        child = _wait_started(tmp_path)["held"]
        worker = next(iter(executor._client.run(os.getpid).values()))
        os.kill(worker, signal.SIGKILL)
        error = held.exception(GUARD)
        assert isinstance(error, WorkerCrashedError), repr(error)
        assert "The Dask worker running this task died" in str(error)
        _wait(lambda: _gone(child))  # the parent-death signal: no orphan runs on
        # the nanny starts a new worker, and the executor goes on using it
        assert executor.submit(add, 1, 2).result(GUARD) == 3
        crashed = executor.submit(kill_worker)
        assert isinstance(crashed.exception(GUARD), WorkerCrashedError)
    finally:
        (tmp_path / "release").touch()
        executor.shutdown(wait=False)
        cluster.close()


RUNNER = """
import sys, time
from cadenza.executors.dask import DaskExecutor
from cadenza.testing.executors import hold
executor = DaskExecutor(address=sys.argv[1])
executor.submit(hold, sys.argv[2], "held")
time.sleep(600)
"""


def test_the_call_of_a_runner_killed_with_sigkill_is_killed_on_its_worker(
        tmp_path: Path) -> None:
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, cluster.scheduler_address,
                               str(tmp_path)])
    try:
        child = _wait_started(tmp_path)["held"]
        runner.kill()
        runner.wait(GUARD)
        _wait(lambda: _gone(child))  # the scheduler released its task: the plugin killed it
        executor = DaskExecutor(address=cluster.scheduler_address)
        try:  # the worker lives on, and its thread is free
            assert executor.submit(add, 1, 2).result(GUARD) == 3
        finally:
            executor.shutdown()
    finally:
        (tmp_path / "release").touch()
        runner.kill()
        runner.wait(GUARD)
        cluster.close()


def test_a_cluster_that_runs_tasks_again_is_warned_of() -> None:
    with dask.config.set({"distributed.scheduler.allowed-failures": 2}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    try:
        with pytest.warns(UserWarning, match=r"allowed-failures=2\), so a task that kills"):
            executor = DaskExecutor(address=cluster.scheduler_address)
        assert executor.allowed_failures == 2
        executor.shutdown()
    finally:
        cluster.close()


def _wait_started(folder: Path) -> dict[str, int]:
    _wait(lambda: bool(started(folder)))
    return started(folder)


def _wait(done: Callable[[], bool]) -> None:
    end = time.monotonic() + GUARD
    while not done():
        assert time.monotonic() < end, "a guard against hangs ran out"
        time.sleep(0.01)



NAPS = """
import sys, time
from pathlib import Path
from cadenza import Pipeline
from cadenza.executors.dask import DaskExecutor

pipe = Pipeline("naps")
for i in range(8):
    exec(f"@pipe.task\\ndef nap{i}():\\n    time.sleep(0.05)")

if __name__ == "__main__":
    executor = DaskExecutor(n_workers=2, threads_per_worker=2)
    try:
        print(pipe.run(executor=executor, home=Path(sys.argv[1])).state)
    finally:
        executor.shutdown(wait=False)
"""


def test_a_fresh_worker_with_two_threads_forks_no_child_while_it_imports(
        tmp_path: Path) -> None:
    """A program runs a pipeline on a new cluster of two workers of two threads: each
    worker's first two calls come at once, one thread forking the pool while the other may
    still import. A child forked in the middle of an import waited forever for its module's
    lock (seen in benchmarks/on_dask.py --shape sleep32; this test does not always meet it)."""
    (tmp_path / "naps.py").write_text(NAPS)
    done = subprocess.run([sys.executable, str(tmp_path / "naps.py"), str(tmp_path / "home")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=GUARD)
    assert done.stdout.split()[-1:] == ["success"], done.stdout + done.stderr[-2000:]
