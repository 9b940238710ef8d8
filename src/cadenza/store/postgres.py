"""The MetadataStore on PostgreSQL, for runners, schedulers and UIs on many hosts.

One connection pool per process and DSN, shared by every PostgresStore of that DSN (the
runner, its heartbeat thread, the scheduler's run threads, the UI). Connections are in
autocommit: a read is one round trip, and every write is one explicit transaction. A batch
goes in one transaction, sent as one pipeline (psycopg's pipeline mode): the fence, one
statement per table (its rows as one array per column) and the commit travel together.

Claims and fences take the run's row lock (``FOR UPDATE``), so a claim waits for a fenced
batch in flight and is ordered after it: a runner that lost its claim writes nothing the new
owner could miss. Time is the database's (``clock_timestamp()``), so staleness is judged on one
clock whatever the hosts' clocks say.

Events are numbered in commit order. Ids from a sequence alone are not: a transaction that took
id 5 may commit after one that took id 6, and a follower that read ``id > last`` in between
(the UI's live pages, a trigger) would never see 5. So each transaction that writes events
takes one advisory lock (EVENT_IDS_LOCK) just before it inserts them and keeps it until its
commit: the next writer takes its ids only once the one before is committed and visible, and a
reader that sees id N sees every id below it. The lock is held only for the insert and the
commit, sent together at the end of the batch. (SQLite has one writer at a time, so its ids
are in commit order already.) Each event also carries a key, given by the first write of it
and unique in the table, so a batch made again is written once.

When the server restarts, calls go on once the pool has reconnected (within RETRY_WITHIN): a
call cut before it was sent is made again, and one cut after (its outcome unknown) only if
making it twice does what making it once does, which is true of every write but
``create_runs``: batches (upserts, artifacts by hash, events by key), claims, heartbeats.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

try:
    import psycopg
    from psycopg_pool import PoolTimeout
except ImportError as error:  # pragma: no cover - the [postgres] extra is in dev
    raise ImportError(
        "The PostgreSQL store needs psycopg 3 and psycopg-pool: "
        "pip install 'cadenza[postgres]'"
    ) from error

from cadenza.exceptions import ClaimLostError, RunNotFoundError, StoreError
from cadenza.store import _sql
from cadenza.store._pgpool import (
    APPLICATION,
    IDLE_IN_TRANSACTION_MS,
    POOL_TIMEOUT,
    acquire_pool,
    pools_in_use,
    redact,
    release_pool,
    said,
    unreachable,
    usable,
)
from cadenza.store.base import (
    STALE_AFTER,
    AliasChange,
    Approval,
    ArtifactRecord,
    AttemptRecord,
    Batch,
    CacheEntry,
    Event,
    Fence,
    RunRecord,
    Slot,
    SlotHolder,
    TaskInstanceRecord,
    judge_slots,
    owner_live,
)
from cadenza.store.migrations import Migration, latest, migrations, pending

__all__ = ["SCHEMA_VERSION", "PostgresStore", "pools_in_use", "redact"]

BACKEND = "postgres"
SCHEMA_VERSION = latest(BACKEND)
"""The schema version this cadenza writes: its newest file in store/migrations/postgres/."""
MIGRATION_LOCK = 0x6361_6465_6E7A_61  # "cadenza": the advisory lock upgrades take
EVENT_IDS_LOCK = 0x6361_6465_6E7A_65  # the advisory lock a transaction takes to number events
POOL_LOCKS = 0x6364_6E70  # "cdnp": the first key of the advisory lock on a pool's name
_END_STALLED = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid() "
    "AND state = 'active' AND wait_event = 'ClientRead' AND xact_start IS NOT NULL "
    "AND now() - state_change > make_interval(secs => %s)")
ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
               psycopg.errors.TransactionRollback)
"""SQLSTATE class 40: the server rolled the transaction back (psycopg does not derive the
first two from the third)."""
RETRY_WITHIN = POOL_TIMEOUT
"""Seconds a call keeps trying again while the server is away (restarting, say), from its
first failure: then it raises StoreError."""
_T = TypeVar("_T")

_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL
)"""
_FENCED = "cadenza: the claim on this run is lost"
_FENCE = ("SELECT CASE WHEN count(*) = 1 AND min(epoch) = %s THEN 0 ELSE "
          f"('{_FENCED}: ' || count(*))::int END "
          "FROM (SELECT epoch FROM runs WHERE run_id = %s FOR UPDATE) AS held")
"""A batch's fence: locks the run's row, and fails the transaction (a text that is no number;
computed from the rows, so never ahead of them) unless the run exists at the fence's epoch."""
_NOW = "extract(epoch from clock_timestamp())::float8"
"""The store's clock in SQL, seconds since 1970: the database server's, read when evaluated."""


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


