"""A real `cadenza ui` in a subprocess for the browser tests: started on a free port, waited
for on /health, stopped (terminate, then kill), its output kept for failure messages."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).parents[2] / "src"
"""This checkout's code: the server imports it, not whichever cadenza is installed."""


class ServerError(RuntimeError):
    """The UI server did not come up, or died; the message carries its output."""


@dataclass
class Server:
    url: str
    """Base URL with no trailing slash, e.g. ``http://127.0.0.1:8123``."""
    process: subprocess.Popen[bytes]
    log: Path
    """The server's stdout and stderr."""

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        """Raise ServerError, with the server's output, if it has exited."""
        if self.process.poll() is not None:
            raise ServerError(
                f"cadenza ui exited with code {self.process.returncode}; its output:\n"
                f"{self.output()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(home: Path, target: str, token: str | None, *, timeout: float = 20.0,
          args: Sequence[str] = (), env: Mapping[str, str] | None = None,
          port: int | None = None) -> Iterator[Server]:
    """`python -m cadenza --home HOME ui TARGET --token TOKEN ARGS...` with its scheduler, until
    the block ends; ``env`` adds to the environment, ``port`` (default: a free one) lets a
    test restart a server where it was."""
    port = free_port() if port is None else port
    log = home.parent / f"ui-{port}-{time.monotonic_ns()}.log"
    # Only --token grants access: no CADENZA_UI_* settings from the caller's environment.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_UI_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), environ.get("PYTHONPATH")]))
    environ.update(env or {})
    command = [sys.executable, "-m", "cadenza", "--home", str(home), "ui", target,
               "--port", str(port), *(["--token", token] if token is not None else []), *args]
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_healthy(server, timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_healthy(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        server.check_alive()
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise ServerError(
                f"cadenza ui did not answer {server.url}/health within {timeout:.0f} s; its "
                f"output:\n{server.output()}")
        time.sleep(0.1)
