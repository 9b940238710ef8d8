"""Helpers for the signal fault tests: start `cadenza run` as a real process, watch files."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

GUARD = 30.0
"""Seconds a wait may take before the test fails: a guard against hangs, not a timing goal."""


def cadenza(home: Path, out: Path, *args: str, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """``python -m cadenza --home HOME ARGS...`` in its own session (so that a signal the test
    sends reaches only the runner and what it forked), output to ``out``."""
    with open(out, "ab") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "cadenza", "--home", str(home), *args],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=cwd,
        )


def wait_for(what: str, ready: Callable[[], bool], runner: subprocess.Popen[bytes] | None = None,
             out: Path | None = None, timeout: float = GUARD) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if runner is not None and runner.poll() is not None:
            raise AssertionError(f"the runner ended before {what}: "
                                 f"{out.read_text() if out is not None else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def kill_if_alive(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
