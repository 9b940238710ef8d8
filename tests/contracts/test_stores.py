"""The MetadataStore contract against MemoryStore, SqliteStore and PostgresStore, plus SQLite's
own checks (PostgreSQL's are in tests/store/test_postgres.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cadenza.store.base import Batch, MetadataStore
from cadenza.store.memory import MemoryStore
from cadenza.store.sqlite import SCHEMA_VERSION, SqliteStore
from cadenza.testing.contracts import (
    T0,
    MetadataStoreContract,
    artifact_record,
    attempt_record,
    cache_entry,
    event,
    run_record,
    task_instance,
)


class TestMemoryStore(MetadataStoreContract):
    def make_store(self) -> MetadataStore:
        return MemoryStore()

    def test_records_read_back_are_copies(self, store: MetadataStore) -> None:
        super().test_records_read_back_are_copies(store)


class TestSqliteStore(MetadataStoreContract):
    def make_store(self) -> MetadataStore:
        return SqliteStore(self.tmp_path / "cadenza.db")

    def test_artifact_insert_is_ignored_with_its_parents(self, store: MetadataStore) -> None:
        super().test_artifact_insert_is_ignored_with_its_parents(store)


class TestPostgresStore(MetadataStoreContract):
    """Against a new database of a throwaway cluster (skipped where PostgreSQL is missing)."""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str) -> None:
        self.dsn = postgres_dsn

    def make_store(self) -> MetadataStore:
        from cadenza.store.postgres import PostgresStore

        return PostgresStore(self.dsn)


# -- SQLite only -----------------------------------------------------------------------------


def _full_batch() -> Batch:
    return Batch(
        runs=[run_record(params={"threshold": 0.7}, started_at=T0 + 1)],
        task_instances=[task_instance(state="success", output="ab" * 32,
                                      files={"model": "cd" * 32})],
        attempts=[attempt_record(state="success", ended_at=T0 + 2)],
        artifacts=[artifact_record("ab" * 32, data=b"[1]", size=3, parents=("ef" * 32,))],
        cache=[cache_entry(meta={"code": "c1"})],
        events=[event("run_started"), event("task_finished", task="clean")],
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "cadenza.db"


def test_wal_journal_mode(db: Path) -> None:
    store = SqliteStore(db)
    try:
        mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        assert store._read("PRAGMA journal_mode")[0][0] == "wal"
    finally:
        store.close()


@pytest.mark.parametrize(("durable", "level"), [(False, 1), (True, 2)])  # NORMAL, FULL
def test_synchronous_level(db: Path, durable: bool, level: int) -> None:
    store = SqliteStore(db, durable=durable)
    try:
        assert store._read("PRAGMA synchronous")[0][0] == level
    finally:
        store.close()


def test_creates_the_folder_and_records_the_schema_version(db: Path) -> None:
    store = SqliteStore(db)
    try:
        assert db.is_file()
        assert store.schema_version() == SCHEMA_VERSION
        assert repr(store) == f"SqliteStore({str(db)!r})"
    finally:
        store.close()


def test_integrity_check(db: Path) -> None:
    store = SqliteStore(db)
    try:
        store.apply(_full_batch())
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_data_survives_closing_and_reopening(db: Path) -> None:
    store = SqliteStore(db)
    store.apply(_full_batch())
    store.request_cancel("p-1")
    before = (
        store.get_run("p-1"), store.task_instances("p-1"), store.attempts("p-1"),
        store.artifact("ab" * 32), store.cache_entries("p"), store.events(),
    )
    store.close()

    reopened = SqliteStore(db)
    try:
        after = (
            reopened.get_run("p-1"), reopened.task_instances("p-1"), reopened.attempts("p-1"),
            reopened.artifact("ab" * 32), reopened.cache_entries("p"), reopened.events(),
        )
        assert after == before
        assert after[0].cancel_requested is True
        assert reopened.integrity_check() == "ok"
        # event ids go on from where they were, never reused
        reopened.apply(Batch(events=[event("later")]))
        assert reopened.events()[-1].id > before[5][-1].id
    finally:
        reopened.close()


def test_a_second_connection_sees_committed_writes(db: Path) -> None:
    writer, reader = SqliteStore(db), SqliteStore(db)
    try:
        writer.apply(_full_batch())
        assert reader.get_run("p-1").params == {"threshold": 0.7}
        writer.request_cancel("p-1")
        assert reader.get_run("p-1").cancel_requested is True
    finally:
        writer.close()
        reader.close()


def test_a_failing_batch_is_rolled_back(db: Path) -> None:
    store = SqliteStore(db)
    try:
        bad = _full_batch()
        bad.events.append(event(data={"not json": object()}))
        with pytest.raises(TypeError):
            store.apply(bad)
        assert store.list_runs() == []
        assert store.events() == []
        store.apply(_full_batch())  # the store is still usable
        assert store.get_run("p-1").run_id == "p-1"
    finally:
        store.close()


def _version_1_file(db: Path) -> None:
    """A store as cadenza wrote it before claims: runs without owner and epoch."""
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, "
        "state TEXT NOT NULL, params TEXT NOT NULL, created_at REAL NOT NULL, "
        "target TEXT NOT NULL DEFAULT '', started_at REAL, ended_at REAL, logical_date TEXT, "
        "interval_start TEXT, interval_end TEXT, runner_pid INTEGER, heartbeat REAL, "
        "cancel_requested INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO runs (run_id, pipeline, state, params, created_at, runner_pid, heartbeat) "
        "VALUES ('p-1', 'p', 'failed', '{}', 1.0, 42, 2.0);"
    )
    old.commit()
    old.close()


def test_an_older_file_is_upgraded_in_place(db: Path) -> None:
    # read-only opens of it: tests/store/test_sqlite_migrations.py
    db.parent.mkdir(parents=True)
    _version_1_file(db)
    store = SqliteStore(db)
    try:
        run = store.get_run("p-1")
        assert (run.state, run.runner_pid, run.owner, run.epoch) == ("failed", 42, None, 0)
        assert store.schema_version() == SCHEMA_VERSION
    finally:
        store.close()
    store = SqliteStore(db)  # opening it again changes nothing
    try:
        assert store.claim_run("p-1", "h:1:a") == 1
        assert store.get_run("p-1").owner == "h:1:a"
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_a_claim_is_seen_by_another_connection(db: Path) -> None:
    first, second = SqliteStore(db), SqliteStore(db)
    try:
        first.apply(_full_batch())
        assert first.claim_run("p-1", "elsewhere:1:a") == 1
        assert second.claim_run("p-1", "elsewhere:2:b") is None
        assert second.get_run("p-1").owner == "elsewhere:1:a"
        # the store's clock is SQLite's, read by each connection: the same clock
        assert abs(first.clock() - second.clock()) < 60
    finally:
        first.close()
        second.close()


# -- pool slots raced by real processes, SQLite and PostgreSQL -------------------------------

TAKE_AT = """
import sys, time
from cadenza.store.base import SlotHolder
from cadenza.store.open import open_store
store = open_store(sys.argv[1])
at = float(sys.argv[4])
while time.time() < at:
    pass
