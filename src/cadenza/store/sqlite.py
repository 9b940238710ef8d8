"""The default MetadataStore: one SQLite file in WAL mode, one writer, ``BEGIN IMMEDIATE``.

``synchronous=NORMAL`` in WAL mode keeps every commit across a crash of the process (SIGKILL);
only a power loss can take back the last commits. ``durable=True`` switches to ``FULL``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cadenza._files import create_file
from cadenza.exceptions import (
    CadenzaError,
    ClaimLostError,
    RunNotFoundError,
    StoreBusyError,
    StoreDamagedError,
    StoreError,
    StoreFullError,
)
from cadenza.store import _sql
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

BACKEND = "sqlite"
SCHEMA_VERSION = latest(BACKEND)
"""The schema version this cadenza writes: its newest file in store/migrations/sqlite/."""
_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL
)"""

_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
"""The store's clock in SQL, seconds since 1970 (``unixepoch('subsec')`` needs SQLite 3.42)."""
_IN_CHUNK = 500
"""Values in one ``IN (...)`` list: well under SQLite's limit on a statement's variables."""


DEFAULT_TIMEOUT = 30.0
"""Seconds a write waits for another process's write lock (CADENZA_DB_TIMEOUT sets it)."""
TIMEOUT_ENV = "CADENZA_DB_TIMEOUT"
WAL_LIMIT = 16 << 20
"""Bytes of -wal file past which a writer waits for readers to let it empty the file."""
CHECKPOINT_EVERY = 50
"""Commits between two checkpoints of a writer's own (or CHECKPOINT_SECONDS, if sooner)."""
CHECKPOINT_SECONDS = 10.0
CHECKPOINT_WAIT = 0.05
"""Seconds a checkpoint past WAL_LIMIT waits for readers; if they stay, it tries again later."""
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_UNUSABLE = (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY,
             sqlite3.SQLITE_PERM)
_ROOM = 1 << 20
"""Free bytes under which a disk counts as full when SQLite reports an I/O error."""


def disk_full(folder: Path) -> bool:
    """Whether the disk holding ``folder`` has (next to) no room left for this user."""
    try:
        found = os.statvfs(folder)
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < _ROOM


def timeout_from_env(environ: Mapping[str, str] | None = None) -> float:
    """CADENZA_DB_TIMEOUT as seconds (DEFAULT_TIMEOUT when unset); a bad value is an error."""
    text = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < math.inf:
        raise CadenzaError(
            f"{TIMEOUT_ENV}={text!r} is not a number of seconds: set it to how long a write "
            f"may wait for another process's lock, e.g. {TIMEOUT_ENV}=60, or unset it for "
            f"{DEFAULT_TIMEOUT:g} s."
        )
    return seconds


def _code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of ``exc`` (-1 when it has none)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return -1 if code is None else int(code) & 0xFF


def _version(db: sqlite3.Connection) -> int:
    """The schema version of the file ``db`` is open on (0: it has no tables yet).

    A file made before schema_migrations existed says its version in the ``meta`` row
    ``schema_version`` (1, or 2 once runs had owners); the columns of its runs table are
    believed over that row, which a crash between the two writes could have left behind."""
    try:
        return int(db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] or 0)
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if not have:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    said = int(row[0]) if row is not None and str(row[0]).isdigit() else 1
    return max(said, 2 if {"owner", "epoch"} <= have else 1)


