"""PostgresStore on a real throwaway cluster: DSN errors, the pool per DSN, the schema's
migrations, read-only opens, a server restart, and real processes racing for claims and
upgrades. The MetadataStore contract itself runs in tests/contracts/test_stores.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
import warnings
from pathlib import Path

import pytest
from tests.faults._harness import GUARD, wait_for

from cadenza.exceptions import ClaimLostError, StoreError
from cadenza.store.base import Batch
from cadenza.store.migrations import latest, migrations
from cadenza.testing.contracts import event, run_record
from cadenza.testing.postgres import PostgresServer

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL tests need cadenza[postgres]")
from cadenza.store.postgres import PostgresStore, pools_in_use, redact  # noqa: E402


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as db:
        rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in rows}


def _children(code: str, dsn: str, n: int, tmp_path: Path) -> list[object]:
    """Start ``n`` Python processes running ``code`` (with ``DSN``, ``ME`` and ``GO`` set),
    let them go at once, and return what each printed last, as JSON."""
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    head = textwrap.dedent(f"""
        import json, os, sys, time
        from cadenza.store.postgres import PostgresStore
        DSN, ME, GO = {dsn!r}, sys.argv[1], {str(go)!r}
        while not os.path.exists(GO):
            time.sleep(0.001)
    """)
    children = [subprocess.Popen([sys.executable, "-c", head + textwrap.dedent(code), str(i)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(n)]
    go.touch()
    said = []
    for child in children:
        out, err = child.communicate(timeout=GUARD)
        assert child.returncode == 0, err
        said.append(json.loads(out.strip().splitlines()[-1]))
    return said


# -- DSNs and their errors ------------------------------------------------------------------


def test_a_port_nobody_listens_on_is_one_line_naming_the_dsn(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dsn = f"postgresql://cadenza:hunter2-secret@127.0.0.1:{port}/cadenza"
    with pytest.raises(StoreError) as caught:
        PostgresStore(dsn)
    said = str(caught.value)
    assert "\n" not in said
    assert f"'postgresql://cadenza@127.0.0.1:{port}/cadenza'" in said
    assert "hunter2-secret" not in said
    assert "server is running" in said and "run the command again" in said
    assert caught.value.path == f"postgresql://cadenza@127.0.0.1:{port}/cadenza"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_missing_database_says_to_create_it(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.dsn_of("no_such_db")
    with pytest.raises(StoreError) as caught:
        PostgresStore(dsn)
    said = str(caught.value)
    assert "\n" not in said and repr(dsn) in said
    assert 'database "no_such_db" does not exist' in said and "createdb" in said


def test_a_wrong_password_is_refused_and_never_shown(postgres_server: PostgresServer) -> None:
    name = f"u_{uuid.uuid4().hex[:8]}"
    postgres_server.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'right-pass-42'",
                            f"CREATE DATABASE {name} OWNER {name}")
    wrong = postgres_server.dsn_of(name, name, "wrong-pass-17")
    with pytest.raises(StoreError) as caught:
        PostgresStore(wrong)
    said = str(caught.value)
    assert "\n" not in said and "wrong-pass-17" not in said
    assert "password authentication failed" in said and "check the user and password" in said
    assert repr(postgres_server.dsn_of(name, name)) in said
    # the right one works, and neither repr nor an error of the store shows it
    store = PostgresStore(postgres_server.dsn_of(name, name, "right-pass-42"))
    try:
        assert "right-pass-42" not in repr(store)
        assert repr(store) == f"PostgresStore({postgres_server.dsn_of(name, name)!r})"
        with pytest.raises(Exception) as missing:
            store.get_run("nope")
        assert "right-pass-42" not in str(missing.value)
    finally:
        store.close()


@pytest.mark.parametrize(("dsn", "shown"), [
    ("postgresql://u:p%40ss@db.example:5433/c?sslmode=require&password=x",
     "postgresql://u@db.example:5433/c?sslmode=require"),
    ("host=db.example user=u password='s3 cret' dbname=c", "host=db.example user=u dbname=c"),
    ("postgresql://db.example/c", "postgresql://db.example/c"),
])
def test_redact_takes_the_password_out(dsn: str, shown: str) -> None:
    assert redact(dsn) == shown


# -- one pool per DSN ------------------------------------------------------------------------


def test_stores_of_one_dsn_share_one_pool_until_the_last_closes(postgres_dsn: str) -> None:
    where = redact(postgres_dsn)
    first = PostgresStore(postgres_dsn)
    second = PostgresStore(postgres_dsn, readonly=True)
    try:
        assert first._pool is second._pool
        assert pools_in_use()[where] == 2
        first.apply(Batch(runs=[run_record()]))
        first.close()
        first.close()  # twice is fine, and counts once
        assert pools_in_use()[where] == 1
        assert second.get_run("p-1").run_id == "p-1"  # the pool still serves the other
    finally:
        first.close()
        second.close()
    assert where not in pools_in_use()
    third = PostgresStore(postgres_dsn)  # a new pool once the old one is closed
    try:
        assert third.get_run("p-1").run_id == "p-1"
        assert pools_in_use()[where] == 1
    finally:
        third.close()


def test_a_forked_child_uses_a_pool_of_its_own(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    try:
        store.apply(Batch(runs=[run_record()]))
        parent_pool = store._pool
        with warnings.catch_warnings():  # fork() of a process with threads (the pool's)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: its own connections, then out without cleanup
            code = 1
            try:
                store.request_cancel("p-1")
                code = 0 if store._pool is not parent_pool else 2
                store.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store._pool is parent_pool
        assert store.get_run("p-1").cancel_requested is True  # the parent's pool still works
    finally:
        store.close()


# -- schema and read-only opens -----------------------------------------------------------


def test_a_new_database_gets_the_whole_schema(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    try:
        assert store.schema_version() == latest("postgres")
        assert store.upgrade() == []  # nothing left to do
        assert store.integrity_check() == "ok"
        with psycopg.connect(postgres_dsn) as db:
            rows = db.execute("SELECT version, name FROM schema_migrations ORDER BY version")
            assert [tuple(row) for row in rows] == [
                (m.version, m.name) for m in migrations("postgres")]
    finally:
        store.close()


def test_readonly_on_an_empty_database_says_to_upgrade_and_writes_nothing(
    postgres_dsn: str
) -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore(postgres_dsn, readonly=True)
    said = str(caught.value)
    assert "\n" not in said and "no cadenza schema" in said
    assert "`cadenza db upgrade`" in said and repr(redact(postgres_dsn)) in said
    assert _tables(postgres_dsn) == set()
    assert redact(postgres_dsn) not in pools_in_use()  # the failed open let its pool go


def test_readonly_reads_and_refuses_writes(postgres_dsn: str) -> None:
    writer = PostgresStore(postgres_dsn)
    reader = PostgresStore(postgres_dsn, readonly=True)
    try:
        writer.apply(Batch(runs=[run_record()], events=[event()]))
        assert reader.get_run("p-1").state == "running"
        assert len(reader.events()) == 1
        with pytest.raises(StoreError, match="read-only"):
            reader.request_cancel("p-1")
        with pytest.raises(StoreError, match="read-only"):
            reader.upgrade()
        assert writer.get_run("p-1").cancel_requested is False
    finally:
        writer.close()
        reader.close()


def test_a_database_newer_than_this_cadenza_is_refused(postgres_dsn: str) -> None:
    PostgresStore(postgres_dsn).close()
    with psycopg.connect(postgres_dsn) as db:
        db.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    for readonly in (False, True):
        with pytest.raises(StoreError, match="newer than this cadenza"):
            PostgresStore(postgres_dsn, readonly=readonly)


def test_two_processes_upgrading_at_once_apply_each_migration_once(
    postgres_dsn: str, tmp_path: Path
) -> None:
    applied = _children("""
        store = PostgresStore(DSN, upgrade=False)
        done = [m.version for m in store.upgrade()]
        print(json.dumps([done, store.schema_version()]))
        store.close()
    """, postgres_dsn, 3, tmp_path)
    everything = sorted(v for done, _ in applied for v in done)  # type: ignore[misc]
    assert everything == [m.version for m in migrations("postgres")]
    assert {version for _, version in applied} == {latest("postgres")}  # type: ignore[misc]
    with psycopg.connect(postgres_dsn) as db:
        count = db.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert count == (latest("postgres"),)


# -- claims from real processes -----------------------------------------------------------


def test_two_processes_racing_for_200_queued_runs_claim_each_once(
    postgres_dsn: str, tmp_path: Path
) -> None:
    store = PostgresStore(postgres_dsn)
    ids = [f"q-{i:03d}" for i in range(200)]
    try:
        created = store.create_runs([run_record(run_id, state="queued", created=i)
                                     for i, run_id in enumerate(ids)])
        assert created == ids
        won = _children("""
            store = PostgresStore(DSN)
            mine = []
            for run in store.runs_in_states(["queued"]):
                if store.claim_run(run.run_id, f"elsewhere:{ME}:racer") is not None:
                    mine.append(run.run_id)
            store.close()
            print(json.dumps(mine))
        """, postgres_dsn, 2, tmp_path)
        first, second = (set(ids_won) for ids_won in won)  # type: ignore[call-overload]
        assert not first & second, f"claimed twice: {sorted(first & second)}"
        assert first | second == set(ids)
        for run_id in ids:
            run = store.get_run(run_id)
            winner = "0" if run_id in first else "1"
            assert (run.owner, run.epoch) == (f"elsewhere:{winner}:racer", 1)
    finally:
        store.close()


def test_a_claim_waits_for_a_batch_that_holds_the_run(postgres_dsn: str) -> None:
    """A fenced batch holds the run's row lock from its check to its commit; a claim takes
    the same lock, so it is ordered after that batch, never between its check and writes."""
    store = PostgresStore(postgres_dsn)
    try:
        store.apply(Batch(runs=[run_record()]))
        assert store.claim_run("p-1", "elsewhere:1:a") == 1
        with psycopg.connect(postgres_dsn) as batch:  # as apply(fence=("p-1", 1)) does
            held = batch.execute("SELECT epoch FROM runs WHERE run_id = 'p-1' FOR UPDATE")
            assert held.fetchone() == (1,)
            got: list[int | None] = []
            thief = threading.Thread(
                target=lambda: got.append(store.claim_run("p-1", "elsewhere:2:b", -1)))
            thief.start()
            with psycopg.connect(postgres_dsn, autocommit=True) as look:
                wait_for("the claim to wait for the row lock", lambda: look.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()").fetchone() == (1,))
            batch.execute("UPDATE runs SET state = 'success' WHERE run_id = 'p-1'")
            assert got == []  # still waiting while the batch is open
        thief.join(GUARD)
        assert got == [2]
        assert store.get_run("p-1").state == "success"  # the batch came first, whole
        with pytest.raises(ClaimLostError):
            store.apply(Batch(events=[event()]), fence=("p-1", 1))
        assert store.events() == []
    finally:
        store.close()


def test_a_write_the_server_rolls_back_to_break_a_deadlock_is_made_again(
        postgres_dsn: str) -> None:
    """Two writes lock two runs' rows in opposite orders: the server breaks the deadlock by
    rolling one back, which committed nothing, so the store makes it again (even a write that
    is not idempotent) instead of failing the command with 'server unreachable'."""
    store = PostgresStore(postgres_dsn)
    try:
        store.apply(Batch(runs=[run_record("p-1"), run_record("p-2", created=1)]))
        both = threading.Barrier(2)
        tries = {"p-1": 0, "p-2": 0}

        def lock(first: str, then: str) -> None:
            def work(db: psycopg.Connection[object]) -> None:
                tries[first] += 1
                db.execute("SELECT 1 FROM runs WHERE run_id = %s FOR UPDATE", (first,))
                if tries[first] == 1:
                    both.wait(GUARD)  # each holds its first row: the next lock is a deadlock
                db.execute("SELECT 1 FROM runs WHERE run_id = %s FOR UPDATE", (then,))
                db.execute("UPDATE runs SET state = 'success' WHERE run_id = %s", (first,))
            store._call(work, idempotent=False)

        threads = [threading.Thread(target=lock, args=pair)
                   for pair in (("p-1", "p-2"), ("p-2", "p-1"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(GUARD)
        assert sorted(tries.values()) == [1, 2]  # the deadlock's victim went again, once
        assert {store.get_run(r).state for r in ("p-1", "p-2")} == {"success"}
    finally:
        store.close()


def test_a_session_stalled_mid_batch_is_ended_so_a_claim_goes_through(
        postgres_dsn: str) -> None:
    """A runner stopped (SIGSTOP) after sending half a batch leaves its session waiting to read
    from it, holding the run's row lock: the server counts it active, so its idle-in-
    transaction timeout never ends it. A claim that waits for that lock ends such a session
    once it has stalled for the timeout, and takes the run."""
    store = PostgresStore(postgres_dsn)
    try:
        store.apply(Batch(runs=[run_record()]))
        assert store.claim_run("p-1", "host:1:a") == 1
        stalled = psycopg.connect(postgres_dsn, autocommit=True, application_name="cadenza")
        pid = stalled.info.backend_pid
        try:
            with stalled.pipeline():
                stalled.execute("BEGIN")
                stalled.execute("SELECT epoch FROM runs WHERE run_id = 'p-1' FOR UPDATE")
                with psycopg.connect(postgres_dsn, autocommit=True) as look:
                    wait_for("the half batch to hold the row", lambda: look.execute(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                        "WHERE a.application_name = 'cadenza' AND l.locktype = 'transactionid'"
                        ).fetchone() == (1,))
                got: list[int | None] = []
                thief = threading.Thread(
                    target=lambda: got.append(store.claim_run("p-1", "host:2:b", -1)))
                thief.start()
                thief.join(GUARD)
                assert got == [2]  # the stalled session was ended, its lock with it
                with psycopg.connect(postgres_dsn, autocommit=True) as look:
                    assert look.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                        (pid,)).fetchone() == (0,)
        except psycopg.OperationalError:
            pass  # leaving the pipeline on a connection the server ended
        finally:
            stalled.close()
    finally:
        store.close()


# -- the server restarting ----------------------------------------------------------------


def test_reads_and_writes_go_on_after_the_server_restarts(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    store = PostgresStore(postgres_dsn)
    try:
        store.apply(Batch(runs=[run_record()]))
        postgres_server.restart()  # every pooled connection is cut
        assert store.get_run("p-1").run_id == "p-1"
        postgres_server.restart()
        store.request_cancel("p-1")  # found cut before anything was sent: sent again
        assert store.get_run("p-1").cancel_requested is True
    finally:
        store.close()
