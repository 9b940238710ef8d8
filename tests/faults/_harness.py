"""Helpers for the claim fault tests: pipelines whose task bodies note each execution in a
side-effect file, real `cadenza` processes, and the checks every test makes of the store.

A body appends ``<run id> <task> <pid>`` to the side-effect file when it starts (one ``write``
of a short line to a file opened for appending: whole lines, even from many processes), so a
test counts executions per task and per runner process, and compares them with the attempts
the store recorded. The checks take a MetadataStore, so the same tests can run against any
store a runner can share.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cadenza.store.base import MetadataStore
from cadenza.store.open import open_store
from cadenza.workspace import Workspace

GUARD = 60.0
"""Seconds a wait may take before the test fails: a guard against hangs, not a timing goal."""

FAN = '''
import os
import time
from cadenza import Pipeline, ctx

pipe = Pipeline("fan")


def body(name):
    def task():
        with open({effects!r}, "a") as out:
            out.write(f"{{ctx.run_id}} {{name}} {{os.getpid()}}\\n")
        if os.path.exists({fail!r}):
            raise RuntimeError("told to fail")
        time.sleep({sleep!r})
        return name
    task.__name__ = task.__qualname__ = name
    return task


for i in range({tasks}):
    pipe.task(cache=False, name=f"t{{i:03d}}")(body(f"t{{i:03d}}"))
'''

def chain(tasks: int) -> str:
    """A pipeline template of ``tasks`` tasks in a line, each taking the one before."""
    head = """
import os
import time
from cadenza import Pipeline, ctx

pipe = Pipeline("chain")


def note(name):
    with open({effects!r}, "a") as out:
        out.write(f"{{ctx.run_id}} {{name}} {{os.getpid()}}\\n")
    time.sleep({sleep!r})
"""
    steps = [f"""
@pipe.task(cache=False)
def c{i:02d}({f"c{i - 1:02d}" if i else ""}):
    note("c{i:02d}")
    return {i}
""" for i in range(tasks)]
    return head + "".join(steps)


DAILY = '''
import os
from cadenza import Pipeline, ctx

pipe = Pipeline("daily", schedule="0 0 * * *", timezone="UTC")


def body(name):
    def task():
        with open({effects!r}, "a") as out:
            out.write(f"{{ctx.run_id}} {{name}} {{os.getpid()}}\\n")
        return name
    task.__name__ = task.__qualname__ = name
    return task


for name in ("extract", "load"):
    pipe.task(cache=False, name=name)(body(name))
'''


def write(folder: Path, template: str, **fields: object) -> tuple[Path, Path]:
    """Write the pipeline ``template`` filled with ``fields`` to ``folder/pipeline.py``;
    return it and its side-effect file (``effects``)."""
    effects = folder / "effects.txt"
    fields = {"effects": str(effects), "fail": str(folder / "fail"), "sleep": 0.0,
              "tasks": 1, **fields}
    path = folder / "pipeline.py"
    path.write_text(template.format(**fields))
    return path, effects


@dataclass(frozen=True)
class Execution:
    run_id: str
    task: str
    pid: int


def executions(effects: Path) -> list[Execution]:
    """Every body execution the side-effect file records, in order."""
    if not effects.exists():
        return []
    found = []
    for line in effects.read_text().splitlines():
        run_id, task, pid = line.split()
        found.append(Execution(run_id, task, int(pid)))
    return found


def cadenza(home: Path, out: Path, *args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``python -m cadenza --home HOME ARGS...`` in its own session, output to ``out``."""
    with open(out, "ab") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "cadenza", "--home", str(home), *args],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=cwd, env={**os.environ, **(env or {})},
        )


def finish(process: subprocess.Popen[bytes], out: Path, timeout: float = GUARD) -> int:
    """Wait for ``process``; its exit code (the test fails, with its output, if it hangs)."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the process did not end: {out.read_text()}") from None


def wait_for(what: str, ready: Callable[[], bool], timeout: float = GUARD) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def check_store(store: MetadataStore, run_id: str, found: list[Execution]) -> None:
    """What every claim test asserts of a run once its runners are done: each body ran at most
    once per claim (per runner process), every task that ran is recorded, no attempt is left
    ``running``, and attempt numbers run 1..n per task, none reused."""
    mine = [e for e in found if e.run_id == run_id]
    per_claim = Counter((e.task, e.pid) for e in mine)
    twice = {key: n for key, n in per_claim.items() if n > 1}
    assert not twice, f"bodies run more than once by one runner: {twice}"
    attempts = store.attempts(run_id)
    running = [(a.task, a.map_index, a.attempt) for a in attempts if a.state == "running"]
    assert not running, f"attempts left running: {running}"
    numbers: dict[str, list[int]] = {}
    for attempt in attempts:
        numbers.setdefault(attempt.task, []).append(attempt.attempt)
    for task, seen in numbers.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), (task, seen)
    recorded = {ti.task for ti in store.task_instances(run_id)}
    missing = {e.task for e in mine} - recorded
    assert not missing, f"tasks that ran but are not recorded: {sorted(missing)}"


STORES = ["memory", "sqlite", "postgres"]
"""The stores in-process tests run against (tests/faults/conftest.py: ``workspaces``)."""
SHARED_STORES = ["sqlite", "postgres"]
"""The stores `cadenza` processes share (tests/faults/conftest.py: ``shared``)."""


@dataclass
class Shared:
    """A store `cadenza` processes share: the options that point them at it, and a way for
    the test to open it."""

    args: tuple[str, ...]
    location: str

    def open(self) -> MetadataStore:
        return open_store(self.location)

    def exists(self) -> bool:
        """Whether there is a store to open yet (a SQLite file is made by its first user)."""
        return "://" in self.location or Path(self.location).exists()


def workspace_maker(kind: str, root: Path, dsn: str = "") -> Callable[[], Workspace]:
    """A maker of workspaces over one store: each call a new connection where the store has
    connections (SQLite, PostgreSQL), the same store where it lives in this process (memory)."""
    if kind == "memory":
        shared = Workspace.memory(root)
        shared.close = lambda: None  # type: ignore[method-assign]  # shared: closed by no one
        return lambda: shared
    if kind == "postgres":
        from cadenza.artifacts.local import LocalArtifactStore
        from cadenza.store.postgres import PostgresStore

        home = root / ".cadenza"
        home.mkdir(parents=True, exist_ok=True)
        return lambda: Workspace(home, PostgresStore(dsn), LocalArtifactStore(home / "artifacts"))
    return lambda: Workspace.open(root / ".cadenza")
