"""Runs on a Dask cluster, as a user meets them through `cadenza run --dask-address`: a
timeout stops a sleeping, a busy and a GIL-holding task (their processes are killed, nothing
of them runs on), `cadenza cancel` stops a run, and two runners resuming one run on one
cluster and one PostgreSQL store run each body once. Bodies note what they do in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from tests.faults._harness import GUARD, wait_for

from cadenza.store.base import RunRecord
from cadenza.testing.postgres import PostgresServer

pytest.importorskip("distributed", reason="the dask executor needs cadenza[dask]")

STUCK = '''
import os
import time
from pathlib import Path
from cadenza import Pipeline, Retry

NOTES = Path(__file__).with_name("notes.txt")
pipe = Pipeline("stuck", defaults={{"timeout": {timeout}, "retries": Retry(0)}})


def note(text):
    with NOTES.open("a") as out:
        out.write(f"{{text}} {{os.getpid()}} {{time.time()}}\\n")


@pipe.task
def sleeping():
    note("start sleeping")
    for _ in range(600):
        time.sleep(0.1)
        note("alive sleeping")


@pipe.task
def busy():
    note("start busy")
    last = time.monotonic()
    while True:
        if time.monotonic() - last > 0.1:
            note("alive busy")
            last = time.monotonic()


@pipe.task
def gil():
    note("start gil")
    3 ** (10 ** 8)  # one C call that holds the GIL for a minute or more
    note("end gil")
'''


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CADENZA_HOME", "CADENZA_DB", "CADENZA_ARTIFACTS")}
    return {**env, "NO_COLOR": "1", **extra}


def _project(tmp_path: Path, timeout: float) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "stuck.py").write_text(STUCK.format(timeout=timeout))
    return tmp_path / "notes.txt"


def _notes(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _alive_after(notes: Path, moment: float) -> list[list[str]]:
    return [n for n in _notes(notes) if n[0] != "start" and float(n[-1]) > moment]


def test_a_timeout_kills_sleeping_busy_and_gil_holding_tasks(tmp_path: Path,
                                                             dask_cluster: Any) -> None:
    # Two runs of at most two tasks, one per thread of the cluster: a GIL-holding task is
    # killed by its worker at its timeout (counted from its start there) like the others.
    notes = _project(tmp_path, timeout=3)
    for tasks in (("sleeping", "busy"), ("gil",)):
        only = [arg for task in tasks for arg in ("--only", task)]
        done = subprocess.run(
            [sys.executable, "-m", "cadenza", "run", "stuck.py", *only, "--dask-address",
             dask_cluster.scheduler_address],
            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=GUARD)
        ended = time.time()
        assert done.returncode == 1, done.stdout + done.stderr
        for task in tasks:
            assert f"Task {task!r} ran past its timeout of 3s" in done.stdout, done.stdout
        time.sleep(1.0)  # what still ran would have noted itself by now
        assert _alive_after(notes, ended) == []
    assert {n[1] for n in _notes(notes) if n[0] == "start"} == {"sleeping", "busy", "gil"}
    assert not any(n[:2] == ["end", "gil"] for n in _notes(notes))


def test_cadenza_cancel_stops_a_run_on_dask(tmp_path: Path, dask_cluster: Any) -> None:
    notes = _project(tmp_path, timeout=600)
    runner = subprocess.Popen(
        [sys.executable, "-m", "cadenza", "run", "stuck.py", "--dask-address",
         dask_cluster.scheduler_address],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # the cluster's two threads take two tasks; the third waits in Dask
        wait_for("two tasks to start", lambda: len(
            [n for n in _notes(notes) if n[0] == "start"]) == 2)
        listed = subprocess.run([sys.executable, "-m", "cadenza", "cancel", "latest"],
                                cwd=tmp_path, env=_env(), capture_output=True, text=True,
                                timeout=GUARD)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        out, _ = runner.communicate(timeout=GUARD)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    ended = time.time()
    assert runner.returncode != 0, out
    assert "cancelled" in out, out
    time.sleep(1.0)
    assert _alive_after(notes, ended) == []
    assert len([n for n in _notes(notes) if n[0] == "start"]) == 2  # the waiting one never ran


COUNTED = '''
import os
import time
from pathlib import Path
from cadenza import Pipeline

NOTES = Path(__file__).with_name("notes.txt")
pipe = Pipeline("shared")


def make(name):
    def body():
        with NOTES.open("a") as out:
            out.write(f"{name} {os.getpid()}\\n")
        time.sleep(0.2)
        return name
    body.__name__ = name
    return pipe.task(body)


for i in range(12):
    make(f"t{i}")
'''


def test_two_runners_resuming_one_run_on_one_cluster_run_each_body_once(
        tmp_path: Path, dask_cluster: Any, postgres_server: PostgresServer) -> None:
    from cadenza.store.postgres import PostgresStore

    dsn = postgres_server.new_database("dask_two_runners")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "shared.py").write_text(COUNTED)
    store = PostgresStore(dsn)
    try:
        store.create_runs([RunRecord("shared-20261205T000000-aaaaaa", "shared", "queued", {},
                                     time.time(), target="shared.py")])
    finally:
        store.close()
    command = [sys.executable, "-m", "cadenza", "--db", dsn, "run", "shared.py", "--resume",
               "shared-20261205T000000-aaaaaa", "--dask-address",
               dask_cluster.scheduler_address]
    runners = [subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = []
    try:
        for runner in runners:
            outs.append(runner.communicate(timeout=GUARD)[0])
    finally:
        for runner in runners:
            if runner.poll() is None:
                runner.send_signal(signal.SIGKILL)
                runner.wait()
    codes = sorted(runner.returncode for runner in runners)
    assert codes == [0, 1], outs  # one ran it, the other was refused: it is claimed
    assert any("which is alive" in out for out in outs), outs  # the refusal names its owner
    bodies = sorted(line.split()[0] for line in (tmp_path / "notes.txt").read_text().splitlines())
    assert bodies == sorted(f"t{i}" for i in range(12))  # each once
    store = PostgresStore(dsn, readonly=True)
    try:
        run = store.get_run("shared-20261205T000000-aaaaaa")
        assert run.state == "success"
        assert all(a.attempt == 1 for a in store.attempts(run.run_id))
    finally:
        store.close()


LIVE = '''
import time
from pathlib import Path
from cadenza import Pipeline, ctx
from cadenza.secrets import secret

pipe = Pipeline("live")


@pipe.task
def talk():
    print("first line of talk, token", secret("LIVE_TOKEN", "s3cr3t-live-value"), flush=True)
    ctx.log.info("a record of talk")
    go = Path(__file__).with_name("go")
    while not go.exists():  # the test makes it once `cadenza logs` showed the line
        time.sleep(0.02)
    print("last line of talk")
    return 1
'''


def pretend_remote() -> None:
    """On a worker: see no runner's probe file, as a worker on another host would not."""
    from cadenza.executors import _dask_pool

    class Unseen(dict[str, bool]):
        def get(self, key: str, default: Any = None) -> bool:
            return False

    _dask_pool._sees = Unseen()