_UPSERT_RUN = (
    f"INSERT INTO runs ({_sql.RUN_COLS}) VALUES ({_marks(16)}) ON CONFLICT (run_id) DO UPDATE SET "
    # owner, epoch and heartbeat are the claim's (claim_run, heartbeat), never apply's
    "state = excluded.state, params = excluded.params, started_at = excluded.started_at, "
    "ended_at = excluded.ended_at, runner_pid = excluded.runner_pid"
)

def _from_arrays(table: str, cols: str, types: str) -> str:
    """``INSERT INTO table (cols)`` of rows sent as one array per column: one statement, one
    plan and one pass over the indexes for any number of rows (statement by statement, the
    server spends more on each statement than on its row)."""
    arrays = ", ".join(f"%b::{kind}[]" for kind in types.split())  # binary: no escaping
    return f"INSERT INTO {table} ({cols}) SELECT * FROM unnest({arrays})"


_UPSERT_TI = _from_arrays(
    "task_instances", _sql.TI_COLS, "text text int4 text int4 text text text float8 float8 text",
) + (
    " ON CONFLICT (run_id, task, map_index) DO UPDATE SET state = excluded.state, "
    "attempt = excluded.attempt, cache_key = excluded.cache_key, output = excluded.output, "
    "files = excluded.files, started_at = excluded.started_at, ended_at = excluded.ended_at, "
    "error = excluded.error"
)
_UPSERT_ATTEMPT = _from_arrays(
    "attempts", _sql.ATTEMPT_COLS, "text text int4 int4 text float8 float8 text text text text",
) + (
    " ON CONFLICT (run_id, task, map_index, attempt) DO UPDATE SET state = excluded.state, "
    "ended_at = excluded.ended_at, error = excluded.error, traceback = excluded.traceback, "
    "log_path = excluded.log_path, checks = excluded.checks"
)
_INSERT_ARTIFACT = _from_arrays(
    "artifacts", _sql.ART_COLS, "text text int8 text text text float8 text text bytea",
) + " ON CONFLICT (hash) DO NOTHING RETURNING hash"
_UPSERT_CACHE = _from_arrays(
    "cache", _sql.CACHE_COLS, "text text text text text text float8 text",
) + (
    " ON CONFLICT (pipeline, task, key) DO UPDATE SET output = excluded.output, "
    "files = excluded.files, run_id = excluded.run_id, created_at = excluded.created_at, "
    "meta = excluded.meta"
)
_INSERT_EVENT = _from_arrays(
    "events", "key, run_id, kind, ts, task, map_index, data",
    "text text text float8 text int4 text",
) + " ON CONFLICT (key) DO NOTHING"  # written already, by a commit whose reply was lost
_INSERT_LINEAGE = _from_arrays("lineage", "child, parent", "text text") + (
    " ON CONFLICT DO NOTHING"
)


def _pool_key(pool: str) -> int:
    """The second key of the advisory lock ``take_slot`` takes on ``pool``: a hash of its name
    as a signed 32-bit integer (two pools that share one only wait for each other)."""
    return int.from_bytes(hashlib.sha256(pool.encode()).digest()[:4], "big", signed=True)


