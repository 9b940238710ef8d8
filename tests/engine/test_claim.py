"""engine/claim.py: owner identity, the staleness setting, and a claim's life in one store."""

from __future__ import annotations

import os
import socket
import time

import pytest

from cadenza.engine.claim import BEATS, Claim, new_owner, stale_after_from
from cadenza.exceptions import CadenzaError, ClaimLostError, RunClaimedError
from cadenza.store.base import HEARTBEAT_EVERY, STALE_AFTER, Batch
from cadenza.store.memory import MemoryStore
from cadenza.testing.contracts import event, run_record


def test_an_owner_is_host_pid_and_a_token_of_its_own() -> None:
    first, second = new_owner(), new_owner()
    host, pid, token = first.rsplit(":", 2)
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert len(token) == 8 and first != second


def test_staleness_and_heartbeats_are_documented_defaults() -> None:
    assert (STALE_AFTER, HEARTBEAT_EVERY) == (60.0, 5.0)
    assert Claim("r", "o", 1).every == HEARTBEAT_EVERY
    assert Claim("r", "o", 1, stale_after=1.2).every == pytest.approx(1.2 / BEATS)


@pytest.mark.parametrize(("text", "value"), [("", STALE_AFTER), ("2.5", 2.5), (" 90 ", 90.0)])
def test_stale_after_from_the_environment(text: str, value: float) -> None:
    assert stale_after_from({"CADENZA_STALE_AFTER": text} if text else {}) == value


@pytest.mark.parametrize("text", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_stale_after_is_one_line_naming_it(text: str) -> None:
    with pytest.raises(CadenzaError) as excinfo:
        stale_after_from({"CADENZA_STALE_AFTER": text})
    message = str(excinfo.value)
    assert f"CADENZA_STALE_AFTER={text!r}" in message and "\n" not in message


def test_take_beats_and_gives_the_run_up() -> None:
    store = MemoryStore()
    store.apply(Batch(runs=[run_record()]))
    claim = Claim.take(store, "p-1", stale_after=0.6)  # beats every 0.05 s
    assert (claim.epoch, claim.fence) == (1, ("p-1", 1))
    with pytest.raises(RunClaimedError) as busy:
        Claim.take(store, "p-1")
    assert busy.value.owner == claim.owner
    claim.start(store)
    first = store.get_run("p-1").heartbeat or 0
    deadline = time.monotonic() + 30
    while (store.get_run("p-1").heartbeat or 0) <= first and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (store.get_run("p-1").heartbeat or 0) > first  # its thread beats
    claim.check()
    claim.stop()
    claim.stop()  # twice is fine
    assert store.get_run("p-1").owner is None


def test_a_lost_claim_is_found_by_the_next_beat_or_check() -> None:
    store = MemoryStore()
    store.apply(Batch(runs=[run_record()]))
    claim = Claim.take(store, "p-1")
    claim.start(store)
    assert store.claim_run("p-1", "elsewhere:2:b", stale_after=-1) == 2
    claim._confirmed -= claim.stale_after  # as after a long stop: ask the store again
    with pytest.raises(ClaimLostError) as lost:
        claim.check()
    assert (lost.value.run_id, lost.value.owner) == ("p-1", "elsewhere:2:b")
    assert claim.lost.is_set()
    claim.stop()
    assert store.get_run("p-1").owner == "elsewhere:2:b"  # a lost claim releases nothing
    with pytest.raises(ClaimLostError):
        store.apply(Batch(events=[event()]), claim.fence)


def test_start_of_a_claim_already_lost_raises() -> None:
    store = MemoryStore()
    store.apply(Batch(runs=[run_record()]))
    claim = Claim.take(store, "p-1")
    store.claim_run("p-1", "elsewhere:2:b", stale_after=-1)
    with pytest.raises(ClaimLostError):
        claim.start(store)