def see_again() -> None:
    from cadenza.executors import _dask_pool

    _dask_pool._sees = {}


@pytest.mark.parametrize("where", ["shared", "remote"])
def test_what_a_dask_task_prints_shows_in_cadenza_logs_while_it_runs(
        tmp_path: Path, where: str) -> None:
    """A task prints a line and waits for a file that the test makes only once `cadenza logs`
    shows that line: on a worker that sees the runner's folder (it writes the runner's log
    file) and on one that does not (its log comes home in pieces as Dask events)."""
    import dask
    from distributed import Client, LocalCluster

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "live.py").write_text(LIVE)
    env = _env()
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    client = Client(cluster, set_as_default=False)
    if where == "remote":
        client.run(pretend_remote)
    runner = subprocess.Popen(
        [sys.executable, "-m", "cadenza", "run", "live.py", "--dask-address",
         cluster.scheduler_address], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        def shown() -> str:
            done = subprocess.run([sys.executable, "-m", "cadenza", "logs", "latest", "talk"],
                                  cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=GUARD)
            return done.stdout

        wait_for("the task's first line in `cadenza logs`",
                 lambda: "first line of talk" in shown())
        live = shown()
        assert runner.poll() is None  # the attempt is still running: the line came live
        (tmp_path / "go").touch()
        out, _ = runner.communicate(timeout=GUARD)
        assert runner.returncode == 0, out
        final = shown()
    finally:
        (tmp_path / "go").touch()
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        client.run(see_again)
        client.close()
        cluster.close()
    assert "s3cr3t-live-value" not in live + final  # masked where the task ran
    assert "first line of talk, token ***" in final
    assert "a record of talk" in final and "last line of talk" in final
    assert final.count("first line of talk") == 1
    if where == "remote":  # the worker's own copy is gone
        assert not list(Path(tempfile.gettempdir()).glob(f"cadenza-logs-{os.getuid()}/*.log"))


LET_GO = '''
import time
from pathlib import Path
from cadenza import Pipeline, Retry

NOTES = Path(__file__).with_name("notes.txt")
pipe = Pipeline("let_go", defaults={"timeout": 1, "retries": Retry(0)})


@pipe.task
def slow():
    with NOTES.open("a") as out:
        out.write(f"start slow {time.time()}\\n")
    time.sleep(3)
    with NOTES.open("a") as out:
        out.write(f"end slow {time.time()}\\n")
'''


def test_with_thread_isolation_a_timeout_ends_the_attempt_and_lets_its_body_run_on(
        tmp_path: Path, dask_cluster: Any) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "let_go.py").write_text(LET_GO)
    done = subprocess.run(
        [sys.executable, "-m", "cadenza", "run", "let_go.py", "--dask-address",
         dask_cluster.scheduler_address],
        cwd=tmp_path, env=_env(CADENZA_DASK_ISOLATION="threads"), capture_output=True,
        text=True, timeout=GUARD)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Task 'slow' ran past its timeout of 1s" in done.stdout, done.stdout
    assert "may run on in its Dask worker's thread" in " ".join(done.stdout.split())
    assert not any(n[0] == "end" for n in _notes(tmp_path / "notes.txt"))
    # as documented: nothing stops a body in a Dask thread; it ends on its own
    wait_for("the let-go body to end", lambda: any(
        n[0] == "end" for n in _notes(tmp_path / "notes.txt")))


