"""Upstream values reach a task in another process by reference (issue 15: data goes through
the artifact store, never through the runner or a cluster's scheduler): the worker loads each
input from the artifact store, or from the bytes the metadata store keeps for a small one,
checked against its hash; the runner never unpickles it. Counted with a value whose class
notes every process that unpickles it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cadenza.artifacts.memory import MemoryArtifactStore
from cadenza.artifacts.serializers import serialize
from cadenza.engine.attempt import ValueRef
from cadenza.engine.cache import sha256
from cadenza.exceptions import DamagedArtifactError

PIPELINE = '''
import os
from pathlib import Path

from cadenza import Pipeline

EFFECTS = Path(__file__).with_name("unpickled.txt")
pipe = Pipeline("marked")


class Marked:
    def __init__(self, size):
        self.payload = b"x" * size

    def __setstate__(self, state):
        with EFFECTS.open("a") as out:
            out.write(f"{os.getpid()} {len(state['payload'])}\\n")
        self.__dict__.update(state)


@pipe.task
def small():
    return Marked(100)  # kept in the metadata store


@pipe.task
def large():
    return Marked(100_000)  # an object in the artifact store


@pipe.task
def use(small, large):
    return len(small.payload) + len(large.payload)
'''


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_a_worker_loads_its_inputs_and_the_runner_never_does(tmp_path: Path,
                                                             executor: str) -> None:
    if executor == "dask":
        pytest.importorskip("distributed", reason="the dask executor needs cadenza[dask]")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "marked.py").write_text(PIPELINE)
    env = {k: v for k, v in os.environ.items()
           if k not in ("CADENZA_HOME", "CADENZA_DB", "CADENZA_ARTIFACTS")}
    runner = subprocess.Popen(
        [sys.executable, "-m", "cadenza", "run", "marked.py", "-e", executor, "-w", "2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = runner.communicate(timeout=180)
    assert runner.returncode == 0, out
    loads = [line.split() for line in (tmp_path / "unpickled.txt").read_text().splitlines()]
    assert sorted(int(size) for _, size in loads) == [100, 100_000]  # each once, by `use`
    assert str(runner.pid) not in {pid for pid, _ in loads}, (runner.pid, loads)


def test_a_reference_loads_what_its_hash_names_and_nothing_else() -> None:
    serializer, data = serialize({"rows": 3})
    small = ValueRef(sha256(data), serializer, data)
    assert small.load(MemoryArtifactStore()) == {"rows": 3}
    store = MemoryArtifactStore()
    store.put(sha256(data), data)
    assert ValueRef(sha256(data), serializer).load(store) == {"rows": 3}
    altered = ValueRef(sha256(data), serializer, data.replace(b"3", b"4"))
    with pytest.raises(DamagedArtifactError):
        altered.load(store)
