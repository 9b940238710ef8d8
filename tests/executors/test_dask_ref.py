"""Tasks shipped by reference to Dask workers that did not fork from the runner: each worker
loads the pipeline file once, a worker with another version of it fails the attempt without a
retry, and ship="value" runs a pipeline whose file the workers cannot read."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cadenza import Pipeline
from cadenza._loader import load_pipeline
from cadenza.testing.executors import GUARD

pytest.importorskip("distributed")

import dask
from distributed import LocalCluster

from cadenza.executors.dask import DaskExecutor

PIPELINE = '''
import os
from pathlib import Path

from cadenza import Pipeline

HERE = Path(__file__).parent
with open(HERE / "loads", "a") as f:  # one line per process that imports this file
    f.write(f"{os.getpid()}\\n")

pipe = Pipeline("shipped", defaults={"retries": 2})


def _ran(name):
    with open(HERE / "ran", "a") as f:
        f.write(f"{name} {os.getpid()}\\n")


@pipe.task
def numbers():
    _ran("numbers")
    return [1, 2, 3]


@pipe.task(map_over="numbers")
def square(numbers):
    _ran("square")
    return numbers * numbers


@pipe.task
def total(square):
    _ran("total")
    return VERSION + sum(square)


@pipe.check("total")
def positive(total):
    return total > 0


VERSION = 100
'''


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes, started by Dask's nannies: not forks of this process."""
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    yield cluster
    cluster.close()


@pytest.fixture
def executor(cluster: Any) -> Iterator[DaskExecutor]:
    executor = DaskExecutor(address=cluster.scheduler_address)
    yield executor
    executor.shutdown()


