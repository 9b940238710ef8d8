"""Signals against a real `cadenza run`: SIGKILL leaves no worker behind, SIGTERM and SIGINT stop
the run promptly with 143 / 130 and leave it resumable, and Ctrl-C at any moment loses no
finished work. Each test counts task-body executions in a side-effect file and compares them
with the attempts the store recorded."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.faults._signals import cadenza, gone, kill_if_alive, lines, wait_for

LONG = '''
import os
import time
from cadenza import Pipeline

pipe = Pipeline("long")

@pipe.task(cache=False)
def grow():
    with open({grow!r}, "a") as handle:
        handle.write(f"pid {{os.getpid()}}\\n")
        for i in range(120):  # 12 s
            handle.write(f"{{i}}\\n")
            handle.flush()
            time.sleep(0.1)

pipe.shell("shell_grow", "echo pid $$ >> {shell}; "
           "for i in $(seq 120); do echo $i >> {shell}; sleep 0.1; done", cache=False)
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
