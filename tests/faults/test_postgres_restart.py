"""PostgreSQL restarted under a real run: the runner's commits are made again on new
connections once the server is back, the run ends as it would have, each task body ran once,
and no event is written twice. And a runner that cannot reach the database for longer than its
claim's staleness gives its claim up before another runner may take the run."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.faults._harness import GUARD, wait_for

from cadenza import Pipeline
from cadenza.artifacts.local import LocalArtifactStore
from cadenza.engine.claim import Claim
from cadenza.engine.launch import run_pipeline
from cadenza.exceptions import ClaimLostError
from cadenza.testing.contracts import run_record
from cadenza.testing.postgres import PostgresServer
from cadenza.workspace import Workspace

pytest.importorskip("psycopg", reason="the PostgreSQL tests need cadenza[postgres]")
from cadenza.store.postgres import PostgresStore


def _pipeline(ran: Path, gates: Path) -> Pipeline:
    """first -> a, b, c, d -> last. Each body appends its name to ``ran``; ``first`` and ``b``
    wait, with a marker, for the test to restart the server (``gates/<name>.go``)."""
    pipe = Pipeline("restarted")

    def body(name: str) -> None:
        with ran.open("a") as out:
            out.write(name + "\n")
        if name in ("first", "b"):
            (gates / f"{name}.waiting").touch()
            wait_for(f"the test to let {name} go", (gates / f"{name}.go").exists)

    @pipe.task
    def first() -> int:
        body("first")
        return 1

    def middle(name: str) -> None:
        def task(first: int) -> int:
            body(name)
            return first + 1
        task.__name__ = name
        pipe.task(task)

    for name in "abcd":
        middle(name)

    @pipe.task
    def last(a: int, b: int, c: int, d: int) -> int:
        body("last")
        return a + b + c + d

    return pipe


def test_a_run_goes_on_through_two_server_restarts(
    postgres_server: PostgresServer, postgres_dsn: str, tmp_path: Path
) -> None:
    ran, gates = tmp_path / "ran.txt", tmp_path / "gates"
    gates.mkdir()
    pipe = _pipeline(ran, gates)
    home = tmp_path / ".cadenza"
    workspace = Workspace(home, PostgresStore(postgres_dsn), LocalArtifactStore(home / "a"))
    got: list[Any] = []

    def run() -> None:
        try:
            got.append(run_pipeline(pipe, workspace=workspace, executor="threads", workers=2))
        except BaseException as error:  # handed to the test
            got.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        for name in ("first", "b"):
            wait_for(f"{name} to run", (gates / f"{name}.waiting").exists)
            postgres_server.restart()  # every connection of the runner is cut
            (gates / f"{name}.go").touch()
        runner.join(GUARD)
        assert not runner.is_alive()
        [result] = got
        assert not isinstance(result, BaseException), result
        assert result.ok and result.output("last") == 8
        # each body ran once, and its one attempt is the one recorded
        bodies = Counter(ran.read_text().split())
        assert bodies == Counter(["first", "a", "b", "c", "d", "last"])
        store = workspace.store
        attempts = store.attempts(result.run_id)
        assert sorted((a.task, a.attempt, a.state) for a in attempts) == sorted(
            (name, 1, "success") for name in bodies)
        assert store.get_run(result.run_id).state == "success"
        events = store.events(result.run_id)
        twice = [k for k, n in Counter((e.kind, e.task, e.ts) for e in events).items() if n > 1]
        assert twice == [] and events
        assert [e.id for e in events] == sorted({e.id for e in events})
    finally:
        for name in ("first", "b"):
            (gates / f"{name}.go").touch()
        runner.join(GUARD)
        workspace.close()
        shutil.rmtree(home, ignore_errors=True)


def test_a_claim_whose_store_is_away_past_its_staleness_is_given_up(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    """The heartbeat thread cannot reach the server: once its last accepted beat is GIVE_UP
    of the staleness old, the claim counts as lost (the run loop's ``check`` raises, and the
    loop stops its tasks), before another runner may take the run on the database's clock."""
    store = PostgresStore(postgres_dsn)
    try:
        store.create_runs([run_record("p-1", state="queued")])
        claim = Claim.take(store, "p-1", stale_after=2.0)
        claim.start(store)
        postgres_server._pg_ctl("stop", "-m", "fast")
        try:
            wait_for("the run loop's check to find the claim given up", lambda: _lost(claim))
            assert claim.lost.is_set()
            with pytest.raises(ClaimLostError) as lost:
                claim.check()
            said = str(lost.value)  # the store was away: nobody took the run over
            assert "could not reach the store" in said and "taken over" not in said, said
        finally:
            postgres_server._pg_ctl("start", "-o", f"-p {postgres_server.port}")
        claim.stop(store)
        run = store.get_run("p-1")
        assert run.owner == claim.owner  # nobody took it: but this runner stopped first
    finally:
        store.close()


def _lost(claim: Claim) -> bool:
    try:
        claim.check()  # never waits for the store while the heartbeat thread does
    except ClaimLostError:
        return True
    return False