def test_dask_isolation_is_refused_for_another_executor(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "let_go.py").write_text(LET_GO)
    done = subprocess.run(
        [sys.executable, "-m", "cadenza", "run", "let_go.py", "-e", "threads",
         "--dask-isolation", "threads"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=GUARD)
    assert done.returncode != 0
    assert "Isolation 'threads' is for the dask executor, not 'threads'" in done.stderr + \
        done.stdout
    assert "Traceback" not in done.stderr
    ignored = subprocess.run(  # the variable names a default for -e dask only
        [sys.executable, "-m", "cadenza", "run", "let_go.py", "-e", "inline", "--only", "slow"],
        cwd=tmp_path, env=_env(CADENZA_DASK_ISOLATION="threads"), capture_output=True,
        text=True, timeout=GUARD)
    assert "Isolation" not in ignored.stdout + ignored.stderr


QUEUED = '''
import time
from cadenza import Pipeline, Retry

pipe = Pipeline("queued", defaults={"timeout": 2, "retries": Retry(0)})


@pipe.task
def first():
    time.sleep(1.5)


@pipe.task
def second():
    time.sleep(1.5)
'''


def test_a_timeout_counts_from_when_the_attempt_starts_on_its_worker(tmp_path: Path) -> None:
    """One Dask thread, two tasks of 1.5 s with a timeout of 2 s each: the second waits for
    the thread 1.5 s, which its timeout does not count, so both succeed."""
    import dask
    from distributed import LocalCluster

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "queued.py").write_text(QUEUED)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                               dashboard_address="127.0.0.1:0")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cadenza", "run", "queued.py", "--dask-address",
             cluster.scheduler_address], cwd=tmp_path, env=_env(), capture_output=True,
            text=True, timeout=GUARD)
    finally:
        cluster.close()
    assert done.returncode == 0, done.stdout + done.stderr