def write(folder: Path, text: str = PIPELINE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shipped.py"
    path.write_text(textwrap.dedent(text))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_task_pickled_by_reference_is_not_found_on_a_worker_that_did_not_fork(
        tmp_path: Path, executor: DaskExecutor) -> None:
    pipe = load_pipeline(str(write(tmp_path)))
    fn = pipe.tasks["numbers"].fn
    assert fn is not None and fn.__module__.startswith("cadenza_pipeline_")
    error = executor.submit(fn).exception(GUARD)
    assert isinstance(error, ModuleNotFoundError), repr(error)
    assert fn.__module__ in str(error)


def test_a_run_ships_tasks_by_reference_each_worker_loads_the_file_once(
        tmp_path: Path, executor: DaskExecutor) -> None:
    path = write(tmp_path / "code")
    pipe = load_pipeline(str(path))
    result = pipe.run(executor=executor, home=tmp_path / ".cadenza")
    assert result.ok, {n: t.error for n, t in result.tasks.items()}
    assert result.output("total") == 114
    assert result.tasks["total"].attempts[-1].checks[0]["passed"]  # the check ran there too
    ran = [line.split() for line in lines(path.parent / "ran")]
    assert sorted(name for name, _ in ran) == ["numbers", "square", "square", "square", "total"]
    assert str(os.getpid()) not in {pid for _, pid in ran}
    loads = lines(path.parent / "loads")
    # this process once, and each worker at most once, not once per task (each task runs in
    # a child forked from its worker, which loaded the file before forking)
    assert loads[0] == str(os.getpid())
    workers = set(executor._client.run(os.getpid).values())
    assert 1 <= len(loads[1:]) <= len(workers) and set(map(int, loads[1:])) <= workers
    again = pipe.run(executor=executor, home=tmp_path / ".cadenza", force=True)
    assert again.ok and lines(path.parent / "loads") == loads


def test_a_worker_with_another_version_of_the_file_fails_the_attempt_once(
        tmp_path: Path, executor: DaskExecutor) -> None:
    path = write(tmp_path / "code")
    pipe = load_pipeline(str(path))  # the runner holds this version...
    path.write_text(path.read_text().replace("VERSION = 100", "VERSION = 200"))  # ...workers this
    result = pipe.run(executor=executor, home=tmp_path / ".cadenza")
    numbers = result.tasks["numbers"]
    assert numbers.state == "failed" and len(numbers.attempts) == 1  # retries=2: not retried
    assert numbers.error is not None and "\n" not in numbers.error
    assert "this worker has another version of" in numbers.error
    assert str(path) in numbers.error and "Put the runner's version" in numbers.error
    assert not (path.parent / "ran").exists()


def test_a_worker_without_the_file_says_so_and_ship_value_runs_without_it(
        tmp_path: Path, cluster: Any) -> None:
    path = write(tmp_path / "code")
    pipe = load_pipeline(str(path))
    path.unlink()  # as on a cluster that has none of the pipeline's code
    by_reference = DaskExecutor(address=cluster.scheduler_address)
    try:
        result = pipe.run(executor=by_reference, home=tmp_path / ".cadenza")
    finally:
        by_reference.shutdown()
    error = result.tasks["numbers"].error
    assert result.tasks["numbers"].state == "failed" and error is not None
    assert "could not be loaded on this worker" in error and "ship='value'" in error
    assert len(result.tasks["numbers"].attempts) == 1
    by_value = DaskExecutor(address=cluster.scheduler_address, ship="value")
    try:
        result = pipe.run(executor=by_value, home=tmp_path / ".cadenza")
    finally:
        by_value.shutdown()
    assert result.ok, {n: t.error for n, t in result.tasks.items()}
    assert result.output("total") == 114


def test_a_pipeline_made_in_a_function_needs_ship_value(tmp_path: Path, cluster: Any) -> None:
    pipe = Pipeline("inner")
    offset = 5

    @pipe.task
    def answer() -> int:
        return 37 + offset

    by_reference = DaskExecutor(address=cluster.scheduler_address)
    try:
        result = pipe.run(executor=by_reference, home=tmp_path / ".cadenza")
    finally:
        by_reference.shutdown()
    error = result.tasks["answer"].error
    assert error is not None and "is not defined at the top of a module file" in error
    by_value = DaskExecutor(address=cluster.scheduler_address, ship="value")
    try:
        assert pipe.run(executor=by_value, home=tmp_path / ".cadenza").output("answer") == 42
    finally:
        by_value.shutdown()


GPU_PIPELINE = '''
import os

from cadenza import Pipeline

pipe = Pipeline("placed")


@pipe.task(resources={"GPU": 1})
def train():
    return os.getppid()  # the Dask worker that forked this attempt


@pipe.task
def report(train):
    return train


@pipe.task(resources={"TPU": 1})
def exotic():
    return 0
'''


def test_resources_place_a_task_on_a_worker_that_has_them(tmp_path: Path, cluster: Any) -> None:
    import subprocess
    import sys

    from distributed import Client

    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
         "--nthreads", "1", "--resources", "GPU=1", "--no-dashboard", "--name", "gpu"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with Client(cluster.scheduler_address, set_as_default=False) as client:
            client.wait_for_workers(3, timeout=GUARD)
            info = client.scheduler_info(n_workers=-1)["workers"]
            gpu = next(a for a, w in info.items() if w.get("resources", {}).get("GPU"))
            pids = client.run(os.getpid)
        pipe = load_pipeline(str(write(tmp_path / "code", GPU_PIPELINE)))
        executor = DaskExecutor(address=cluster.scheduler_address)
        try:
            for _ in range(3):  # two other workers: chance would miss it now and then
                result = pipe.run(executor=executor, home=tmp_path / ".cadenza", force=True)
                assert result.tasks["train"].state == "success"
                assert result.output("train") == pids[gpu]
        finally:
            executor.shutdown()
        error = result.tasks["exotic"].error
        assert result.tasks["exotic"].state == "failed" and error is not None
        assert "asks for resources {'TPU': 1}, which no worker" in error
        assert "GPU=1" in error and "\n" not in error
    finally:
        worker.terminate()
        worker.wait(GUARD)


@pytest.mark.parametrize("value", [{"GPU": 0}, {"GPU": True}, "GPU", {}, {1: 1}])
def test_bad_resources_are_refused_when_the_task_is_defined(value: object) -> None:
    from cadenza.exceptions import InvalidOptionError

    pipe = Pipeline("bad")
    with pytest.raises(InvalidOptionError, match=r"invalid resources=.*like \{\"GPU\": 1\}"):
        @pipe.task(resources=value)
        def train() -> int:
            return 1
