"""Run a command at a real pseudo-terminal, as a user's shell would, with a window size set."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Screen:
    code: int | None      # None: still running at the deadline, then killed
    output: bytes         # everything written to the terminal, escape codes included

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


def run_at_terminal(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
                    timeout: float = 60.0, cols: int = 100, rows: int = 30,
                    limit: int = 4_000_000) -> Screen:
    """Run ``argv`` with stdin, stdout and stderr on a new pty; read until it exits.

    Stops reading past ``limit`` bytes and kills the process group past ``timeout`` seconds, so
    a command that hangs or floods the terminal fails its test instead of hanging it."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols),
                "LINES": str(rows), **(env or {})}
    full_env.pop("NO_COLOR", None)
    proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            env=full_env, start_new_session=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) <= limit:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                break
            if not chunk:
                break
            out += chunk
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        else:
            code = proc.returncode
        os.close(master)
    return Screen(code, bytes(out))
