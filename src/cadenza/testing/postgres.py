"""A throwaway PostgreSQL cluster for tests: ``initdb`` and ``pg_ctl`` in a temporary folder.

    with PostgresServer() as server:
        dsn = server.new_database("t1")     # postgresql://postgres@127.0.0.1:PORT/t1

The cluster listens on 127.0.0.1 only, on a free port, with its socket in its own folder. Its
``postgres`` user connects without a password (trust); every other role must give its
password (scram-sha-256), so a test can see a real authentication failure. Durability is off
(``fsync``, ``synchronous_commit``, ``full_page_writes``): a test's data need not survive a
power cut, and commits are much cheaper without it. Run as root, the server runs as the
``postgres`` user (``runuser``), as PostgreSQL refuses to run as root.

This module needs no pytest; ``new_database`` needs psycopg (``cadenza[postgres]``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}
HBA = """\
local all postgres trust
host  all postgres 127.0.0.1/32 trust
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
"""


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl) were found on this machine."""


def find_bindir() -> Path:
    """The folder with ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/*/bin`` (Debian keeps them off PATH)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                   check=True).stdout.strip()
            candidates.append(Path(found))
        except (OSError, subprocess.CalledProcessError):
            pass
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(v) for v in versions),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresUnavailableError(
        "No PostgreSQL server binaries (initdb, pg_ctl) were found: neither `pg_config "
        "--bindir` nor /usr/lib/postgresql/*/bin has them. Install Debian's postgresql "
        "package (apt-get install postgresql)."
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """A cluster of its own: ``start()`` (or ``with``) makes and starts it, ``stop()`` stops
    it and removes its folder. ``dsn`` is its ``postgres`` database."""

    def __init__(self, bindir: str | Path | None = None) -> None:
        self.bindir = Path(bindir) if bindir is not None else find_bindir()
        self.folder: Path | None = None
        self.port = 0
        self._user: list[str] = []
        """The command prefix that runs as the ``postgres`` user (as root), else nothing."""

    @property
    def data(self) -> Path:
        if self.folder is None:
            raise RuntimeError("the PostgreSQL server is not started: call start() first")
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.data.parent / "server.log"

    @property
    def dsn(self) -> str:
        return self.dsn_of("postgres")

    def dsn_of(self, database: str, user: str = "postgres", password: str | None = None
               ) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._user, *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): "
                               f"{done.stderr.strip() or done.stdout.strip()}\n{log}")

    def start(self) -> PostgresServer:
        self.folder = Path(tempfile.mkdtemp(prefix="cadenza-pg-"))
        try:
            if os.geteuid() == 0:  # PostgreSQL will not run as root
                try:
                    user = pwd.getpwnam("postgres")
                except KeyError:
                    raise PostgresUnavailableError(
                        "PostgreSQL will not run as root, and there is no 'postgres' user to "
                        "run it as: install Debian's postgresql package, which makes one."
                    ) from None
                os.chown(self.folder, user.pw_uid, user.pw_gid)
                self._user = ["runuser", "-u", "postgres", "--"]
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
            (self.data / "pg_hba.conf").write_text(HBA)
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write(f"unix_socket_directories = '{self.folder}'\n")
                conf.writelines(f"{key} = '{value}'\n" for key, value in SETTINGS.items())
            for _ in range(3):  # another process may take the free port before the server does
                self.port = _free_port()
                try:
                    self._pg_ctl("start", "-o", f"-p {self.port}")
                    break
                except RuntimeError:
                    if "already in use" not in self.log.read_text(errors="replace"):
                        raise
            else:
                raise RuntimeError("PostgreSQL found no free port in three tries")
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
            raise
        return self

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "60", *args)

    def restart(self) -> None:
        """Stop the server (fast: connections are cut) and start it again on the same port."""
        self._pg_ctl("restart", "-m", "fast", "-o", f"-p {self.port}")

    def stop(self) -> None:
        """Stop the server and remove its folder (nothing is kept)."""
        if self.folder is None:
            return
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def connect(self, database: str = "postgres") -> Any:
        """A psycopg connection (autocommit) to ``database`` as ``postgres``; close it."""
        import psycopg

        return psycopg.connect(self.dsn_of(database), autocommit=True)

    def execute(self, *statements: str) -> None:
        """Run ``statements`` in the ``postgres`` database, each on its own (autocommit)."""
        with self.connect() as db:
            for statement in statements:
                db.execute(statement.encode())

    def new_database(self, name: str) -> str:
        """Create the empty database ``name`` (from template1) and return its DSN."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.dsn_of(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PostgresServer({self.dsn if self.folder else 'stopped'})"
