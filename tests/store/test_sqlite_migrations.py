"""SQLite schema versions: files made by older cadenzas upgraded in place with their rows, two
processes upgrading at once, read-only opens of an old file, a file newer than this cadenza."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cadenza.exceptions import StoreError
from cadenza.store.migrations import migrations
from cadenza.store.sqlite import SCHEMA_VERSION, SqliteStore

GUARD = 60.0
"""Seconds a process may take before the test fails: a guard against hangs."""

# The runs table and meta row as cadenza wrote them before schema_migrations; version 1 had
# no owner or epoch, version 2 added both.
_RUNS_V1 = (
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, state TEXT NOT NULL, "
    "params TEXT NOT NULL, created_at REAL NOT NULL, target TEXT NOT NULL DEFAULT '', "
    "started_at REAL, ended_at REAL, logical_date TEXT, interval_start TEXT, interval_end TEXT, "
    "runner_pid INTEGER, heartbeat REAL, cancel_requested INTEGER NOT NULL DEFAULT 0)"
)
_ROWS = [
    "INSERT INTO runs (run_id, pipeline, state, params, created_at, runner_pid, heartbeat) "
    "VALUES ('p-1', 'p', 'failed', '{\"n\":1}', 1.0, 42, 2.0)",
    "INSERT INTO task_instances VALUES ('p-1', 'a', -1, 'failed', 1, 'k', NULL, NULL, 1.0, "
    "2.0, 'boom')",
    "INSERT INTO events (run_id, kind, ts, task, map_index, data) "
    "VALUES ('p-1', 'run_failed', 2.0, NULL, -1, NULL)",
]


def _old_file(db: Path, version: int) -> None:
    """A store as an older cadenza left it: every table of its time, a meta row
    ``schema_version``, no schema_migrations table, and one failed run."""
    db.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(db)
    for statement in migrations("sqlite")[0].statements():
        old.execute(statement)
    if version == 2:
        for statement in migrations("sqlite")[1].statements():
            old.execute(statement)
    old.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    for row in _ROWS:
        old.execute(row)
    old.commit()
    old.close()


def _recorded(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as raw:
        rows = raw.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        found = [(int(v), str(n)) for v, n in rows]
        meta = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    raw.close()
    assert meta == []  # the version is kept in one place
    return found


def _check_rows(store: SqliteStore) -> None:
    run = store.get_run("p-1")
    assert (run.state, run.params, run.runner_pid, run.owner, run.epoch) == (
        "failed", {"n": 1}, 42, None, 0)
    [ti] = store.task_instances("p-1")
    assert (ti.task, ti.state, ti.error) == ("a", "failed", "boom")
    assert [e.kind for e in store.events("p-1")] == ["run_failed"]


def test_the_migrations_are_numbered_from_one() -> None:
    assert [(m.version, m.name) for m in migrations("sqlite")] == [
        (1, "initial"), (2, "run_claims"), (3, "pool_slots")]
    assert SCHEMA_VERSION == 3


def test_a_new_file_records_every_migration(tmp_path: Path) -> None:
    db = tmp_path / "cadenza.db"
    store = SqliteStore(db)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.upgrade() == []
    finally:
        store.close()
    assert _recorded(db) == [(1, "initial"), (2, "run_claims"), (3, "pool_slots")]


def test_a_version_1_file_is_upgraded_in_place_with_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "cadenza.db"
    _old_file(db, 1)
    store = SqliteStore(db, upgrade=False)
    try:
        assert store.schema_version() == 1
        assert [m.version for m in store.upgrade()] == [2, 3]
        assert store.schema_version() == SCHEMA_VERSION
        _check_rows(store)
        assert store.claim_run("p-1", "h:1:a") == 1  # the new columns are used
        assert store.integrity_check() == "ok"
    finally:
        store.close()
    assert _recorded(db) == [(1, "initial"), (2, "run_claims"), (3, "pool_slots")]


def test_opening_a_version_1_file_to_write_upgrades_it(tmp_path: Path) -> None:
    db = tmp_path / "cadenza.db"
    _old_file(db, 1)
    store = SqliteStore(db)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        _check_rows(store)
    finally:
        store.close()


def test_a_version_2_file_is_recorded_at_2_and_upgraded_from_there(tmp_path: Path) -> None:
    db = tmp_path / "cadenza.db"
    _old_file(db, 2)
    store = SqliteStore(db, upgrade=False)
    try:
        assert store.schema_version() == 2
        assert [m.version for m in store.upgrade()] == [3]
        _check_rows(store)
    finally:
        store.close()
    assert _recorded(db) == [(1, "initial"), (2, "run_claims"), (3, "pool_slots")]


def test_an_early_version_1_file_gets_the_tables_it_lacked(tmp_path: Path) -> None:
    # cadenza's first files had no approvals, leases or aliases tables, and still said 1
    db = tmp_path / "cadenza.db"
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        f"{_RUNS_V1};"
        f"{_ROWS[0]};"
    )
    old.close()
    store = SqliteStore(db)
    try:
        assert store.get_run("p-1").state == "failed"
        assert store.acquire_lease("scheduler", "me", 10.0, 1.0) == "me"
        assert store.approvals("p-1") == []
    finally:
        store.close()


def test_a_read_only_open_of_an_old_file_says_to_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "cadenza.db"
    _old_file(db, 1)
    with pytest.raises(StoreError) as caught:
        SqliteStore(db, readonly=True)
    text = str(caught.value)
    assert "\n" not in text
    assert f"{str(db)!r} has schema version 1, older than this cadenza's (3)" in text
    assert "`cadenza db upgrade`" in text
    with sqlite3.connect(db) as raw:  # the schema is as it was
        names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
        columns = {row[1] for row in raw.execute("PRAGMA table_info(runs)")}
    raw.close()
    assert "schema_migrations" not in names
    assert "owner" not in columns


def test_a_file_newer_than_this_cadenza_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "cadenza.db"
    SqliteStore(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO schema_migrations VALUES (4, 'from_the_future', 0)")
    raw.close()
    for readonly in (False, True):
        with pytest.raises(StoreError) as caught:
            SqliteStore(db, readonly=readonly)
        assert "has schema version 4, newer than this cadenza knows (3)" in str(caught.value)
        assert "pip install -U cadenza" in str(caught.value)


UPGRADE_AT = """
import sys, time
from cadenza.store.sqlite import SqliteStore
at = float(sys.argv[2])
while time.time() < at:
    pass
store = SqliteStore(sys.argv[1], upgrade=False)
print(",".join(str(m.version) for m in store.upgrade()))
assert store.schema_version() == 3
store.close()
"""


def test_processes_upgrading_at_once_apply_each_migration_once(tmp_path: Path) -> None:
    for round_ in range(3):
        db = tmp_path / f"round{round_}" / "cadenza.db"
        _old_file(db, 1)
        at = time.time() + 1.0  # time enough for every process to start and wait
        upgraders = [subprocess.Popen([sys.executable, "-c", UPGRADE_AT, str(db), str(at)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for _ in range(4)]
        applied: list[str] = []
        for upgrader in upgraders:
            out, err = upgrader.communicate(timeout=GUARD)
            assert upgrader.returncode == 0, err
            applied += [v for v in out.strip().split(",") if v]
        assert sorted(applied) == ["2", "3"]
        assert _recorded(db) == [(1, "initial"), (2, "run_claims"), (3, "pool_slots")]
        store = SqliteStore(db, readonly=True)
        try:
            _check_rows(store)
        finally:
            store.close()
