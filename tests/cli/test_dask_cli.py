"""`cadenza run -e dask` end to end, as a user runs it: a real `cadenza` process, the
LocalCluster it starts, or a cluster given by --dask-address / CADENZA_DASK_ADDRESS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from distributed import Client

PIPELINE = str(Path(__file__).parents[1] / "pipelines" / "counted.py")
TASKS = ["each1", "each2", "each3", "join", "left", "right", "start"]
GUARD = 300  # seconds: a guard against hangs, not a measure


def cadenza(home: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cadenza", "--home", str(home), *args],
        capture_output=True, text=True, timeout=GUARD, env={**os.environ, **(env or {})},
    )


def ran(counts: Path) -> list[tuple[str, int]]:
    return [(name, int(pid)) for name, pid in
            (line.split() for line in counts.read_text().splitlines())]


@pytest.fixture
def cluster(dask_cluster: Any) -> Any:
    """The session's cluster (tests/conftest.py): two worker processes Dask's nannies
    started, not forks of this process."""
    return dask_cluster


def test_run_e_dask_starts_a_cluster_and_runs_each_task_once(tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    done = cadenza(tmp_path / ".cadenza", "run", PIPELINE, "-e", "dask", "-w", "2", "-q",
                   "--param", f"counts={counts}")
    assert done.returncode == 0, done.stderr
    assert "success" in done.stdout
    assert sorted(name for name, _ in ran(counts)) == TASKS  # each body once


def test_dask_address_runs_on_that_cluster(tmp_path: Path, cluster: Any) -> None:
    with Client(cluster, set_as_default=False) as client:
        workers = set(client.run(os.getpid).values())
    counts = tmp_path / "counts"
    done = cadenza(tmp_path / ".cadenza", "run", PIPELINE, "--dask-address",
                   cluster.scheduler_address, "--json", "--param", f"counts={counts}")
    assert done.returncode == 0, done.stderr
    found = ran(counts)
    assert sorted(name for name, _ in found) == TASKS
    assert {pid for _, pid in found} <= workers  # forked by the cluster's workers
    again = tmp_path / "again"  # from the environment, with -e dask
    done = cadenza(tmp_path / ".cadenza", "run", PIPELINE, "-e", "dask", "-q",
                   "--param", f"counts={again}",
                   env={"CADENZA_DASK_ADDRESS": cluster.scheduler_address})
    assert done.returncode == 0, done.stderr
    assert {pid for _, pid in ran(again)} <= workers


def test_a_dask_address_with_no_scheduler_is_one_line(tmp_path: Path) -> None:
    done = cadenza(tmp_path / ".cadenza", "run", PIPELINE, "--dask-address",
                   "tcp://127.0.0.1:1", "--param", f"counts={tmp_path / 'counts'}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: Cannot reach a Dask scheduler at 'tcp://127.0.0.1:1': [Errno 111] Connection "
        "refused. Check the address (like tcp://host:8786) and that the scheduler is running."
    ]
    assert not (tmp_path / "counts").exists()
    done = cadenza(tmp_path / ".cadenza", "run", PIPELINE, "-e", "threads", "--dask-address",
                   "tcp://127.0.0.1:1")
    assert done.returncode == 2
    assert "is for the dask executor, not 'threads'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # in the environment, it is only where a Dask cluster is: other executors ignore it
    done = cadenza(tmp_path / ".cadenza", "run", PIPELINE, "-e", "threads", "-q",
                   "--param", f"counts={tmp_path / 'counts'}",
                   env={"CADENZA_DASK_ADDRESS": "tcp://127.0.0.1:1"})
    assert done.returncode == 0, done.stderr


def test_without_the_dask_extra_run_says_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['distributed'] = None\n"
            "from cadenza.cli import main; main()")
    done = subprocess.run(
        [sys.executable, "-c", code, "--home", str(tmp_path / ".cadenza"), "run", PIPELINE,
         "-e", "dask", "--param", f"counts={tmp_path / 'counts'}"],
        capture_output=True, text=True, timeout=GUARD,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: The dask executor needs dask.distributed, which is not installed here. "
        "Install it with: pip install 'cadenza[dask]'"
    ]