print(store.take_slot("db", 2, SlotHolder(sys.argv[2], "t", -1, int(sys.argv[3]))))
store.close()
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_processes_racing_for_a_pool_get_its_limit_of_slots(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    location = (request.getfixturevalue("postgres_dsn") if kind == "postgres"
                else str(tmp_path / "cadenza.db"))
    from cadenza.store.open import open_store

    store = open_store(location)
    try:
        for round_ in range(3):
            runs = [f"r{round_}-{i}" for i in range(6)]
            store.apply(Batch(runs=[run_record(r, created=i) for i, r in enumerate(runs)]))
            epochs = [store.claim_run(r, f"elsewhere:{i}:a") for i, r in enumerate(runs)]
            at = time.time() + 1.0  # time enough for every process to start and wait
            takers = [subprocess.Popen(
                [sys.executable, "-c", TAKE_AT, location, r, str(e), str(at)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ) for r, e in zip(runs, epochs, strict=True)]
            said = []
            for taker in takers:
                out, err = taker.communicate(timeout=60)
                assert taker.returncode == 0, err
                said.append(out.strip())
            assert sorted(said) == ["False"] * 4 + ["True"] * 2
            held = {s.run_id for s in store.slots("db")}
            assert held == {r for r, s in zip(runs, said, strict=True) if s == "True"}
            for r, e in zip(runs, epochs, strict=True):
                assert e is not None
                store.release_slots(r, e)
    finally:
        store.close()