def _columns(rows: Iterable[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (what ``_from_arrays`` statements take)."""
    found = [list(column) for column in zip(*rows, strict=True)]
    return found or [[] for _ in range(width)]


def _last_per_key(rows: list[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    """The last row for each key (its first ``width`` values): one statement may not upsert
    a row twice, and applied one by one, the last would win."""
    return list({row[:width]: row for row in rows}.values())


def _float(value: float | None) -> float | None:
    """A time as a float: an array holds values of one type."""
    return None if value is None else float(value)


def _new_writer() -> None:
    global _WRITER
    _WRITER = secrets.token_hex(8)


_WRITER = ""
"""This process's part of the event keys it gives: random, drawn again in a forked child."""
_new_writer()
os.register_at_fork(after_in_child=_new_writer)
_KEY_COUNT = itertools.count(1)


def _keys(events: list[Event]) -> list[str]:
    """Each event's key, given to those without one the first time they are written: a commit
    made again (its first outcome was lost) sends the same keys, and none is written twice."""
    keys = []
    for e in events:
        if e.key is None:
            e.key = f"{_WRITER}.{next(_KEY_COUNT)}"
        keys.append(e.key)
    return keys


# -- values ----------------------------------------------------------------------------------

_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _dumps(value: Any) -> str | None:
    """JSON text, or NULL for an empty value (as the SQLite store keeps them)."""
    return _ENCODER.encode(value) if value else None


def _text(value: str | None) -> str | None:
    """A message for a TEXT column: PostgreSQL refuses NUL characters, which an exception's
    message may hold."""
    return value.replace("\x00", "\\x00") if value and "\x00" in value else value


class PostgresStore:
    """The MetadataStore on the PostgreSQL database ``dsn`` (``postgresql://user@host/db`` or
    ``key=value`` form). Opening it brings the schema up to date (``upgrade()``), unless
    ``readonly``: then it writes nothing, and refuses a database whose schema is older than
    this cadenza's (run ``cadenza db upgrade``). ``upgrade=False``: leave an older schema as
    it is, for :meth:`upgrade` to bring up to date (``cadenza db upgrade``, which says what it
    applies)."""

    def __init__(self, dsn: str, *, readonly: bool = False, upgrade: bool = True) -> None:
        self.dsn = dsn
        self.where = redact(dsn)
        """The DSN without its password: what repr and messages show."""
        self._readonly = readonly
        self._pool = acquire_pool(dsn)
        self._pid = os.getpid()
        self._closed = False
        try:
            version = self.schema_version()
            todo = pending(BACKEND, version, self.where)
            if todo and readonly:
                have = (f"has schema version {version}, older than this cadenza's "
                        f"({SCHEMA_VERSION})" if version else "has no cadenza schema yet")
                raise StoreError(
                    f"The PostgreSQL store {self.where!r} {have}, and was opened read-only. "
                    "Create or upgrade the schema with `cadenza db upgrade` (any command that "
                    "writes, such as `cadenza run`, does it too), then run this command "
                    "again.", path=self.where)
            if todo and upgrade:
                self._migrate()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r}{', readonly=True' if self._readonly else ''})"

    # -- plumbing ---------------------------------------------------------------------------

    def _recheck(self) -> None:
        """After a connection was found cut (the server restarted): test the pool's idle
        connections and replace the dead ones, so that the next call gets a working one."""
        with contextlib.suppress(psycopg.Error):  # still away: the pool reconnects later
            self._pool.check()

    def _writable(self) -> None:
        if self._readonly:
            raise StoreError(f"The PostgreSQL store {self.where!r} was opened read-only, so "
                             "it cannot be written; open it without readonly=True.",
                             path=self.where)

    def _connection(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        """A connection of this process's pool. A process forked from the one that opened
        the store gets a pool of its own: the parent's connections are the parent's."""
        if self._pid != os.getpid():
            self._pool, self._pid = acquire_pool(self.dsn), os.getpid()
        return self._pool.connection()

    def _call(self, work: Callable[[psycopg.Connection[Any]], _T], *, write: bool = True,
              pipeline: bool = False, idempotent: bool = True) -> _T:
        """``work(db)`` on a connection of the pool; with ``write``, in one transaction,
        committed when it returns (rolled back if it raises), and with ``pipeline``, sent
        without waiting for replies until a result is needed (``BEGIN`` and ``COMMIT`` too).

        When the server cut the connection (it restarted): a call cut before anything was
        sent is made again on another connection; one cut after has an unknown outcome (the
        server may have committed it), and is made again only if ``idempotent``: making it
        twice leaves what making it once does. Reads are. A transaction the server rolled back
        to break a deadlock (or a serialization failure) committed nothing: it is made again,
        whatever ``idempotent`` says. Tries go on while the pool reconnects, up to RETRY_WITHIN
        seconds after the first failure; then, or on any other lost or unreachable server,
        one StoreError."""
        if write:
            self._writable()
        failed: float | None = None
        pause = 0.05
        while True:
            db: psycopg.Connection[Any] | None = None
            sent = False
            try:
                with self._connection() as db:
                    if not usable(db):  # cut while it sat in the pool: nothing sent yet
                        self._recheck()
                        continue
                    sent = True
                    if not write:
                        return work(db)
                    with contextlib.ExitStack() as stack:
                        if pipeline:
                            stack.enter_context(db.pipeline())
                        stack.enter_context(db.transaction())
                        result = work(db)
                    return result
            except PoolTimeout as exc:
                raise StoreError(
                    f"No connection to the PostgreSQL store {self.where!r} could be had "
                    f"within {POOL_TIMEOUT:g} s ({said(exc, self.dsn)}). Check that the "
                    "server is running and accepts connections, then run the command again.",
                    path=self.where) from None
            except psycopg.errors.LockNotAvailable:  # waited LOCK_WAIT_MS: rolled back
                self._end_stalled()
                continue  # and wait again, as long as a live holder keeps its lock
            except ROLLED_BACK as exc:  # the server rolled it back: none of it holds
                now = time.monotonic()
                failed = failed if failed is not None else now
                if now - failed > RETRY_WITHIN:
                    raise StoreError(
                        f"The PostgreSQL store {self.where!r} kept rolling a write back for "
                        f"{RETRY_WITHIN:g} s ({said(exc, self.dsn)}): other writers hold what "
                        "it needs. Run the command again.", path=self.where) from None
            except psycopg.OperationalError as exc:
                self._recheck()
                cut = db is not None and (db.broken or db.closed)
                now = time.monotonic()
                failed = failed if failed is not None else now
                if not cut or (sent and not idempotent) or now - failed > RETRY_WITHIN:
                    raise unreachable(self.dsn, exc) from None
            time.sleep(pause)  # the server is coming back: the pool reconnects meanwhile
            pause = min(pause * 2, 1.0)

    def _end_stalled(self) -> None:
        """End the cadenza sessions of this database stalled for IDLE_IN_TRANSACTION_MS in
        the middle of a pipeline: their client stopped (SIGSTOP, a frozen VM) after sending
        part of a batch. The server counts such a session as active, waiting to read from its
        client, so idle_in_transaction_session_timeout never ends it, and it would hold its
        row and advisory locks until its client woke. A healthy client sends a whole batch at
        once, so none of its sessions waits on itself that long."""
        with self._connection() as db:
            db.execute(_END_STALLED, (APPLICATION, IDLE_IN_TRANSACTION_MS / 1000))

    def _read(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query (made again on another connection if the server cut it)."""
        return self._call(lambda db: db.execute(sql, args).fetchall(), write=False)

    # -- schema -----------------------------------------------------------------------------

    def schema_version(self) -> int:
        """How many of store/migrations/postgres/ the database has applied (0: none)."""
        rows = self._read("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not rows[0][0]:
            return 0
        return int(self._read("SELECT COALESCE(max(version), 0) FROM schema_migrations")[0][0])

    def upgrade(self) -> list[Migration]:
        """Apply the migrations the database lacks, each in its own transaction under an
        advisory lock (two processes upgrading at once apply each one once); the ones applied
        here, oldest first. StoreError when the database is newer than this cadenza."""
        if self._readonly:
            raise StoreError(f"The PostgreSQL store {self.where!r} was opened read-only, so "
                             "it cannot be upgraded; open it without readonly=True.",
                             path=self.where)
        return self._migrate()

    def _migrate(self) -> list[Migration]:
        applied: list[Migration] = []

        def step(db: psycopg.Connection[Any]) -> Migration | None:
            # under the lock, the version is read again: another process may have applied the
            # same migration while this one waited for it (or this one, before a lost reply)
            db.execute("SET LOCAL lock_timeout = 0")  # another upgrade may take a while
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            db.execute(_MIGRATIONS_TABLE)
            row = db.execute("SELECT COALESCE(max(version), 0) FROM schema_migrations"
                             ).fetchone()
            todo = pending(BACKEND, int(row[0]) if row else 0, self.where)
            if not todo:
                return None
            for statement in todo[0].statements():
                db.execute(statement.encode())  # bytes: no %s placeholders in DDL
            db.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                       f"VALUES (%s, %s, {_NOW})", (todo[0].version, todo[0].name))
            return todo[0]

        while (done := self._call(step)) is not None:
            applied.append(done)
        return applied

    def integrity_check(self) -> str:
        """``ok`` when the server answers and every table of the schema is there; else what
        is wrong (PostgreSQL checks its own pages: there is no PRAGMA integrity_check)."""
        version = self.schema_version()
        if version != SCHEMA_VERSION:
            return f"schema version {version}, expected {SCHEMA_VERSION}"
        wanted = set(re.findall(r"CREATE TABLE (\w+)", migrations(BACKEND)[0].sql))
        found = {name for (name,) in self._read(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        missing = sorted(wanted - found)
        return f"missing tables: {', '.join(missing)}" if missing else "ok"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            release_pool(self.dsn)

    # -- writing ----------------------------------------------------------------------------

    def apply(self, batch: Batch, fence: Fence | None = None) -> None:
        """Write ``batch`` in one transaction (one pipeline). Every row is an upsert or keyed
        (events by their key, artifacts by their hash), so a batch written twice is written
        once: a commit whose reply was lost (the server restarted) is made again."""
        if not batch and fence is None:
            return
        try:
            self._call(lambda db: self._apply(db, batch, fence), pipeline=True)
        except psycopg.errors.InvalidTextRepresentation as refused:
            if fence is None or _FENCED not in str(refused):
                raise
            owner = self._read("SELECT owner FROM runs WHERE run_id = %s", fence[:1])
            raise ClaimLostError(fence[0], owner[0][0] if owner else None) from None

    def _apply(self, db: psycopg.Connection[Any], batch: Batch, fence: Fence | None) -> None:
        if fence is not None:
            # The row lock orders this batch before any claim that takes the run over. The
            # check is the server's (an error ends the transaction), not a reply the client
            # waits for: a client stopped while it held the lock (SIGSTOP) would block every
            # other writer of the run, with the server waiting on it mid-pipeline.
            db.execute(_FENCE, (fence[1], fence[0]))
        cur = db.cursor()
        if batch.runs:
            cur.executemany(_UPSERT_RUN, [
                (r.run_id, r.pipeline, r.state, json.dumps(r.params), r.created_at,
                 r.target, r.started_at, r.ended_at, r.logical_date, r.interval_start,
                 r.interval_end, r.runner_pid, r.heartbeat, r.cancel_requested, r.owner,
                 r.epoch)
                for r in batch.runs
            ])
        if batch.task_instances:
            tis = [(t.run_id, t.task, t.map_index, t.state, t.attempt, t.cache_key,
                    t.output, _dumps(t.files), _float(t.started_at), _float(t.ended_at),
                    _text(t.error)) for t in batch.task_instances]
            cur.execute(_UPSERT_TI, _columns(_last_per_key(tis, 3), 11))
        if batch.attempts:
            cur.execute(_UPSERT_ATTEMPT, _columns(self._attempt_rows(batch.attempts), 11))
        if batch.cache:
            entries = [(c.pipeline, c.task, c.key, c.output, _dumps(c.files), c.run_id,
                        float(c.created_at), _ENCODER.encode(c.meta)) for c in batch.cache]
            cur.execute(_UPSERT_CACHE, _columns(_last_per_key(entries, 3), 8))
        if batch.artifacts:
            self._insert_artifacts(db, batch.artifacts)
        if batch.events:
            # Events last, under a lock held until the commit: the ids are handed out in
            # commit order (see the module's docstring), and the lock is held only for the
            # insert and the commit, sent together.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_IDS_LOCK,))
            events = batch.events
            cur.execute(_INSERT_EVENT, [
                _keys(events), [e.run_id for e in events], [e.kind for e in events],
                [float(e.ts) for e in events], [e.task for e in events],
                [e.map_index for e in events], [_dumps(e.data) for e in events]])

    @staticmethod
    def _attempt_rows(attempts: list[AttemptRecord]) -> list[tuple[Any, ...]]:
        """One row per attempt: the last record of it, with the first one's start (an upsert
        keeps the start it inserted)."""
        rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for a in attempts:
            key = (a.run_id, a.task, a.map_index, a.attempt)
            first = rows.get(key)
            rows[key] = (*key, a.state, float(first[5] if first else a.started_at),
                         _float(a.ended_at), _text(a.error), _text(a.traceback), a.log_path,
                         _dumps(a.checks))
        return list(rows.values())

    @staticmethod
    def _insert_artifacts(db: psycopg.Connection[Any], records: list[ArtifactRecord]) -> None:
        # Lineage belongs to the record that was kept: the first one for its hash (a later
        # row of the same hash in the statement meets the first and is ignored). RETURNING
        # names the rows really inserted (a known hash is ignored too).
        cur = db.execute(_INSERT_ARTIFACT, _columns(
            ((a.hash, a.serializer, a.size, a.pipeline, a.task, a.run_id, float(a.created_at),
              a.name, a.uri, a.data) for a in records), 10))
        kept = {hash for (hash,) in cur.fetchall()}
        lineage: list[tuple[str, str]] = []
        for a in records:
            if a.hash in kept:
                kept.discard(a.hash)  # a later record of the same hash was ignored
                lineage += [(a.hash, parent) for parent in a.parents]
        if lineage:
            db.execute(_INSERT_LINEAGE, _columns(lineage, 2))

    # -- claims -----------------------------------------------------------------------------

    def clock(self) -> float:
        return float(self._read(f"SELECT {_NOW}")[0][0])

    def claim_run(self, run_id: str, owner: str, stale_after: float = STALE_AFTER
                  ) -> int | None:
        def claim(db: psycopg.Connection[Any]) -> int | None:
            row = db.execute(
                f"SELECT owner, epoch, {_NOW} - COALESCE(heartbeat, 0) FROM runs "
                "WHERE run_id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(run_id)
            held, epoch, age = row
            if held != owner and owner_live(held, age, stale_after):
                return None
            db.execute(f"UPDATE runs SET owner = %s, epoch = epoch + 1, heartbeat = {_NOW} "
                       "WHERE run_id = %s", (owner, run_id))
            return int(epoch) + 1

        # Made again after a lost reply, the claim finds the run its owner's already and
        # takes it once more: the owner holds it at the newer epoch, the one returned.
        return self._call(claim)

    def heartbeat(self, run_id: str, owner: str, epoch: int) -> bool:
        return self._call(lambda db: db.execute(
            f"UPDATE runs SET heartbeat = {_NOW} WHERE run_id = %s AND owner = %s "
            "AND epoch = %s", (run_id, owner, epoch),
        ).rowcount > 0)

    def release_run(self, run_id: str, owner: str, epoch: int) -> None:
        self._call(lambda db: db.execute(
            "UPDATE runs SET owner = NULL WHERE run_id = %s AND owner = %s AND epoch = %s",
            (run_id, owner, epoch)))

    # -- pool slots -------------------------------------------------------------------------

    def take_slot(self, pool: str, limit: int, holder: SlotHolder,
                  stale_after: float = STALE_AFTER) -> bool:
        key = (pool, holder.run_id, holder.task, holder.map_index)

        def take(db: psycopg.Connection[Any]) -> bool:
            # One taker of this pool at a time, until the commit: the count below sees every
            # slot the takers before took (each statement reads what was committed before it).
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (POOL_LOCKS, _pool_key(pool)))
            held = db.execute(
                f"SELECT s.run_id, s.task, s.map_index, s.epoch, r.epoch, r.owner, "
                f"{_NOW} - COALESCE(r.heartbeat, 0) FROM pool_slots s "
                "LEFT JOIN runs r ON r.run_id = s.run_id WHERE s.pool = %s", (pool,),
            ).fetchall()
            verdict, dead = judge_slots(held, holder, limit, stale_after)
            if dead:
                with db.cursor() as cur:
                    cur.executemany("DELETE FROM pool_slots WHERE pool = %s AND run_id = %s "
                                    "AND task = %s AND map_index = %s",
                                    [(pool, *d) for d in dead])
            if verdict is not None:
                return verdict
            db.execute("INSERT INTO pool_slots (pool, run_id, task, map_index, epoch, taken_at) "
                       f"VALUES (%s, %s, %s, %s, %s, {_NOW})", (*key, holder.epoch))
            return True

        # Made again after a lost reply, the taker finds its slot there and says True.
        return self._call(take)

    def release_slot(self, pool: str, holder: SlotHolder) -> None:
        self._call(lambda db: db.execute(
            "DELETE FROM pool_slots WHERE pool = %s AND run_id = %s AND task = %s "
            "AND map_index = %s AND epoch = %s",
            (pool, holder.run_id, holder.task, holder.map_index, holder.epoch)))

    def release_slots(self, run_id: str, epoch: int) -> None:
        self._call(lambda db: db.execute(
            "DELETE FROM pool_slots WHERE run_id = %s AND epoch = %s", (run_id, epoch)))

    def slots(self, pool: str | None = None) -> list[Slot]:
        where, args = (" WHERE pool = %s", [pool]) if pool is not None else ("", [])
        rows = self._read("SELECT pool, run_id, task, map_index, epoch, taken_at FROM "
                          f"pool_slots{where} ORDER BY taken_at, pool, run_id, task, map_index",
                          args)
        return [Slot(*row) for row in rows]

    def request_cancel(self, run_id: str, requested: bool = True) -> None:
        if not self._call(lambda db: db.execute(
            "UPDATE runs SET cancel_requested = %s WHERE run_id = %s", (requested, run_id)
        ).rowcount):
            raise RunNotFoundError(run_id)

    def decide(self, approval: Approval) -> None:
        self.get_run(approval.run_id)
        self._call(lambda db: db.execute(
            'INSERT INTO approvals (run_id, task, approved, "by", at, reason) '
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, task) DO UPDATE SET "
            'approved = excluded.approved, "by" = excluded."by", at = excluded.at, '
            "reason = excluded.reason",
            (approval.run_id, approval.task, approval.approved, approval.by, approval.at,
             approval.reason),
        ))

    # -- reading ----------------------------------------------------------------------------

    def approvals(self, run_id: str) -> list[Approval]:
        rows = self._read('SELECT run_id, task, approved, "by", at, reason FROM approvals '
                          "WHERE run_id = %s ORDER BY at", (run_id,))
        return [Approval(*row) for row in rows]

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._read(f"SELECT {_sql.RUN_COLS} FROM runs WHERE run_id = %s", (run_id,))
        if not rows:
            raise RunNotFoundError(run_id)
        return _sql.run(rows[0])

    def _newest(self, cols: str, table: str, pipeline: str | None, limit: int | None,
                offset: int = 0) -> list[tuple[Any, ...]]:
        """Rows of ``table``, newest first, of one pipeline or all."""
        where, args = ("WHERE pipeline = %s ", [pipeline]) if pipeline else ("", [])
        return self._read(f"SELECT {cols} FROM {table} {where}ORDER BY created_at DESC "
                          "LIMIT %s OFFSET %s", [*args, limit, offset])

    def list_runs(self, pipeline: str | None = None, limit: int = 50, offset: int = 0
                  ) -> list[RunRecord]:
        rows = self._newest(_sql.RUN_COLS, "runs", pipeline, limit, offset)
        return [_sql.run(row) for row in rows]

    def pipelines(self) -> list[str]:
        # one index probe per pipeline, not a scan of every run (a "loose index scan")
        rows = self._read(
            "WITH RECURSIVE p (name) AS (SELECT min(pipeline) FROM runs UNION ALL "
            "SELECT (SELECT min(pipeline) FROM runs WHERE pipeline > p.name) FROM p "
            "WHERE p.name IS NOT NULL) SELECT name FROM p WHERE name IS NOT NULL"
        )
        return [name for (name,) in rows]

    def task_instances(self, run_id: str, mapped: bool = True) -> list[TaskInstanceRecord]:
        rows = self._read(f"SELECT {_sql.TI_COLS} FROM task_instances WHERE run_id = %s"
                          + ("" if mapped else " AND map_index < 0"), (run_id,))
        return [
            _sql.task_instance(r) for r in rows
        ]

    def attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]:
        sql = f"SELECT {_sql.ATTEMPT_COLS} FROM attempts WHERE run_id = %s"
        args: list[Any] = [run_id]
        if task is not None:
            sql += " AND task = %s"
            args.append(task)
        rows = self._read(sql + " ORDER BY started_at, task, map_index, attempt", args)
        return [
            _sql.attempt(r) for r in rows
        ]

    def _artifacts(self, rows: list[tuple[Any, ...]]) -> list[ArtifactRecord]:
        """Records for artifact rows, with their parents read in one query."""
        parents: dict[str, list[str]] = {}
        if rows:
            for child, parent in self._read(
                "SELECT child, parent FROM lineage WHERE child = ANY(%s) ORDER BY parent",
                ([row[0] for row in rows],),
            ):
                parents.setdefault(child, []).append(parent)
        return [ArtifactRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                               tuple(parents.get(r[0], ())))
                for r in rows]

    def artifact(self, hash: str) -> ArtifactRecord | None:
        rows = self._read(f"SELECT {_sql.ART_COLS} FROM artifacts WHERE hash = %s", (hash,))
        return self._artifacts(rows)[0] if rows else None

    def artifact_data(self, hashes: Collection[str]) -> dict[str, tuple[str, bytes | None]]:
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return {}
        rows = self._read("SELECT hash, serializer, data FROM artifacts WHERE hash = ANY(%s)",
                          (wanted,))
        return {hash: (serializer, data) for hash, serializer, data in rows}

    def artifacts(self, pipeline: str | None = None, limit: int = 100) -> list[ArtifactRecord]:
        cols = _sql.ART_COLS.replace(", data", ", NULL")
        return self._artifacts(self._newest(cols, "artifacts", pipeline, limit))

    def cache_entries(self, pipeline: str, task: str | None = None, *,
                      keys: Collection[str] | None = None, limit: int | None = None
                      ) -> list[CacheEntry]:
        sql = f"SELECT {_sql.CACHE_COLS} FROM cache WHERE pipeline = %s"
        args: list[Any] = [pipeline]
        if task is not None:
            sql += " AND task = %s"
            args.append(task)
        if keys is not None:
            sql += " AND key = ANY(%s)"
            args.append(list(dict.fromkeys(keys)))
        rows = self._read(sql + " ORDER BY created_at DESC LIMIT %s", [*args, limit])
        return [
            _sql.cache_entry(r) for r in rows
        ]

    def newest_cache_entries(self, pipeline: str, tasks: Collection[str]
                             ) -> dict[str, CacheEntry]:
        # one round trip: an index seek per task on the server
        columns = ", ".join(f"c.{name.strip()}" for name in _sql.CACHE_COLS.split(","))
        rows = self._read(
            f"SELECT {columns} FROM unnest(%s::text[]) AS wanted(task) CROSS JOIN LATERAL "
            f"(SELECT {_sql.CACHE_COLS} FROM cache WHERE pipeline = %s AND task = wanted.task "
            "ORDER BY created_at DESC LIMIT 1) AS c", [list(dict.fromkeys(tasks)), pipeline])
        return {r[1]: _sql.cache_entry(r) for r in rows}

    def events(self, run_id: str | None = None, after: int = 0, *, before: int | None = None,
               limit: int | None = None) -> list[Event]:
        sql = f"SELECT {_sql.EVENT_COLS} FROM events WHERE id > %s"
        args: list[Any] = [after]
        if run_id is not None:
            sql += " AND run_id = %s"
            args.append(run_id)
        if before is not None:
            sql += " AND id < %s"
            args.append(before)
        sql += " ORDER BY id DESC" if before is not None else " ORDER BY id"
        rows = self._read(sql + " LIMIT %s", [*args, limit])
        return [_sql.event(r) for r in rows]

    # -- scheduling -------------------------------------------------------------------------

    def create_runs(self, runs: Iterable[RunRecord]) -> list[str]:
        sql = (f"INSERT INTO runs ({_sql.RUN_COLS}) VALUES ({_marks(12)}, "
               f"CASE WHEN %s THEN {_NOW} ELSE %s END, %s, %s, %s) "
               "ON CONFLICT DO NOTHING")  # the run's id, or its pipeline's logical date, taken
        todo = list(runs)

        def create(db: psycopg.Connection[Any]) -> list[str]:
            created: list[str] = []
            for run in todo:
                claimed = run.owner is not None  # created claimed: alive as of now, our clock
                if db.execute(sql, (
                    run.run_id, run.pipeline, run.state, json.dumps(run.params),
                    run.created_at, run.target, run.started_at, run.ended_at, run.logical_date,
                    run.interval_start, run.interval_end, run.runner_pid, claimed,
                    run.heartbeat, run.cancel_requested, run.owner,
                    max(run.epoch, 1) if claimed else run.epoch,
                )).rowcount:
                    created.append(run.run_id)
            return created

        # Not made again once sent: made twice, it would find its runs there and say it
        # created none of them.
        return self._call(create, idempotent=False)

    def runs_in_states(self, states: Iterable[str]) -> list[RunRecord]:
        rows = self._read(f"SELECT {_sql.RUN_COLS} FROM runs WHERE state = ANY(%s) "
                          "ORDER BY created_at", (list(states),))
        return [_sql.run(row) for row in rows]

    def latest_intervals(self) -> dict[str, str]:
        # intervals grow with their logical date: the latest logical date has the latest end
        rows = self._read(
            "SELECT DISTINCT ON (pipeline) pipeline, interval_end FROM runs "
            "WHERE logical_date IS NOT NULL ORDER BY pipeline, logical_date DESC"
        )
        return {pipeline: end for pipeline, end in rows if end is not None}

    def set_paused(self, pipeline: str, paused: bool) -> None:
        self._call(lambda db: db.execute(
            f"INSERT INTO pipelines (name, paused, updated_at) VALUES (%s, %s, {_NOW}) "
            "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
            "updated_at = excluded.updated_at", (pipeline, paused),
        ))

    def paused(self) -> set[str]:
        return {name for (name,) in self._read("SELECT name FROM pipelines WHERE paused")}

    def get_cursor(self, key: str) -> Any:
        rows = self._read("SELECT value FROM cursors WHERE key = %s", (key,))
        return json.loads(rows[0][0]) if rows else None

    def set_cursor(self, key: str, value: Any) -> None:
        self._call(lambda db: db.execute(
            f"INSERT INTO cursors (key, value, updated_at) VALUES (%s, %s, {_NOW}) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at", (key, json.dumps(value)),
        ))

    def acquire_lease(self, name: str, holder: str, until: float, now: float) -> str | None:
        """``now`` is the caller's reading of this store's clock (the scheduler passes
        ``clock()``, the database's time), so a lease is judged on one clock for every host."""
        def acquire(db: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
            db.execute(
                "INSERT INTO leases (name, holder, until) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "until = excluded.until WHERE leases.holder = excluded.holder "
                "OR leases.until < %s", (name, holder, until, now),
            )
            return db.execute("SELECT holder FROM leases WHERE name = %s", (name,)).fetchone()

        row = self._call(acquire)  # made again, the holder renews its own lease
        return str(row[0]) if row else None

    def release_lease(self, name: str, holder: str) -> None:
        self._call(lambda db: db.execute(
            "DELETE FROM leases WHERE name = %s AND holder = %s", (name, holder)))

    # -- versions and aliases ---------------------------------------------------------------

    def versions(self, pipeline: str, task: str, name: str = "return",
                 limit: int | None = None) -> list[ArtifactRecord]:
        cols = _sql.ART_COLS.replace(", data", ", NULL")
        return self._artifacts(self._read(
            f"SELECT {cols} FROM artifacts WHERE pipeline = %s AND task = %s AND name = %s "
            "ORDER BY created_at DESC LIMIT %s", (pipeline, task, name, limit),
        ))

    def set_alias(self, change: AliasChange) -> None:
        self._call(lambda db: db.execute(
            'INSERT INTO aliases (pipeline, task, name, alias, hash, at, "by") '
            "VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (pipeline, task, name, alias, at) DO UPDATE SET "
            'hash = excluded.hash, "by" = excluded."by"',
            (change.pipeline, change.task, change.name, change.alias, change.hash,
             change.at, change.by),
        ))

    def alias_history(self, pipeline: str, task: str, alias: str, name: str = "return"
                      ) -> list[AliasChange]:
        rows = self._read(
            'SELECT pipeline, task, alias, hash, at, "by", name FROM aliases WHERE '
            "pipeline = %s AND task = %s AND alias = %s AND name = %s ORDER BY at DESC",
            (pipeline, task, alias, name),
        )
        return [AliasChange(*row) for row in rows]
