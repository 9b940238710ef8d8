"""PostgresStore's event log with many writers: ids in commit order for followers (reading
``events(after=last)``), events written once when a commit is made again, and a batch whose
connection the server cut after it was sent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.faults._harness import GUARD, wait_for

from cadenza.exceptions import StoreError
from cadenza.store.base import Batch, Event
from cadenza.store.migrations import migrations
from cadenza.testing.contracts import (
    artifact_record,
    attempt_record,
    event,
    run_record,
    task_instance,
)

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL tests need cadenza[postgres]")
from cadenza.store import postgres  # noqa: E402
from cadenza.store.postgres import PostgresStore  # noqa: E402


def waiting_on_locks(dsn: str) -> int:
    """How many sessions of the database wait for a lock (a row's, or an advisory one)."""
    with psycopg.connect(dsn, autocommit=True) as look:
        row = look.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                           "'Lock' AND datname = current_database()").fetchone()
    return int(row[0])


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """``call`` started in a thread; the list gets what it returned, or what it raised."""
    got: list[Any] = []

    def run() -> None:
        try:
            got.append(call())
        except BaseException as error:
            got.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, got


# -- ids in commit order ---------------------------------------------------------------------


def test_ids_from_a_sequence_alone_let_a_follower_miss_an_event(postgres_dsn: str) -> None:
    """The bug, on the schema before migration 2: two writers take ids from the identity
    sequence, the one with the lower id commits last, and a follower that read ``id > last``
    in between never sees it."""
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        for statement in migrations("postgres")[0].statements():
            db.execute(statement.encode())
    insert = ("INSERT INTO events (run_id, kind, ts, map_index) VALUES (%s, %s, 0, -1) "
              "RETURNING id")
    with psycopg.connect(postgres_dsn) as slow, psycopg.connect(postgres_dsn) as fast, \
            psycopg.connect(postgres_dsn, autocommit=True) as follower:
        low = slow.execute(insert, ("p-1", "slow")).fetchone()
        high = fast.execute(insert, ("p-2", "fast")).fetchone()
        assert low is not None and high is not None and low[0] < high[0]
        fast.commit()
        seen = follower.execute("SELECT id, kind FROM events WHERE id > 0 ORDER BY id").fetchall()
        assert seen == [(high[0], "fast")]
        slow.commit()
        later = follower.execute("SELECT kind FROM events WHERE id > %s", (high[0],)).fetchall()
        assert later == []  # "slow" is in the table, below the follower's mark: missed
        assert follower.execute("SELECT count(*) FROM events").fetchone() == (2,)


def test_a_writer_numbers_its_events_only_once_the_one_before_has_committed(
    postgres_dsn: str
) -> None:
    """The same two writers on PostgresStore: the second waits for the first to commit before
    it takes its ids, so a follower never sees an id while a lower one may still commit."""
    store = PostgresStore(postgres_dsn)
    try:
        with psycopg.connect(postgres_dsn) as slow:  # one commit in flight, as apply sends it
            slow.execute("SELECT pg_advisory_xact_lock(%s)", (postgres.EVENT_IDS_LOCK,))
            slow.execute(postgres._INSERT_EVENT.replace("%b", "%s"),
                         [["slow-1"], ["p-1"], ["slow"], [0.0], [None], [-1], [None]])
            fast, done = in_thread(lambda: store.apply(Batch(events=[event("fast", "p-2")])))
            wait_for("the second writer to wait for the first",
                     lambda: waiting_on_locks(postgres_dsn) == 1)
            assert store.events(after=0) == []  # nothing numbered above an open commit
            assert done == []
            slow.commit()
            fast.join(GUARD)
        assert done == [None]
        seen = store.events(after=0)
        assert [e.kind for e in seen] == ["slow", "fast"]
        assert store.events(after=seen[-1].id) == []
    finally:
        store.close()


def test_a_follower_sees_every_event_of_racing_writers_once_in_order(
    postgres_dsn: str, tmp_path: Path
) -> None:
    """Three processes commit batches of events as fast as they can while this one follows
    the log with ``events(after=last)``: it gets every event once, and in id order."""
    store = PostgresStore(postgres_dsn)
    batches, size, writers = 60, 5, 3
    code = textwrap.dedent(f"""
        import sys
        from cadenza.store.base import Batch, Event
        from cadenza.store.postgres import PostgresStore
        me = sys.argv[1]
        store = PostgresStore({postgres_dsn!r})
        for b in range({batches}):
            store.apply(Batch(runs=[], events=[Event(f"w{{me}}", f"{{b}}.{{i}}", 0.0)
                                                for i in range({size})]))
        store.close()
    """)
    children = [subprocess.Popen([sys.executable, "-c", code, str(i)], stderr=subprocess.PIPE,
                                 text=True) for i in range(writers)]
    seen: list[Event] = []
    last = 0
    try:
        while any(child.poll() is None for child in children):
            new = store.events(after=last)
            seen += new
            last = new[-1].id if new else last
        for child in children:
            assert child.wait(GUARD) == 0, child.stderr.read() if child.stderr else ""
        seen += store.events(after=last)
        everything = store.events()
    finally:
        for child in children:
            if child.stderr:
                child.stderr.close()
        store.close()
    assert len(everything) == batches * size * writers
    assert [e.id for e in seen] == [e.id for e in everything]  # each once, none skipped
    for writer in range(writers):  # and each writer's events in the order it wrote them
        mine = [e.kind for e in seen if e.run_id == f"w{writer}"]
        assert mine == [f"{b}.{i}" for b in range(batches) for i in range(size)]


