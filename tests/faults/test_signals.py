"""Signals against a real `cadenza run`: SIGKILL leaves no worker behind, SIGTERM and SIGINT stop
the run promptly with 143 / 130 and leave it resumable, and Ctrl-C at any moment loses no
finished work. Each test counts task-body executions in a side-effect file and compares them
with the attempts the store recorded."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.faults._signals import GUARD, cadenza, gone, kill_if_alive, lines, wait_for

from cadenza.store.sqlite import SqliteStore

LONG = '''
import os
import time
from pathlib import Path
from cadenza import Pipeline

pipe = Pipeline("long")
TICKS = 1 if Path({grow!r}).with_name("fast.flag").exists() else 120  # 12 s

@pipe.task(cache=False)
def grow():
    with open({grow!r}, "a") as handle:
        handle.write(f"pid {{os.getpid()}}\\n")
        for i in range(TICKS):
            handle.write(f"{{i}}\\n")
            handle.flush()
            time.sleep(0.1)

pipe.shell("shell_grow", "echo pid $$ >> {shell}; "
           f"for i in $(seq {{TICKS}}); do echo $i >> {shell}; sleep 0.1; done", cache=False)
'''


def test_sigkill_of_the_runner_takes_its_workers_and_their_shells_with_it(tmp_path: Path) -> None:
    grow, shell = tmp_path / "grow.txt", tmp_path / "shell.txt"
    (tmp_path / "pipe.py").write_text(LONG.format(grow=str(grow), shell=str(shell)))
    out = tmp_path / "runner.out"
    runner = cadenza(tmp_path / ".cadenza", out, "run", str(tmp_path / "pipe.py"),
                     "-e", "processes", "-w", "2", "-q")
    pids: list[int] = []
    try:
        wait_for("both tasks to write", lambda: len(lines(grow)) > 3 and len(lines(shell)) > 3,
                 runner, out)
        pids = [int(lines(path)[0].split()[1]) for path in (grow, shell)]
        os.kill(runner.pid, signal.SIGKILL)  # the runner alone, not its process group
        runner.wait()
        wait_for("the worker and its shell to die", lambda: all(map(gone, pids)), timeout=2.0)
        sizes = [grow.stat().st_size, shell.stat().st_size]
        time.sleep(0.5)  # the tasks wrote every 0.1 s: a survivor would have written again
        assert [grow.stat().st_size, shell.stat().st_size] == sizes
    finally:
        for pid in pids:
            kill_if_alive(pid)
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    # a resume finishes the run and closes the attempts the dead runner left running
    (tmp_path / "fast.flag").touch()
    store = _store(tmp_path)
    try:
        [run] = store.list_runs()
    finally:
        store.close()
    resumed = cadenza(tmp_path / ".cadenza", out, "run", "--resume", run.run_id, "-e",
                      "processes", "-q")
    assert resumed.wait(timeout=GUARD) == 0, out.read_text()
    store = _store(tmp_path)
    try:
        assert store.get_run(run.run_id).state == "success"
        attempts = store.attempts(run.run_id)
    finally:
        store.close()
    assert [a.task for a in attempts if a.state == "running"] == []
    assert sorted(a.task for a in attempts if a.state == "success") == ["grow", "shell_grow"]


STOPPABLE = '''
import os
import time
from pathlib import Path
from cadenza import Pipeline

HERE = Path(__file__).parent
pipe = Pipeline("stoppable")

def mark(text):
    with open(HERE / "marks.txt", "a") as handle:
        handle.write(text + "\\n")

def make(name, seconds):
    def task():
        mark(f"start {{name}}")
        time.sleep(seconds() if callable(seconds) else seconds)
        mark(f"end {{name}}")
    return task

for i in range(3):
    pipe.task(make(f"fast{{i}}", 0.01), name=f"fast{{i}}", cache=False)
pipe.task(make("long", lambda: 20 if (HERE / "slow.flag").exists() else 0.01), name="long",
          after=["fast0", "fast1", "fast2"], cache=False)
pipe.task(make("last", 0.01), name="last", after=["long"], cache=False)
'''
TASKS = ["fast0", "fast1", "fast2", "long", "last"]


def _store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / ".cadenza" / "cadenza.db")


def _stop_while_long_runs(tmp_path: Path, executor: str, signum: int) -> tuple[str, float]:
    """Start the pipeline, send ``signum`` while `long` sleeps, check the runner's exit; return
    the run id and how long the runner took to exit after the signal."""
    (tmp_path / "pipe.py").write_text(STOPPABLE.format())
    (tmp_path / "slow.flag").touch()
    marks, out = tmp_path / "marks.txt", tmp_path / "runner.out"
    runner = cadenza(tmp_path / ".cadenza", out, "run", str(tmp_path / "pipe.py"), "-e", executor,
                     "-w", "2", "-q")
    try:
        wait_for("`long` to start", lambda: "start long" in lines(marks), runner, out)
        sent = time.monotonic()
        runner.send_signal(signum)
        code = runner.wait(timeout=GUARD_EXIT)
        took = time.monotonic() - sent
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    text = out.read_text()
    assert code == 128 + signum, text
    assert "the run was cancelled and its state recorded" in text
    assert "Traceback" not in text
    store = _store(tmp_path)
    try:
        [run] = store.list_runs()
        assert run.state == "cancelled"
        attempts = store.attempts(run.run_id)
        assert [a.state for a in attempts if a.state == "running"] == []
        assert {a.task: a.state for a in attempts}["long"] == "cancelled"
        assert {ti.task: ti.state for ti in store.task_instances(run.run_id)}["long"] == "cancelled"
    finally:
        store.close()
    return run.run_id, took


GUARD_EXIT = 15.0


@pytest.mark.parametrize("executor", ["inline", "threads", "processes"])
def test_sigterm_stops_the_run_at_once_and_it_resumes(tmp_path: Path, executor: str) -> None:
    run_id, took = _stop_while_long_runs(tmp_path, executor, signal.SIGTERM)
    assert took < GUARD_EXIT  # `long` sleeps 20 s: the runner did not wait for it
    (tmp_path / "slow.flag").unlink()
    out = tmp_path / "resume.out"
    resumed = cadenza(tmp_path / ".cadenza", out, "run", "--resume", run_id, "-e", executor, "-q")
    assert resumed.wait(timeout=GUARD) == 0, out.read_text()
    ends = [line for line in lines(tmp_path / "marks.txt") if line.startswith("end ")]
    assert sorted(ends) == sorted(f"end {task}" for task in TASKS)  # each ran to its end once
    store = _store(tmp_path)
    try:
        assert store.get_run(run_id).state == "success"
        assert [a for a in store.attempts(run_id) if a.state == "running"] == []
    finally:
        store.close()


def test_ctrl_c_on_inline_stops_the_task_and_closes_its_attempt(tmp_path: Path) -> None:
    _stop_while_long_runs(tmp_path, "inline", signal.SIGINT)


MANY = '''
import random
import time
from pathlib import Path
from cadenza import Pipeline

HERE = Path(__file__).parent
pipe = Pipeline("many")

def make(name):
    def task():
        time.sleep(random.uniform(0.002, 0.02))
        with open(HERE / "ends.txt", "a") as handle:  # the body's last act: it has finished
            handle.write(name + "\\n")
    return task

for layer in range(4):
    for i in range(50):
        name = f"t{layer}_{i}"
        after = [f"t{layer - 1}_{i}", f"t{layer - 1}_{(i + 1) % 50}"] if layer else []
        pipe.task(make(name), name=name, after=after, cache=False)
'''
ALL = {f"t{layer}_{i}" for layer in range(4) for i in range(50)}


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_repeated_ctrl_c_at_random_moments_loses_no_finished_work(tmp_path: Path,
                                                                   executor: str) -> None:
    rng = random.Random(f"{executor}-{os.getpid()}-{time.time()}")
    (tmp_path / "pipe.py").write_text(MANY)
    ends, home = tmp_path / "ends.txt", tmp_path / ".cadenza"
    run_id: str | None = None
    for trial in range(6):
        out = tmp_path / f"runner{trial}.out"
        args = ["run", str(tmp_path / "pipe.py")] if run_id is None else ["run", "--resume",
                                                                           run_id]
        runner = cadenza(home, out, *args, "-e", executor, "-w", "3", "-q")
        try:
            if trial < 5:  # the last one runs to the end
                wait_for("a task to finish", _progress(ends, len(lines(ends)), runner))
                time.sleep(rng.uniform(0, 0.3))
                for _ in range(rng.randint(1, 3)):  # Ctrl-C, and again, at random moments
                    if runner.poll() is None:
                        runner.send_signal(signal.SIGINT)
                    time.sleep(rng.uniform(0, 0.05))
            code = runner.wait(timeout=GUARD)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
        text = out.read_text()
        assert "Traceback" not in text, text
        store = SqliteStore(home / "cadenza.db")
        try:
            run_id = run_id or store.list_runs()[0].run_id
            state = store.get_run(run_id).state
            attempts = store.attempts(run_id)
        finally:
            store.close()
        assert state in ("cancelled", "success"), (state, text)
        # a Ctrl-C that comes as the process exits after a success ends it by the signal
        expected = {130} if state == "cancelled" else {0, -signal.SIGINT}
        assert code in expected, (code, state, text)
        assert [a.task for a in attempts if a.state == "running"] == []
        finished = Counter(lines(ends))
        recorded = Counter(a.task for a in attempts if a.state == "success")
        assert finished == recorded, (finished - recorded, recorded - finished, trial, text)
        if state == "success":
            break
    assert state == "success"
    assert set(finished) == ALL and set(finished.values()) == {1}  # each body once, no more


INSTANT = '''
import functools
import os
from pathlib import Path
from cadenza import Pipeline

HERE = Path(__file__).parent
pipe = Pipeline("instant")
ENDS = os.open(HERE / "ends.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

for i in range(3000):
    name = f"t{{i:04d}}"
    # One C call: no signal can stop it part-way, so a line in ends.txt is a body that
    # returned. Bodies this short leave the runner's own work (recording each result) most of
    # the time, which is where a signal must not lose a finished body.
    pipe.task(functools.partial(os.write, ENDS, f"{{name}}\\n".encode()), name=name, cache=False)
'''


def test_ctrl_c_on_inline_never_loses_a_body_that_returned(tmp_path: Path) -> None:
    """SIGINT landing just after an inline body returned, before its result was recorded,
    used to record the attempt cancelled, and the resume ran the body again."""
    rng = random.Random(f"inline-{os.getpid()}-{time.time()}")
    (tmp_path / "pipe.py").write_text(INSTANT.format())
    ends, home = tmp_path / "ends.txt", tmp_path / ".cadenza"
    for series in range(2):  # two runs, each Ctrl-C'd and resumed until it succeeds
        ends.unlink(missing_ok=True)
        run_id: str | None = None
        for trial in range(8):
            out = tmp_path / f"runner{series}.{trial}.out"
            args = ["run", "--resume", run_id] if run_id else ["run", str(tmp_path / "pipe.py")]
            runner = cadenza(home, out, *args, "-e", "inline", "-q")
            try:
                if trial < 7:  # the last one runs to the end
                    wait_for("a body to run", _progress(ends, len(lines(ends)), runner))
                    time.sleep(rng.uniform(0, 0.03))
                    for _ in range(rng.randint(1, 3)):
                        if runner.poll() is None:
                            runner.send_signal(signal.SIGINT)
                        time.sleep(rng.uniform(0, 0.005))
                code = runner.wait(timeout=GUARD)
            finally:
                if runner.poll() is None:
                    runner.kill()
                    runner.wait()
            text = out.read_text()
            assert "Traceback" not in text, text
            store = SqliteStore(home / "cadenza.db")
            try:
                run_id = run_id or store.list_runs()[0].run_id
                state = store.get_run(run_id).state
                attempts = store.attempts(run_id)
            finally:
                store.close()
            assert state in ("cancelled", "success"), (state, text)
            assert code in ({130} if state == "cancelled" else {0, -signal.SIGINT}), (code, text)
            assert [a.task for a in attempts if a.state == "running"] == []
            returned = Counter(lines(ends))
            recorded = Counter(a.task for a in attempts if a.state == "success")
            assert returned == recorded, (returned - recorded, recorded - returned, trial)
            if state == "success":
                break
        assert state == "success"
        assert len(returned) == 3000 and set(returned.values()) == {1}  # each body once


def _progress(path: Path, before: int, runner: subprocess.Popen[bytes]) -> Callable[[], bool]:
    return lambda: len(lines(path)) > before or runner.poll() is not None


SCRIPT = '''
import sys
sys.path.insert(0, {here!r})
from pipe import pipe

try:
    pipe.run(home={home!r}, executor={executor!r}, workers=2)
except KeyboardInterrupt:
    print("KeyboardInterrupt reached the script", flush=True)
    sys.exit(7)
'''


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_ctrl_c_in_a_python_script_cancels_the_run_then_raises(tmp_path: Path,
                                                                executor: str) -> None:
    (tmp_path / "pipe.py").write_text(STOPPABLE.format())
    (tmp_path / "slow.flag").touch()
    home, marks, out = tmp_path / ".cadenza", tmp_path / "marks.txt", tmp_path / "script.out"
    (tmp_path / "script.py").write_text(SCRIPT.format(here=str(tmp_path), home=str(home),
                                                      executor=executor))
    with open(out, "wb") as sink:
        script = subprocess.Popen([sys.executable, str(tmp_path / "script.py")], stdout=sink,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for("`long` to start", lambda: "start long" in lines(marks), script, out)
        script.send_signal(signal.SIGINT)
        # (on threads, the process then waits for `long`'s thread, as Python does at exit)
        wait_for("the KeyboardInterrupt", lambda: "KeyboardInterrupt reached" in out.read_text(),
                 timeout=GUARD_EXIT)
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
    store = SqliteStore(home / "cadenza.db")
    try:
        [run] = store.list_runs()
        assert run.state == "cancelled"
        attempts = {a.task: a.state for a in store.attempts(run.run_id)}
    finally:
        store.close()
    assert attempts["long"] == "cancelled"
    assert "running" not in attempts.values()
