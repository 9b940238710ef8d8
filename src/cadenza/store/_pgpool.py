"""Connections to PostgreSQL for PostgresStore: one pool per process and DSN, DSNs shown
without their password, and one line on why a server cannot be used."""

from __future__ import annotations

import atexit
import os
import re
import select
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from cadenza.exceptions import StoreError

POOL_SIZE = 10
"""Connections a process keeps at most per DSN (runner, heartbeats, scheduler threads, UI)."""
CONNECT_TIMEOUT = 10
"""Seconds to wait for the server when connecting."""
POOL_TIMEOUT = 30.0
"""Seconds a call waits for a free connection (or for the server to come back)."""
IDLE_IN_TRANSACTION_MS = 10_000
"""How long the server lets a session sit in an open transaction before it ends it. cadenza
never waits inside one, so only a stalled client does (SIGSTOP, a frozen VM): without this,
its row and advisory locks would block every other runner until it continued."""


LOCK_WAIT_MS = 5_000
"""How long a statement waits for a lock before the store looks for a stalled holder (and
then waits again): see ``PostgresStore._end_stalled``."""
APPLICATION = "cadenza"
"""The application_name of cadenza's sessions: how ``_end_stalled`` tells them apart."""


def _configure(connection: psycopg.Connection[Any]) -> None:
    connection.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
    connection.execute(f"SET lock_timeout = {LOCK_WAIT_MS}")


# -- DSNs -------------------------------------------------------------------------------------


def redact(dsn: str) -> str:
    """``dsn`` without its password (URL or ``key=value`` form): what messages may show."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            who, _, where = netloc.rpartition("@")
            netloc = f"{who.split(':', 1)[0]}@{where}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    # key=value form: the pair goes, the rest keeps its order (values may be quoted)
    return re.sub(r"\s*\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "", dsn).strip()


def _password(dsn: str) -> str | None:
    try:
        found = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        return None
    return str(found) if found else None


def said(exc: BaseException, dsn: str) -> str:
    """The server's or libpq's message on one line, with the DSN's password taken out."""
    text = " ".join(str(exc).split())
    secret = _password(dsn)
    return text.replace(secret, "...") if secret else text


def unreachable(dsn: str, exc: BaseException) -> StoreError:
    """One line on why the database ``dsn`` could not be used, and what to do."""
    where = redact(dsn)
    text = said(exc, dsn)
    if "password authentication failed" in text or "no password supplied" in text:
        fix = ("check the user and password in the DSN (or PGPASSWORD, or ~/.pgpass), and "
               "that this role may log in")
    elif re.search(r'database "[^"]*" does not exist', text):
        fix = ("create the database (`createdb NAME`, or CREATE DATABASE), or fix its name in "
               "the DSN")
    elif "role" in text and "does not exist" in text:
        fix = "create the role (CREATE ROLE ... LOGIN), or fix the user in the DSN"
    else:
        fix = ("check that the server is running and reachable at that host and port (try "
               "`pg_isready -d DSN`)")
    return StoreError(f"The PostgreSQL store {where!r} could not be used: {text}. To fix it, "
                      f"{fix}; then run the command again.", path=where)


# -- one pool per process and DSN ----------------------------------------------------------------

_POOLS: dict[tuple[int, str], tuple[ConnectionPool, int]] = {}
"""(pid, DSN) -> (pool, how many stores use it). The pid keeps a forked child off its
parent's connections: the child makes its own pool."""
_POOLS_LOCK = threading.Lock()


def acquire_pool(dsn: str) -> ConnectionPool:
    key = (os.getpid(), dsn)
    with _POOLS_LOCK:
        if key in _POOLS:
            pool, users = _POOLS[key]
            _POOLS[key] = (pool, users + 1)
            return pool
        # One connection first, to say in one line why the server cannot be used: the pool
        # would only log its failures and time out.
        try:
            psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT).close()
        except psycopg.Error as exc:
            raise unreachable(dsn, exc) from None
        pool = ConnectionPool(
            dsn, min_size=1, max_size=POOL_SIZE, open=False, timeout=POOL_TIMEOUT,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT,
                    "application_name": APPLICATION},
            configure=_configure, name=f"cadenza {redact(dsn)}",
        )
        try:
            pool.open(wait=True, timeout=POOL_TIMEOUT)
        except (PoolTimeout, psycopg.Error) as exc:
            pool.close()
            raise unreachable(dsn, exc) from None
        _POOLS[key] = (pool, 1)
        return pool


def release_pool(dsn: str) -> None:
    key = (os.getpid(), dsn)
    with _POOLS_LOCK:
        if key not in _POOLS:  # a store made before a fork, closed in the child
            return
        pool, users = _POOLS[key]
        if users > 1:
            _POOLS[key] = (pool, users - 1)
            return
        del _POOLS[key]
    pool.close()


@atexit.register
def _close_pools() -> None:
    with _POOLS_LOCK:
        mine = [pool for (pid, _), (pool, _) in _POOLS.items() if pid == os.getpid()]
        _POOLS.clear()
    for pool in mine:
        pool.close()


def pools_in_use() -> dict[str, int]:
    """Redacted DSN -> how many stores of this process share its pool (for tests and
    diagnostics)."""
    with _POOLS_LOCK:
        return {redact(dsn): users for (pid, dsn), (_, users) in _POOLS.items()
                if pid == os.getpid()}


def usable(db: psycopg.Connection[Any]) -> bool:
    """False if the server closed ``db``. An idle connection has nothing to read, so one that
    has is asked a question (a notice may have come); this costs no round trip otherwise."""
    if db.broken or db.closed:
        return False
    if not select.select([db.pgconn.socket], [], [], 0)[0]:
        return True
    try:
        db.execute("")
    except psycopg.OperationalError:
        return False
    return True