def test_events_written_before_the_upgrade_stay_below_new_ones(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        for statement in migrations("postgres")[0].statements():
            db.execute(statement.encode())
        db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT "
                   "NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        db.execute("INSERT INTO schema_migrations VALUES (1, 'initial', 0)")
        db.execute("INSERT INTO events (run_id, kind, ts, map_index) VALUES "
                   "('p-1', 'old-1', 0, -1), ('p-1', 'old-2', 1, -1)")
    store = PostgresStore(postgres_dsn)  # upgrades to the latest schema
    try:
        assert store.schema_version() == len(migrations("postgres"))
        store.apply(Batch(events=[event("new-1"), event("new-2")]))
        found = store.events("p-1")
        assert [e.kind for e in found] == ["old-1", "old-2", "new-1", "new-2"]
        assert [e.kind for e in store.events(after=found[1].id)] == ["new-1", "new-2"]
    finally:
        store.close()


# -- written once --------------------------------------------------------------------------


def test_a_batch_written_twice_is_written_once(postgres_dsn: str) -> None:
    """What a commit made again after a lost reply does: every row is an upsert or keyed,
    and the events keep the keys their first write gave them."""
    store = PostgresStore(postgres_dsn)
    try:
        batch = Batch(runs=[run_record()], task_instances=[task_instance(state="running")],
                      attempts=[attempt_record()],
                      artifacts=[artifact_record("ab" * 32, parents=("cd" * 32,))],
                      events=[event("a"), event("b")])
        store.apply(batch)
        keys = [e.key for e in batch.events]
        assert all(keys) and len(set(keys)) == 2
        store.apply(batch, fence=("p-1", 0))
        assert [e.key for e in batch.events] == keys
        assert [e.kind for e in store.events()] == ["a", "b"]
        assert len(store.task_instances("p-1")) == 1 and len(store.attempts("p-1")) == 1
        assert len(store.artifacts()) == 1
        store.apply(Batch(events=[event("a")]))  # a new event like an old one is new
        assert [e.kind for e in store.events()] == ["a", "b", "a"]
    finally:
        store.close()


def test_a_batch_whose_connection_is_cut_after_it_was_sent_is_made_again(
    postgres_dsn: str
) -> None:
    """The server ends the session of a batch in flight (as a restart does): its outcome is
    unknown to the store, which makes the batch again on a new connection; once, whole."""
    store = PostgresStore(postgres_dsn)
    try:
        store.apply(Batch(runs=[run_record()]))
        with psycopg.connect(postgres_dsn) as holder:  # the run's row lock: the batch waits
            holder.execute("SELECT 1 FROM runs WHERE run_id = 'p-1' FOR UPDATE")
            batch = Batch(task_instances=[task_instance(state="success")],
                          events=[event("finished")])
            writer, done = in_thread(lambda: store.apply(batch, fence=("p-1", 0)))
            wait_for("the batch to wait", lambda: waiting_on_locks(postgres_dsn) == 1)
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "wait_event_type = 'Lock' AND datname = current_database()")
            wait_for("the batch to be sent again", lambda: waiting_on_locks(postgres_dsn) == 1)
        writer.join(GUARD)
        assert done == [None]
        assert [e.kind for e in store.events()] == ["finished"]
        assert store.task_instances("p-1")[0].state == "success"
    finally:
        store.close()


def test_creating_runs_is_not_made_again_once_sent(postgres_dsn: str) -> None:
    """``create_runs`` says which runs it created: made again after a lost reply, it would
    find them there and say none. A cut once sent is one StoreError instead."""
    store = PostgresStore(postgres_dsn)
    try:
        with psycopg.connect(postgres_dsn) as rival:  # the same id, not yet committed
            rival.execute("INSERT INTO runs (run_id, pipeline, state, params, created_at) "
                          "VALUES ('p-1', 'p', 'queued', '{}', 0)")
            creator, got = in_thread(lambda: store.create_runs([run_record()]))
            wait_for("the insert to wait", lambda: waiting_on_locks(postgres_dsn) == 1)
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                              "wait_event_type = 'Lock' AND datname = current_database()")
            creator.join(GUARD)
            rival.rollback()
        assert len(got) == 1 and isinstance(got[0], StoreError)
        said = str(got[0])
        assert "\n" not in said and "could not be used" in said and "terminating" in said
        assert store.list_runs() == []  # neither the rival's insert nor the cut one
        assert store.create_runs([run_record()]) == ["p-1"]
    finally:
        store.close()