def _adopt(db: sqlite3.Connection) -> None:
    """Record in schema_migrations the version an older file is at (inside the caller's
    write); its ``meta`` row goes, so that the version is kept in one place."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone():
        return
    version = _version(db)
    db.execute(_MIGRATIONS_TABLE)
    if version:
        # 0001 again, over the old file: all IF NOT EXISTS, it adds the tables an early
        # cadenza did not make yet.
        for statement in migrations(BACKEND)[0].statements():
            db.execute(statement)
    db.executemany(
        f"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, {_NOW})",
        [(m.version, m.name) for m in migrations(BACKEND)[:version]],
    )
    if version:
        db.execute("DELETE FROM meta WHERE key = 'schema_version'")


def _dumps(value: Any) -> str | None:
    return json.dumps(value, separators=(",", ":")) if value else None


class SqliteStore:
    """``timeout``: seconds a write waits for another process's write lock before it fails
    with StoreBusyError (None: CADENZA_DB_TIMEOUT, else DEFAULT_TIMEOUT). ``readonly``: take
    no write lock at all while the schema is current, refuse an older file (it would need
    writing) and every write. ``upgrade=False``: leave an older file as it is, for
    :meth:`upgrade` to bring up to date (``cadenza db upgrade``, which says what it applies)."""

    def __init__(self, path: str | Path, *, durable: bool = False,
                 timeout: float | None = None, readonly: bool = False,
                 upgrade: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not readonly:  # private (SQLite gives its -wal and -shm files the same mode)
            create_file(self.path, self.path.parent)
        self.timeout = timeout_from_env() if timeout is None else timeout
        self._lock = threading.RLock()
        self._readonly = readonly
        """A write then is cadenza's mistake: its error stays SQLite's (query_only)."""
        self._broken: StoreDamagedError | None = None
        """Set once the file failed its check: every later write is refused."""
        self._commits = 0
        self._checkpointed = time.monotonic()
        known = self.path.exists() and self.path.stat().st_size > 0
        had_wal = Path(f"{self.path}-wal").exists()
        self._db = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            with self._faults():
                self._setup(durable, readonly, upgrade, known and not had_wal)
        except BaseException:
            self._db.close()
            raise

    def _setup(self, durable: bool, readonly: bool, upgrade: bool, walless: bool) -> None:
        db = self._db
        # The busy timeout comes first: every statement below may meet another process's lock.
        db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        have = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._switch_to_wal()
        elif walless and not have and not self._tables_come():
            # In WAL mode, with tables nowhere: they were written to a -wal file that is not
            # here (a store made by cadenza has them in the main file once closed).
            raise StoreDamagedError(
                str(self.path), f"it has no tables, and no {self.path.name}-wal file beside it",
                f"It looks like a copy made without its {self.path.name}-wal file, which holds "
                "the recent writes: copy that file with it, or copy a live store with "
                f"`sqlite3 SOURCE \".backup {self.path.name}\"`.",
            )
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        # Up to 64 MiB of pages in memory (the default is 2 MiB): a large fan-out inserts into
        # indexes keyed by hash, at random places, and with a small cache each insert reads
        # its page back from the file. The cache grows only as pages are used.
        db.execute("PRAGMA cache_size=-65536")
        # A -wal file that grew while readers kept it in use is cut back to this when reused.
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        if not readonly and self._marker.exists():
            self._check_again()
        # Opening takes no write lock when the schema is current: a reader (`cadenza status`)
        # opens while another process writes. A writer brings an older file up to date in
        # place; a reader refuses to, as it writes nothing (but it makes a new file's tables,
        # as a writer would).
        version = _version(db)
        todo = pending(BACKEND, version, str(self.path))
        if readonly and todo and version:
            raise StoreError(
                f"The store {str(self.path)!r} has schema version {version}, older than this "
                f"cadenza's ({SCHEMA_VERSION}), and was opened read-only. Upgrade it in place "
                "with `cadenza db upgrade` (any command that writes, such as `cadenza run`, "
                "does it too), then run this command again.", path=str(self.path))
        unrecorded = "schema_migrations" not in have  # made before that table existed
        if upgrade and (version == 0 or (not readonly and (todo or unrecorded))):
            self._migrate()
        if readonly:
            db.execute("PRAGMA query_only=ON")

    def schema_version(self) -> int:
        """The version of the schema in the file: how many of store/migrations/sqlite/ it has
        applied (SCHEMA_VERSION once current)."""
        with self._lock, self._faults():
            return _version(self._db)

    def upgrade(self) -> list[Migration]:
        """Apply the migrations the file lacks, each in its own ``BEGIN IMMEDIATE``
        transaction; the ones applied here, oldest first (none when it was current, or when
        another process upgraded it meanwhile). StoreError when the file is newer than this
        cadenza."""
        if self._readonly:
            raise StoreError(f"The store {str(self.path)!r} was opened read-only, so it cannot "
                             "be upgraded; open it without readonly=True.", path=str(self.path))
        return self._migrate()

    def _migrate(self) -> list[Migration]:
        applied: list[Migration] = []
        while True:
            # The version is read again under the lock: another process may have applied
            # the same migration while this one waited for it.
            with self._write() as db:
                _adopt(db)
                todo = pending(BACKEND, _version(db), str(self.path))
                if not todo:
                    return applied
                for statement in todo[0].statements():
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                           f"VALUES (?, ?, {_NOW})", (todo[0].version, todo[0].name))
            applied.append(todo[0])

    def _tables_come(self) -> bool:
        """Whether the tables of a file in WAL mode that has none appear within a second: they
        do when another process made the file a moment ago and is writing them now."""
        for _ in range(50):
            time.sleep(0.02)
            if self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                return True
        return False

    def _switch_to_wal(self) -> None:
        """``PRAGMA journal_mode=WAL``, tried again until the timeout: on a new file, another
        process opening it at the same moment may hold the lock the switch needs, and SQLite
        then fails at once instead of waiting (its busy handler is not called there)."""
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                if _code(exc) not in _BUSY or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause * (0.5 + random.random()))  # jitter: the openers drift apart
            pause = min(pause * 2, 0.05)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """SQLite's errors about the file itself, as one StoreError each; others unchanged."""
        try:
            yield
        except sqlite3.Error as exc:
            code = _code(exc)
            if code in _BUSY:
                raise StoreBusyError(str(self.path), self.timeout) from exc
            # a full disk fails the -shm file with an I/O error, not SQLITE_FULL
            full = code == sqlite3.SQLITE_IOERR and disk_full(self.path.parent)
            if code == sqlite3.SQLITE_FULL or full:
                raise StoreFullError(str(self.path), str(exc)) from exc
            if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise self._damaged(exc) from exc
            if code in _UNUSABLE and not (self._readonly and code == sqlite3.SQLITE_READONLY):
                raise StoreError(
                    f"The store {str(self.path)!r} could not be read or written ({exc}). Check "
                    "the disk and the permissions of the file and its folder (its -wal and "
                    "-shm files are made beside it), then run the command again.",
                    path=str(self.path),
                ) from exc
            raise

    def _damaged(self, exc: sqlite3.Error) -> StoreDamagedError:
        """What ``PRAGMA quick_check`` says of the file, after ``exc`` said it is damaged;
        from now on this store writes nothing."""
        try:
            found = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        except sqlite3.Error as again:
            found = [str(again)]
        problem = str(exc) if found == [str(exc)] else (
            f"{exc}; PRAGMA quick_check says: {'; '.join(found)}")
        self._broken = StoreDamagedError(str(self.path), problem)
        with contextlib.suppress(OSError):  # so that no other process writes to it either
            self._marker.write_text(problem + "\n")
        return self._broken

    @property
    def _marker(self) -> Path:
        """Beside a file that failed its check: writers check it again before using it."""
        return Path(f"{self.path}-damaged")

    def _check_again(self) -> None:
        """Raise StoreDamagedError unless a file that once failed its check passes it now (it
        was restored, or repaired)."""
        found = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        if found != ["ok"]:
            raise StoreDamagedError(str(self.path), "; ".join(found))
        self._marker.unlink(missing_ok=True)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._faults():
            if self._broken is not None:
                raise self._broken
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back itself (disk full)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._commits += 1
            if (self._commits % CHECKPOINT_EVERY == 0
                    or time.monotonic() - self._checkpointed > CHECKPOINT_SECONDS):
                self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the -wal file's pages into the database, so that it stops growing.

        SQLite's own checkpoints (every ~4 MiB) copy only the pages no reader still uses, and
        the -wal file restarts from its beginning only once a checkpoint is complete; readers
        that come and go all the time (the UI) can keep that from ever happening, and the file
        grew past 90 MiB in 5,000 commits (tests/faults/test_storage.py). So every
        CHECKPOINT_EVERY commits (or CHECKPOINT_SECONDS) this one checkpoints what it can
        (PASSIVE: it waits for nobody), and past WAL_LIMIT waits up to CHECKPOINT_WAIT for the
        readers of old pages to finish, then empties the file (TRUNCATE)."""
        self._checkpointed = time.monotonic()
        try:  # the commit is done: a checkpoint that fails loses nothing, and is tried again
            frames = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
            if frames * self._page_size() <= WAL_LIMIT:
                return
            self._db.execute(f"PRAGMA busy_timeout={int(CHECKPOINT_WAIT * 1000)}")
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self._db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        except sqlite3.OperationalError:
            pass

    def _page_size(self) -> int:
        return int(self._db.execute("PRAGMA page_size").fetchone()[0])

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._faults():
            return self._db.execute(sql, args).fetchall()

    # -- writing ----------------------------------------------------------------------------

    def apply(self, batch: Batch, fence: Fence | None = None) -> None:
        # One JSON encoder for the batch: json.dumps builds one per value, which costs more
        # than encoding a cache entry's meta. Empty values are stored as NULL.
        from json import encoder as json_encoder

        compact = json.JSONEncoder(separators=(",", ":"))
        make = getattr(json_encoder, "c_make_encoder", None)  # None without the C speedups
        chunks = None if make is None else make(  # as compact.encode would make it
            {}, compact.default, json_encoder.encode_basestring_ascii, None, ":", ",", False,
            False, True,
        )

        def dumps(value: Any) -> str:
            return compact.encode(value) if chunks is None else "".join(chunks(value, 0))

        def insert(head: str, rows: list[tuple[Any, ...]], tail: str = "") -> None:
            # A batch may hold thousands of rows: one statement per 64 of them costs less
            # than one per row. The rest go row by row, so each table has two statements.
            one = f"({', '.join('?' * len(rows[0]))})"
            whole = len(rows) - len(rows) % 64
            if whole:
                sql = f"{head} VALUES {', '.join([one] * 64)}{tail}"
                for start in range(0, whole, 64):
                    db.execute(sql, [value for row in rows[start:start + 64] for value in row])
            if whole < len(rows):
                db.executemany(f"{head} VALUES {one}{tail}", rows[whole:])

        with self._write() as db:
            if fence is not None:  # one indexed read in the same transaction as the writes
                held = db.execute("SELECT epoch, owner FROM runs WHERE run_id = ?",
                                  fence[:1]).fetchone()
                if held is None or held[0] != fence[1]:
                    raise ClaimLostError(fence[0], held[1] if held else None)
            if batch.runs:
                insert(
                    f"INSERT INTO runs ({_sql.RUN_COLS})",
                    [
                        (r.run_id, r.pipeline, r.state, json.dumps(r.params), r.created_at,
                         r.target, r.started_at, r.ended_at, r.logical_date, r.interval_start,
                         r.interval_end, r.runner_pid, r.heartbeat, int(r.cancel_requested),
                         r.owner, r.epoch)
                        for r in batch.runs
                    ],
                    # owner, epoch and heartbeat are the claim's (claim_run, heartbeat)
                    " ON CONFLICT (run_id) DO UPDATE SET state=excluded.state, "
                    "params=excluded.params, started_at=excluded.started_at, "
                    "ended_at=excluded.ended_at, runner_pid=excluded.runner_pid",
                )
            if batch.task_instances:
                insert(  # an upsert updates in place; REPLACE would delete + insert
                    f"INSERT INTO task_instances ({_sql.TI_COLS})",
                    [
                        (t.run_id, t.task, t.map_index, t.state, t.attempt, t.cache_key,
                         t.output, dumps(t.files) if t.files else None, t.started_at,
                         t.ended_at, t.error)
                        for t in batch.task_instances
                    ],
                    " ON CONFLICT (run_id, task, map_index) DO UPDATE SET state=excluded.state, "
                    "attempt=excluded.attempt, cache_key=excluded.cache_key, "
                    "output=excluded.output, files=excluded.files, "
                    "started_at=excluded.started_at, ended_at=excluded.ended_at, "
                    "error=excluded.error",
                )
            if batch.attempts:
                insert(
                    f"INSERT INTO attempts ({_sql.ATTEMPT_COLS})",
                    [
                        (a.run_id, a.task, a.map_index, a.attempt, a.state, a.started_at,
                         a.ended_at, a.error, a.traceback, a.log_path,
                         dumps(a.checks) if a.checks else None)
                        for a in batch.attempts
                    ],
                    " ON CONFLICT (run_id, task, map_index, attempt) DO UPDATE SET "
                    "state=excluded.state, ended_at=excluded.ended_at, error=excluded.error, "
                    "traceback=excluded.traceback, log_path=excluded.log_path, "
                    "checks=excluded.checks",
                )
            if batch.artifacts:
                # Lineage belongs to the record that was kept: the first one for its hash.
                # RETURNING names the rows really inserted (a known hash is ignored), so no
                # lineage row needs a query of its own to find out.
                kept: set[str] = set()
                rows = [(a.hash, a.serializer, a.size, a.pipeline, a.task, a.run_id,
                         a.created_at, a.name, a.uri, a.data) for a in batch.artifacts]
                for start in range(0, len(rows), 64):
                    chunk = rows[start:start + 64]
                    kept.update(hash for (hash,) in db.execute(
                        f"INSERT OR IGNORE INTO artifacts ({_sql.ART_COLS}) VALUES "
                        f"{', '.join(['(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'] * len(chunk))} "
                        "RETURNING hash", [value for row in chunk for value in row],
                    ))
                lineage: list[tuple[str, str]] = []
                for a in batch.artifacts:
                    if a.hash in kept:
                        kept.discard(a.hash)  # a later record of the same hash was ignored
                        lineage += [(a.hash, parent) for parent in a.parents]
                if lineage:
                    insert("INSERT OR IGNORE INTO lineage (child, parent)", lineage)
            if batch.cache:
                insert(
                    f"INSERT OR REPLACE INTO cache ({_sql.CACHE_COLS})",
                    [
                        (c.pipeline, c.task, c.key, c.output,
                         dumps(c.files) if c.files else None, c.run_id, c.created_at,
                         dumps(c.meta))
                        for c in batch.cache
                    ],
                )
            if batch.events:
                insert(
                    "INSERT INTO events (run_id, kind, ts, task, map_index, data)",
                    [
                        (e.run_id, e.kind, e.ts, e.task, e.map_index,
                         dumps(e.data) if e.data else None)
                        for e in batch.events
                    ],
                )

    # -- claims -----------------------------------------------------------------------------

    def clock(self) -> float:
        return float(self._read(f"SELECT {_NOW}")[0][0])

    def claim_run(self, run_id: str, owner: str, stale_after: float = STALE_AFTER
                  ) -> int | None:
        with self._write() as db:
            row = db.execute(
                f"SELECT owner, epoch, {_NOW} - COALESCE(heartbeat, 0) FROM runs "
                "WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(run_id)
            held, epoch, age = row
            if held != owner and owner_live(held, age, stale_after):
                return None
            db.execute(  # the epoch in WHERE keeps it a compare-and-set in any isolation
                f"UPDATE runs SET owner = ?, epoch = epoch + 1, heartbeat = {_NOW} "
                "WHERE run_id = ? AND epoch = ?", (owner, run_id, epoch),
            )
        return int(epoch) + 1

    def heartbeat(self, run_id: str, owner: str, epoch: int) -> bool:
        with self._write() as db:
            return bool(db.execute(
                f"UPDATE runs SET heartbeat = {_NOW} WHERE run_id = ? AND owner = ? "
                "AND epoch = ?", (run_id, owner, epoch),
            ).rowcount)

    def release_run(self, run_id: str, owner: str, epoch: int) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET owner = NULL WHERE run_id = ? AND owner = ? AND epoch = ?",
                       (run_id, owner, epoch))

    # -- pool slots -------------------------------------------------------------------------

    def take_slot(self, pool: str, limit: int, holder: SlotHolder,
                  stale_after: float = STALE_AFTER) -> bool:
        key = (pool, holder.run_id, holder.task, holder.map_index)
        with self._write() as db:  # BEGIN IMMEDIATE: no other writer between count and insert
            held = db.execute(
                f"SELECT s.run_id, s.task, s.map_index, s.epoch, r.epoch, r.owner, "
                f"{_NOW} - COALESCE(r.heartbeat, 0) FROM pool_slots s "
                "LEFT JOIN runs r ON r.run_id = s.run_id WHERE s.pool = ?", (pool,),
            ).fetchall()
            verdict, dead = judge_slots(held, holder, limit, stale_after)
            if dead:
                db.executemany("DELETE FROM pool_slots WHERE pool = ? AND run_id = ? "
                               "AND task = ? AND map_index = ?", [(pool, *d) for d in dead])
            if verdict is not None:
                return verdict
            db.execute("INSERT INTO pool_slots (pool, run_id, task, map_index, epoch, taken_at) "
                       f"VALUES (?, ?, ?, ?, ?, {_NOW})", (*key, holder.epoch))
        return True

    def release_slot(self, pool: str, holder: SlotHolder) -> None:
        with self._write() as db:
            db.execute("DELETE FROM pool_slots WHERE pool = ? AND run_id = ? AND task = ? "
                       "AND map_index = ? AND epoch = ?",
                       (pool, holder.run_id, holder.task, holder.map_index, holder.epoch))

    def release_slots(self, run_id: str, epoch: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM pool_slots WHERE run_id = ? AND epoch = ?", (run_id, epoch))

    def slots(self, pool: str | None = None) -> list[Slot]:
        where, args = (" WHERE pool = ?", (pool,)) if pool is not None else ("", ())
        rows = self._read("SELECT pool, run_id, task, map_index, epoch, taken_at FROM "
                          f"pool_slots{where} ORDER BY taken_at, pool, run_id, task, map_index",
                          args)
        return [Slot(*row) for row in rows]

    def request_cancel(self, run_id: str, requested: bool = True) -> None:
        with self._write() as db:
            if not db.execute(
                "UPDATE runs SET cancel_requested = ? WHERE run_id = ?", (int(requested), run_id)
            ).rowcount:
                raise RunNotFoundError(run_id)

    def decide(self, approval: Approval) -> None:
        self.get_run(approval.run_id)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO approvals (run_id, task, approved, by, at, reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (approval.run_id, approval.task, int(approval.approved), approval.by,
                 approval.at, approval.reason),
            )

    # -- reading ----------------------------------------------------------------------------

    def approvals(self, run_id: str) -> list[Approval]:
        rows = self._read(
            "SELECT run_id, task, approved, by, at, reason FROM approvals WHERE run_id = ? "
            "ORDER BY at", (run_id,),
        )
        return [Approval(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._read(f"SELECT {_sql.RUN_COLS} FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise RunNotFoundError(run_id)
        return _sql.run(rows[0])

    def _newest(self, cols: str, table: str, pipeline: str | None, limit: int, offset: int = 0
                ) -> list[tuple[Any, ...]]:
        """Rows of ``table``, newest first, of one pipeline or all."""
        where, args = ("WHERE pipeline = ? ", (pipeline,)) if pipeline else ("", ())
        return self._read(
            f"SELECT {cols} FROM {table} {where}ORDER BY created_at DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )

    def list_runs(self, pipeline: str | None = None, limit: int = 50, offset: int = 0
                  ) -> list[RunRecord]:
        rows = self._newest(_sql.RUN_COLS, "runs", pipeline, limit, offset)
        return [_sql.run(row) for row in rows]

    def pipelines(self) -> list[str]:
        # a skip-scan over the index: one probe per pipeline, not one per run
        found: list[str] = []
        row = self._read("SELECT MIN(pipeline) FROM runs")
        while row and row[0][0] is not None:
            found.append(row[0][0])
            row = self._read("SELECT MIN(pipeline) FROM runs WHERE pipeline > ?", (found[-1],))
        return found

    def task_instances(self, run_id: str, mapped: bool = True) -> list[TaskInstanceRecord]:
        rows = self._read(
            f"SELECT {_sql.TI_COLS} FROM task_instances WHERE run_id = ?"
            + ("" if mapped else " AND map_index < 0"), (run_id,)
        )
        return [
            _sql.task_instance(r) for r in rows
        ]

    def attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]:
        sql = f"SELECT {_sql.ATTEMPT_COLS} FROM attempts WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if task is not None:
            sql += " AND task = ?"
            args += (task,)
        rows = self._read(sql + " ORDER BY started_at, task, map_index, attempt", args)
        return [
            _sql.attempt(r) for r in rows
        ]

    def _artifact(self, row: tuple[Any, ...]) -> ArtifactRecord:
        parents = self._read("SELECT parent FROM lineage WHERE child = ? ORDER BY parent", row[:1])
        return ArtifactRecord(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
            tuple(p for (p,) in parents),
        )

    def artifact(self, hash: str) -> ArtifactRecord | None:
        rows = self._read(f"SELECT {_sql.ART_COLS} FROM artifacts WHERE hash = ?", (hash,))
        return self._artifact(rows[0]) if rows else None

    def artifact_data(self, hashes: Collection[str]) -> dict[str, tuple[str, bytes | None]]:
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, tuple[str, bytes | None]] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start:start + _IN_CHUNK]
            rows = self._read("SELECT hash, serializer, data FROM artifacts WHERE hash IN "
                              f"({', '.join('?' * len(chunk))})", tuple(chunk))
            found.update((hash, (serializer, data)) for hash, serializer, data in rows)
        return found

    def artifacts(self, pipeline: str | None = None, limit: int = 100) -> list[ArtifactRecord]:
        cols = _sql.ART_COLS.replace(", data", ", NULL")
        return [self._artifact(row) for row in self._newest(cols, "artifacts", pipeline, limit)]

    def cache_entries(self, pipeline: str, task: str | None = None, *,
                      keys: Collection[str] | None = None, limit: int | None = None
                      ) -> list[CacheEntry]:
        sql = f"SELECT {_sql.CACHE_COLS} FROM cache WHERE pipeline = ?"
        args: tuple[Any, ...] = (pipeline,)
        if task is not None:
            sql += " AND task = ?"
            args += (task,)
        if keys is None:
            rows = self._read(sql + " ORDER BY created_at DESC LIMIT ?",
                              (*args, -1 if limit is None else limit))
        else:  # a statement per _IN_CHUNK keys, so any number fits SQLite's variable limit
            wanted = list(dict.fromkeys(keys))
            rows = []
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start:start + _IN_CHUNK]
                rows += self._read(f"{sql} AND key IN ({', '.join('?' * len(chunk))})",
                                   (*args, *chunk))
            rows.sort(key=lambda r: r[6], reverse=True)  # created_at, newest first
            rows = rows[:limit]
        return [
            _sql.cache_entry(r) for r in rows
        ]

    def newest_cache_entries(self, pipeline: str, tasks: Collection[str]
                             ) -> dict[str, CacheEntry]:
        # an index seek per task, in this process: as cheap as one statement for them all
        found = {task: self.cache_entries(pipeline, task, limit=1) for task in tasks}
        return {task: entries[0] for task, entries in found.items() if entries}

    def events(self, run_id: str | None = None, after: int = 0, *, before: int | None = None,
               limit: int | None = None) -> list[Event]:
        sql = f"SELECT {_sql.EVENT_COLS} FROM events WHERE id > ?"
        args: tuple[Any, ...] = (after,)
        if run_id is not None:
            sql += " AND run_id = ?"
            args += (run_id,)
        if before is not None:
            sql += " AND id < ?"
            args += (before,)
        sql += " ORDER BY id DESC" if before is not None else " ORDER BY id"
        rows = self._read(sql + " LIMIT ?", (*args, -1 if limit is None else limit))
        return [_sql.event(r) for r in rows]

    # -- scheduling -------------------------------------------------------------------------

    def create_runs(self, runs: Iterable[RunRecord]) -> list[str]:
        created: list[str] = []
        sql = f"INSERT OR IGNORE INTO runs ({_sql.RUN_COLS}) VALUES ({', '.join('?' * 16)})"
        with self._write() as db:
            now: float | None = None
            for run in runs:
                beat, epoch = run.heartbeat, run.epoch
                if run.owner is not None:  # created claimed: alive as of now, on our clock
                    now = now or float(db.execute(f"SELECT {_NOW}").fetchone()[0])
                    beat, epoch = now, max(epoch, 1)
                if db.execute(sql, (
                    run.run_id, run.pipeline, run.state, json.dumps(run.params),
                    run.created_at, run.target, run.started_at, run.ended_at, run.logical_date,
                    run.interval_start, run.interval_end, run.runner_pid, beat,
                    int(run.cancel_requested), run.owner, epoch,
                )).rowcount:
                    created.append(run.run_id)
        return created

    def runs_in_states(self, states: Iterable[str]) -> list[RunRecord]:
        wanted = list(states)
        rows = self._read(
            f"SELECT {_sql.RUN_COLS} FROM runs WHERE state IN ({', '.join('?' * len(wanted))}) "
            "ORDER BY created_at", tuple(wanted),
        )
        return [_sql.run(row) for row in rows]

    def latest_intervals(self) -> dict[str, str]:
        # Intervals grow with their logical date, so the row with the latest logical date
        # (found on the unique index) has the latest end; SQLite returns that row's columns.
        rows = self._read(
            "SELECT pipeline, interval_end, MAX(logical_date) FROM runs "
            "WHERE logical_date IS NOT NULL GROUP BY pipeline"
        )
        return {pipeline: end for pipeline, end, _ in rows if end is not None}

    def set_paused(self, pipeline: str, paused: bool) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO pipelines (name, paused, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, "
                "updated_at = excluded.updated_at", (pipeline, int(paused), time.time()),
            )

    def paused(self) -> set[str]:
        return {name for (name,) in self._read("SELECT name FROM pipelines WHERE paused = 1")}

    def get_cursor(self, key: str) -> Any:
        rows = self._read("SELECT value FROM cursors WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def set_cursor(self, key: str, value: Any) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO cursors (key, value, updated_at) VALUES (?, ?, ?)",
                (key, json.dumps(value), time.time()),
            )

    def acquire_lease(self, name: str, holder: str, until: float, now: float) -> str | None:
        with self._write() as db:
            db.execute(
                "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "until = excluded.until WHERE leases.holder = excluded.holder "
                "OR leases.until < ?", (name, holder, until, now),
            )
            row = db.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    # -- versions and aliases ---------------------------------------------------------------

    def versions(self, pipeline: str, task: str, name: str = "return",
                 limit: int | None = None) -> list[ArtifactRecord]:
        cols = _sql.ART_COLS.replace(", data", ", NULL")
        rows = self._read(
            f"SELECT {cols} FROM artifacts WHERE pipeline = ? AND task = ? AND name = ? "
            "ORDER BY created_at DESC LIMIT ?",
            (pipeline, task, name, -1 if limit is None else limit),
        )
        return [self._artifact(row) for row in rows]

    def set_alias(self, change: AliasChange) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO aliases (pipeline, task, name, alias, hash, at, by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (change.pipeline, change.task, change.name, change.alias, change.hash,
                 change.at, change.by),
            )

    def alias_history(self, pipeline: str, task: str, alias: str, name: str = "return"
                      ) -> list[AliasChange]:
        rows = self._read(
            "SELECT pipeline, task, alias, hash, at, by, name FROM aliases WHERE pipeline = ? "
            "AND task = ? AND alias = ? AND name = ? ORDER BY at DESC",
            (pipeline, task, alias, name),
        )
        return [AliasChange(*row) for row in rows]

    def integrity_check(self) -> str:
        return str(self._read("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        with self._lock:
            if self._commits and self._broken is None:
                # idle from now on: leave no -wal file behind for the readers still open (the
                # last connection to close removes it anyway)
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute(f"PRAGMA busy_timeout={int(CHECKPOINT_WAIT * 1000)}")
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            self._db.close()
