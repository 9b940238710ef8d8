"""Contract suites: the behaviour every implementation of a cadenza protocol must show.

Subclass a suite in a ``Test*`` class of your own tests and override its ``make_*`` method;
pytest then runs every contract test against your implementation::

    class TestMyStore(MetadataStoreContract):
        def make_store(self) -> MetadataStore:
            return MyStore(self.tmp_path / "my.db")

The suites are pytest classes, so this module needs pytest, which cadenza itself does not:
install it with ``pip install 'cadenza[testing]'``. ``cadenza.testing`` (``run_in_memory``)
does not import this module and works without pytest.
"""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import pytest
except ImportError as error:  # pragma: no cover - pytest is there wherever the suites run
    raise ImportError(
        "cadenza.testing.contracts is a pytest suite and pytest is not installed. Install it "
        "with: pip install 'cadenza[testing]'"
    ) from error

from cadenza.exceptions import ClaimLostError, RunNotFoundError
from cadenza.store.base import (
    AliasChange,
    Approval,
    ArtifactRecord,
    AttemptRecord,
    Batch,
    CacheEntry,
    Event,
    MetadataStore,
    RunRecord,
    SlotHolder,
    TaskInstanceRecord,
    effective_state,
)

T0 = 1_700_000_000.0
RUN = "p-1"
"""A fixed clock: records are stamped T0 + n so their order never hangs on the real clock."""


def run_record(
    run_id: str = "p-1", pipeline: str = "p", created: float = 0, **kw: Any
) -> RunRecord:
    """A RunRecord created at ``T0 + created``; other fields by keyword."""
    return RunRecord(run_id, pipeline, kw.pop("state", "running"),
                     kw.pop("params", {"threshold": 0.5}), T0 + created, **kw)


def task_instance(task: str = "clean", run_id: str = "p-1", map_index: int = -1,
                  **kw: Any) -> TaskInstanceRecord:
    """A TaskInstanceRecord, pending unless ``state=`` says otherwise."""
    return TaskInstanceRecord(run_id, task, map_index, kw.pop("state", "pending"), **kw)


def attempt_record(task: str = "clean", attempt: int = 1, run_id: str = "p-1",
                   started: float = 0, **kw: Any) -> AttemptRecord:
    """An AttemptRecord started at ``T0 + started``."""
    return AttemptRecord(run_id, task, kw.pop("map_index", -1), attempt,
                         kw.pop("state", "running"), T0 + started, **kw)


def artifact_record(hash: str, created: float = 0, **kw: Any) -> ArtifactRecord:
    """An ArtifactRecord created at ``T0 + created``."""
    return ArtifactRecord(
        hash, kw.pop("serializer", "json"), kw.pop("size", 2), kw.pop("pipeline", "p"),
        kw.pop("task", "clean"), kw.pop("run_id", "p-1"), T0 + created, **kw,
    )


def cache_entry(
    task: str = "clean", key: str = "k1", created: float = 0, **kw: Any
) -> CacheEntry:
    """A CacheEntry created at ``T0 + created``."""
    return CacheEntry(
        kw.pop("pipeline", "p"), task, key, kw.pop("output", "aa" * 32), kw.pop("files", {}),
        kw.pop("run_id", "p-1"), T0 + created, kw.pop("meta", {"code": "c1"}),
    )


def event(kind: str = "task_started", run_id: str = "p-1", ts: float = 0, **kw: Any) -> Event:
    """An Event at ``T0 + ts``; the store gives it its id."""
    return Event(run_id, kind, T0 + ts, **kw)


def _ended_pid() -> int:
    """The pid of a process of this host that has ended (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _sorted_tis(records: list[TaskInstanceRecord]) -> list[TaskInstanceRecord]:
    return sorted(records, key=lambda t: (t.task, t.map_index))


class MetadataStoreContract:
    """Every MetadataStore method, checked the same way for every implementation.

    Override ``make_store``; ``self.tmp_path`` is a fresh folder for the test when it is
    called. The store is closed after each test.
    """

    tmp_path: Path

    def make_store(self) -> MetadataStore:
        raise NotImplementedError("Override make_store() to return the store under test.")

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[MetadataStore]:
        self.tmp_path = tmp_path
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    # -- batches ----------------------------------------------------------------------------

    def test_empty_batch_is_falsy_and_a_no_op(self, store: MetadataStore) -> None:
        assert not Batch()
        store.apply(Batch())
        assert store.list_runs() == []
        assert store.events() == []

    def test_one_batch_applies_every_record_type(self, store: MetadataStore) -> None:
        batch = Batch(
            runs=[run_record()], task_instances=[task_instance()],
            attempts=[attempt_record()], artifacts=[artifact_record("ab" * 32)],
            cache=[cache_entry()], events=[event()],
        )
        assert batch
        store.apply(batch)
        assert store.get_run("p-1").run_id == "p-1"
        assert len(store.task_instances("p-1")) == 1
        assert len(store.attempts("p-1")) == 1
        assert store.artifact("ab" * 32) is not None
        assert len(store.cache_entries("p")) == 1
        assert len(store.events("p-1")) == 1

    def test_records_changed_after_apply_do_not_change_the_store(
        self, store: MetadataStore
    ) -> None:
        run = run_record(params={"xs": [1]})
        ti = task_instance(files={"model": "cd" * 32})
        store.apply(Batch(runs=[run], task_instances=[ti]))
        run.state = "failed"
        run.params["xs"].append(2)
        ti.files["model"] = "changed"
        assert store.get_run("p-1").state == "running"
        assert store.get_run("p-1").params == {"xs": [1]}
        assert store.task_instances("p-1")[0].files == {"model": "cd" * 32}

    def test_records_read_back_are_copies(self, store: MetadataStore) -> None:
        store.apply(Batch(
            runs=[run_record(params={"xs": [1]})],
            task_instances=[task_instance(files={"model": "cd" * 32})],
            attempts=[attempt_record()],
            artifacts=[artifact_record("ab" * 32, parents=("ef" * 32,))],
            cache=[cache_entry(meta={"code": "c1"})],
            events=[event(data={"n": 1})],
        ))
        store.get_run("p-1").params["xs"].append(2)
        store.list_runs()[0].params["new"] = 1
        store.task_instances("p-1")[0].files["model"] = "changed"
        store.attempts("p-1")[0].state = "changed"
        found = store.artifact("ab" * 32)
        assert found is not None
        found.task = "changed"
        store.artifacts()[0].serializer = "changed"
        store.cache_entries("p")[0].meta["code"] = "changed"
        store.events()[0].data["n"] = 2

        assert store.get_run("p-1").params == {"xs": [1]}
        assert store.task_instances("p-1")[0].files == {"model": "cd" * 32}
        assert store.attempts("p-1")[0].state == "running"
        again = store.artifact("ab" * 32)
        assert again is not None
        assert (again.task, again.serializer) == ("clean", "json")
        assert store.cache_entries("p")[0].meta == {"code": "c1"}
        assert store.events()[0].data == {"n": 1}

    # -- runs -------------------------------------------------------------------------------

    def test_run_round_trips(self, store: MetadataStore) -> None:
        run = RunRecord(
            "churn-20240101T000000-ab12", "churn", "running",
            {"threshold": 0.5, "tags": ["a", "b"], "nested": {"k": None}, "on": True},
            T0, target="pipelines/churn.py", started_at=T0 + 1, ended_at=None,
            logical_date="2024-01-01", interval_start="2024-01-01T00:00:00+00:00",
            interval_end="2024-01-02T00:00:00+00:00", runner_pid=4242, heartbeat=T0 + 2,
        )
        store.apply(Batch(runs=[copy.deepcopy(run)]))
        assert store.get_run(run.run_id) == run

    def test_run_with_only_required_fields(self, store: MetadataStore) -> None:
        run = RunRecord("p-1", "p", "running", {}, T0)
        store.apply(Batch(runs=[copy.deepcopy(run)]))
        assert store.get_run("p-1") == run

    def test_get_unknown_run(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        with pytest.raises(RunNotFoundError) as excinfo:
            store.get_run("p-2")
        assert excinfo.value.run_id == "p-2"
        assert "'p-2'" in str(excinfo.value)
        assert "cadenza runs" in str(excinfo.value)

    def test_apply_run_again_updates_it(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        store.apply(Batch(runs=[run_record(
            state="success", params={"threshold": 0.9}, started_at=T0 + 1, ended_at=T0 + 9,
            runner_pid=77, heartbeat=T0 + 8, owner="elsewhere:1:x", epoch=5,
        )]))
        run = store.get_run("p-1")
        assert run.state == "success"
        assert run.params == {"threshold": 0.9}
        assert (run.started_at, run.ended_at) == (T0 + 1, T0 + 9)
        assert run.runner_pid == 77
        # the claim (owner, epoch, heartbeat) is claim_run's and heartbeat's, never apply's
        assert (run.owner, run.epoch, run.heartbeat) == (None, 0, None)
        assert len(store.list_runs()) == 1

    def test_list_runs_newest_first(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[
            run_record("p-2", created=2), run_record("p-1", created=1),
            run_record("p-3", created=3),
        ]))
        assert [r.run_id for r in store.list_runs()] == ["p-3", "p-2", "p-1"]

    def test_list_runs_limit(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record(f"p-{i}", created=i) for i in range(10)]))
        assert [r.run_id for r in store.list_runs(limit=3)] == ["p-9", "p-8", "p-7"]
        assert store.list_runs(limit=0) == []
        assert len(store.list_runs()) == 10
        assert len(store.list_runs(limit=50)) == 10

    def test_list_runs_default_limit_is_50(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record(f"p-{i}", created=i) for i in range(60)]))
        runs = store.list_runs()
        assert len(runs) == 50
        assert runs[0].run_id == "p-59"

    def test_list_runs_by_pipeline(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[
            run_record("a-1", "a", created=1), run_record("b-1", "b", created=2),
            run_record("a-2", "a", created=3), run_record("b-2", "b", created=4),
        ]))
        assert [r.run_id for r in store.list_runs("a")] == ["a-2", "a-1"]
        assert [r.run_id for r in store.list_runs("b", limit=1)] == ["b-2"]
        assert store.list_runs("c") == []
        assert [r.run_id for r in store.list_runs(None)] == ["b-2", "a-2", "b-1", "a-1"]

    def test_list_runs_pages_with_offset(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record(f"p-{i}", created=i) for i in range(7)]))
        pages = [[r.run_id for r in store.list_runs(limit=3, offset=o)] for o in (0, 3, 6, 9)]
        assert pages == [["p-6", "p-5", "p-4"], ["p-3", "p-2", "p-1"], ["p-0"], []]

    def test_pipelines_are_the_names_with_runs(self, store: MetadataStore) -> None:
        assert store.pipelines() == []
        store.apply(Batch(runs=[
            run_record("b-1", "b", created=1), run_record("a-1", "a", created=2),
            run_record("b-2", "b", created=3),
        ]))
        assert store.pipelines() == ["a", "b"]

    def test_request_cancel(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record(), run_record("p-2", created=1)]))
        assert store.get_run("p-1").cancel_requested is False
        store.request_cancel("p-1")
        assert store.get_run("p-1").cancel_requested is True
        assert store.get_run("p-2").cancel_requested is False
        assert {r.run_id: r.cancel_requested for r in store.list_runs()} == {
            "p-1": True, "p-2": False,
        }

    def test_apply_of_the_run_does_not_clear_a_cancel_request(
        self, store: MetadataStore
    ) -> None:
        store.apply(Batch(runs=[run_record()]))
        store.request_cancel("p-1")
        store.apply(Batch(runs=[run_record(state="running", ended_at=T0 + 5)]))
        run = store.get_run("p-1")
        assert run.cancel_requested is True
        assert run.ended_at == T0 + 5  # the rest of the record was applied

    def test_apply_of_the_run_does_not_set_a_cancel_request(
        self, store: MetadataStore
    ) -> None:
        store.apply(Batch(runs=[run_record()]))
        store.apply(Batch(runs=[run_record(cancel_requested=True)]))
        assert store.get_run("p-1").cancel_requested is False

    def test_request_cancel_false_clears_it(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        store.request_cancel("p-1", True)
        store.request_cancel("p-1", True)  # twice is fine
        store.request_cancel("p-1", False)
        assert store.get_run("p-1").cancel_requested is False
        store.request_cancel("p-1", False)
        assert store.get_run("p-1").cancel_requested is False

    def test_request_cancel_of_an_unknown_run(self, store: MetadataStore) -> None:
        with pytest.raises(RunNotFoundError) as excinfo:
            store.request_cancel("nope")
        assert excinfo.value.run_id == "nope"

    # -- claims -----------------------------------------------------------------------------

    def test_the_clock_tells_seconds_since_1970(self, store: MetadataStore) -> None:
        first, second = store.clock(), store.clock()
        assert isinstance(first, float)
        assert T0 < first <= second  # not before this suite was written; never backwards

    def test_claim_a_run_nobody_owns(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        before = store.clock()
        assert store.claim_run("p-1", "h:1:a") == 1
        run = store.get_run("p-1")
        assert (run.owner, run.epoch) == ("h:1:a", 1)
        assert run.heartbeat is not None and before <= run.heartbeat <= store.clock()

    def test_claim_of_an_unknown_run(self, store: MetadataStore) -> None:
        with pytest.raises(RunNotFoundError):
            store.claim_run("nope", "h:1:a")

    def test_a_live_owner_keeps_its_run(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        assert store.claim_run("p-1", "elsewhere:1:a") == 1
        assert store.claim_run("p-1", "elsewhere:2:b") is None
        assert store.claim_run("p-1", "elsewhere:2:b", stale_after=3600) is None
        run = store.get_run("p-1")
        assert (run.owner, run.epoch) == ("elsewhere:1:a", 1)

    def test_a_stale_owner_loses_its_run(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        assert store.claim_run("p-1", "elsewhere:1:a") == 1
        # every heartbeat is older than -1 s: the owner counts as gone, on the store's clock
        assert store.claim_run("p-1", "elsewhere:2:b", stale_after=-1) == 2
        assert (store.get_run("p-1").owner, store.get_run("p-1").epoch) == ("elsewhere:2:b", 2)

    def test_an_owner_whose_process_ended_here_loses_its_run(self, store: MetadataStore
                                                              ) -> None:
        dead = _ended_pid()
        store.apply(Batch(runs=[run_record(), run_record("p-2", created=1)]))
        assert store.claim_run("p-1", f"{socket.gethostname()}:{dead}:a") == 1
        assert store.claim_run("p-1", "elsewhere:2:b") == 2
        # the same pid on another host says nothing: that host's process may well be alive
        assert store.claim_run("p-2", f"elsewhere:{dead}:a") == 1
        assert store.claim_run("p-2", "elsewhere:2:b") is None

    def test_heartbeat_keeps_a_claim_until_it_is_lost(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        epoch = store.claim_run("p-1", "h:1:a")
        assert epoch == 1
        first = store.get_run("p-1").heartbeat
        assert store.heartbeat("p-1", "h:1:a", epoch) is True
        assert (store.get_run("p-1").heartbeat or 0) >= (first or 0)
        assert store.heartbeat("p-1", "h:1:a", epoch + 1) is False  # not its epoch
        assert store.heartbeat("p-1", "h:9:z", epoch) is False  # not its owner
        assert store.claim_run("p-1", "h:2:b", stale_after=-1) == 2
        assert store.heartbeat("p-1", "h:1:a", epoch) is False  # taken over: lost
        assert store.heartbeat("p-1", "h:2:b", 2) is True

    def test_release_gives_the_run_up_and_keeps_its_epoch(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        epoch = store.claim_run("p-1", "elsewhere:1:a")
        assert epoch is not None
        store.release_run("p-1", "elsewhere:9:z", epoch)  # not the owner: nothing happens
        assert store.get_run("p-1").owner == "elsewhere:1:a"
        store.release_run("p-1", "elsewhere:1:a", epoch)
        assert (store.get_run("p-1").owner, store.get_run("p-1").epoch) == (None, 1)
        assert store.claim_run("p-1", "elsewhere:2:b") == 2  # epochs never go back

    def test_a_run_created_claimed_is_owned_at_once(self, store: MetadataStore) -> None:
        assert store.create_runs([run_record(owner="elsewhere:1:a")]) == ["p-1"]
        run = store.get_run("p-1")
        assert (run.owner, run.epoch) == ("elsewhere:1:a", 1)
        assert run.heartbeat is not None and abs(run.heartbeat - store.clock()) < 3600
        assert store.claim_run("p-1", "elsewhere:2:b") is None
        store.apply(Batch(events=[event()]), fence=("p-1", 1))
        assert len(store.events()) == 1

    def test_a_fenced_batch_is_applied_while_the_epoch_holds(self, store: MetadataStore
                                                              ) -> None:
        store.apply(Batch(runs=[run_record()]))
        epoch = store.claim_run("p-1", "h:1:a")
        assert epoch is not None
        store.apply(Batch(runs=[run_record(state="success")], events=[event()]),
                    fence=("p-1", epoch))
        assert store.get_run("p-1").state == "success"
        assert store.get_run("p-1").owner == "h:1:a"  # writing the run kept the claim

    def test_a_fenced_out_batch_changes_nothing(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        old = store.claim_run("p-1", "h:1:a")
        assert old is not None
        assert store.claim_run("p-1", "h:2:b", stale_after=-1) == old + 1
        before = (store.get_run("p-1"), store.task_instances("p-1"), store.attempts("p-1"),
                  store.events(), store.cache_entries("p"), store.artifacts())
        late = Batch(
            runs=[run_record(state="cancelled")],
            task_instances=[task_instance(state="success")],
            attempts=[attempt_record(state="success")],
            artifacts=[artifact_record("ab" * 32)], cache=[cache_entry()], events=[event()],
        )
        with pytest.raises(ClaimLostError) as excinfo:
            store.apply(late, fence=("p-1", old))
        assert (excinfo.value.run_id, excinfo.value.owner) == ("p-1", "h:2:b")
        assert "p-1" in str(excinfo.value) and "'h:2:b'" in str(excinfo.value)
        after = (store.get_run("p-1"), store.task_instances("p-1"), store.attempts("p-1"),
                 store.events(), store.cache_entries("p"), store.artifacts())
        assert after == before

    def test_a_fence_on_an_unknown_run_writes_nothing(self, store: MetadataStore) -> None:
        with pytest.raises(ClaimLostError):
            store.apply(Batch(events=[event()]), fence=("nope", 1))
        assert store.events() == []

    def test_effective_state_judges_the_owner_on_the_stores_clock(
        self, store: MetadataStore
    ) -> None:
        store.apply(Batch(runs=[run_record(), run_record("p-2", created=1, state="failed")]))
        store.claim_run("p-1", "elsewhere:1:a")
        run, now = store.get_run("p-1"), store.clock()
        assert effective_state(run, now) == "running"
        assert effective_state(run, now, stale_after=-1) == "interrupted"
        assert effective_state(store.get_run("p-2"), now, stale_after=-1) == "failed"
        store.claim_run("p-1", f"{socket.gethostname()}:{_ended_pid()}:b", stale_after=-1)
        assert effective_state(store.get_run("p-1"), store.clock()) == "interrupted"

    # -- pool slots -------------------------------------------------------------------------

    def _claimed_runs(self, store: MetadataStore, *run_ids: str) -> dict[str, SlotHolder]:
        """Runs claimed by live owners elsewhere; for each, a holder of its task ``db``."""
        store.apply(Batch(runs=[run_record(r, created=i) for i, r in enumerate(run_ids)]))
        holders = {}
        for i, run_id in enumerate(run_ids):
            epoch = store.claim_run(run_id, f"elsewhere:{i}:a")
            assert epoch is not None
            holders[run_id] = SlotHolder(run_id, "db", -1, epoch)
        return holders

    def test_a_pool_gives_at_most_its_limit_of_slots(self, store: MetadataStore) -> None:
        h = self._claimed_runs(store, "p-1", "p-2", "p-3")
        assert store.take_slot("db", 2, h["p-1"]) is True
        assert store.take_slot("db", 2, h["p-2"]) is True
        assert store.take_slot("db", 2, h["p-3"]) is False
        assert store.take_slot("other", 1, h["p-3"]) is True  # pools are counted apart
        # a task of the same run is another holder: it counts against the limit too
        assert store.take_slot("db", 2, SlotHolder("p-1", "db", 0, h["p-1"].epoch)) is False
        assert [(s.pool, s.run_id) for s in store.slots("db")] == [("db", "p-1"), ("db", "p-2")]
        assert {s.pool for s in store.slots()} == {"db", "other"}
        slot = store.slots("other")[0]
        assert (slot.task, slot.map_index, slot.epoch) == ("db", -1, h["p-3"].epoch)
        assert slot.taken_at <= store.clock()

    def test_taking_a_slot_held_already_says_yes_and_takes_no_other(
        self, store: MetadataStore
    ) -> None:
        h = self._claimed_runs(store, "p-1", "p-2")
        assert store.take_slot("db", 1, h["p-1"]) is True
        assert store.take_slot("db", 1, h["p-1"]) is True  # made again: still one slot
        assert len(store.slots("db")) == 1
        assert store.take_slot("db", 1, h["p-2"]) is False

    def test_a_released_slot_can_be_taken_by_another(self, store: MetadataStore) -> None:
        h = self._claimed_runs(store, "p-1", "p-2")
        assert store.take_slot("db", 1, h["p-1"]) is True
        store.release_slot("db", h["p-1"])
        store.release_slot("db", h["p-1"])  # twice: nothing more happens
        assert store.slots("db") == []
        assert store.take_slot("db", 1, h["p-2"]) is True

    def test_a_release_is_fenced_on_the_holders_epoch(self, store: MetadataStore) -> None:
        h = self._claimed_runs(store, "p-1", "p-2")
        mine = h["p-1"]
        assert store.take_slot("db", 1, mine) is True
        stale = SlotHolder(mine.run_id, mine.task, mine.map_index, mine.epoch - 1)
        store.release_slot("db", stale)  # an older claim's release frees nothing
        store.release_slots("p-1", mine.epoch - 1)
        assert len(store.slots("db")) == 1
        assert store.take_slot("db", 1, h["p-2"]) is False
        store.release_slots("p-1", mine.epoch)
        assert store.slots() == []
        assert store.take_slot("db", 1, h["p-2"]) is True

    def test_release_slots_frees_every_slot_of_the_run(self, store: MetadataStore) -> None:
        h = self._claimed_runs(store, "p-1", "p-2")
        epoch = h["p-1"].epoch
        for pool, index in (("db", -1), ("db", 0), ("gpu", 3)):
            assert store.take_slot(pool, 5, SlotHolder("p-1", "db", index, epoch)) is True
        assert store.take_slot("db", 5, h["p-2"]) is True
        store.release_slots("p-1", epoch)
        assert [(s.pool, s.run_id) for s in store.slots()] == [("db", "p-2")]

    def test_a_stale_holders_slot_is_taken_back(self, store: MetadataStore) -> None:
        h = self._claimed_runs(store, "p-1", "p-2")
        assert store.take_slot("db", 1, h["p-1"]) is True
        assert store.take_slot("db", 1, h["p-2"], stale_after=3600) is False
        # every heartbeat is older than -1 s: p-1's owner counts as gone, its slot with it
        assert store.take_slot("db", 1, h["p-2"], stale_after=-1) is True
        assert [s.run_id for s in store.slots("db")] == ["p-2"]

    def test_a_slot_of_an_ended_process_or_a_released_run_is_taken_back(
        self, store: MetadataStore
    ) -> None:
        store.apply(Batch(runs=[run_record(), run_record("p-2", created=1),
                                run_record("p-3", created=2)]))
        gone = store.claim_run("p-1", f"{socket.gethostname()}:{_ended_pid()}:a")
        released = store.claim_run("p-2", "elsewhere:2:b")
        live = store.claim_run("p-3", "elsewhere:3:c")
        assert gone is not None and released is not None and live is not None
        assert store.take_slot("db", 2, SlotHolder("p-1", "db", -1, gone)) is True
        assert store.take_slot("db", 2, SlotHolder("p-2", "db", -1, released)) is True
        store.release_run("p-2", "elsewhere:2:b", released)  # nobody owns p-2 now
        assert store.take_slot("db", 2, SlotHolder("p-3", "db", -1, live)) is True
        assert store.take_slot("db", 2, SlotHolder("p-3", "db", 0, live)) is True
        assert sorted(s.map_index for s in store.slots("db")) == [-1, 0]
        assert {s.run_id for s in store.slots("db")} == {"p-3"}

    def test_a_slot_of_an_earlier_claim_does_not_count(self, store: MetadataStore) -> None:
        h = self._claimed_runs(store, "p-1", "p-2")
        old = h["p-1"]
        assert store.take_slot("db", 1, old) is True
        new = store.claim_run("p-1", "elsewhere:9:z", stale_after=-1)  # taken over
        assert new == old.epoch + 1
        assert store.take_slot("db", 1, h["p-2"]) is True  # the old claim's slot is dead
        assert [s.run_id for s in store.slots("db")] == ["p-2"]
        # the new owner's task waits like anyone's; the old owner's holder gets nothing
        assert store.take_slot("db", 1, SlotHolder("p-1", "db", -1, new)) is False
        assert store.take_slot("db", 2, SlotHolder("p-1", "db", -1, new)) is True
        assert store.take_slot("db", 2, old) is False

    # -- task instances ---------------------------------------------------------------------

    def test_task_instance_round_trips(self, store: MetadataStore) -> None:
        full = TaskInstanceRecord(
            "p-1", "train", -1, "success", attempt=2, cache_key="key1", output="ab" * 32,
            files={"model": "cd" * 32, "report": "ef" * 32}, started_at=T0 + 1,
            ended_at=T0 + 2, error=None,
        )
        bare = TaskInstanceRecord("p-1", "clean", -1, "failed", error="ValueError: bad row")
        store.apply(Batch(task_instances=[copy.deepcopy(full), copy.deepcopy(bare)]))
        assert _sorted_tis(store.task_instances("p-1")) == [bare, full]

    def test_task_instance_upsert_replaces_it(self, store: MetadataStore) -> None:
        store.apply(Batch(task_instances=[task_instance(files={"a": "ab" * 32})]))
        replacement = task_instance(state="success", attempt=1, output="cd" * 32)
        store.apply(Batch(task_instances=[copy.deepcopy(replacement)]))
        assert store.task_instances("p-1") == [replacement]  # files={} replaced the old ones

    def test_task_instances_by_map_index_and_run(self, store: MetadataStore) -> None:
        store.apply(Batch(task_instances=[
            task_instance("load", map_index=-1, state="running"),
            task_instance("load", map_index=0, state="success"),
            task_instance("load", map_index=1, state="failed"),
            task_instance("load", run_id="p-2", state="success"),
        ]))
        got = _sorted_tis(store.task_instances("p-1"))
        assert [(t.map_index, t.state) for t in got] == [
            (-1, "running"), (0, "success"), (1, "failed"),
        ]
        assert [t.run_id for t in store.task_instances("p-2")] == ["p-2"]
        assert store.task_instances("p-3") == []
        assert [t.map_index for t in store.task_instances("p-1", mapped=False)] == [-1]

    # -- attempts ---------------------------------------------------------------------------

    def test_attempt_round_trips(self, store: MetadataStore) -> None:
        record = AttemptRecord(
            "p-1", "train", 3, 2, "failed", T0, ended_at=T0 + 1, error="ValueError: x",
            traceback="Traceback (most recent call last):\n  ...", log_path="logs/p-1/train.2.log",
        )
        store.apply(Batch(attempts=[copy.deepcopy(record)]))
        assert store.attempts("p-1") == [record]

    def test_attempt_upsert_replaces_it(self, store: MetadataStore) -> None:
        store.apply(Batch(attempts=[attempt_record()]))
        done = attempt_record(state="success", ended_at=T0 + 3)
        store.apply(Batch(attempts=[copy.deepcopy(done)]))
        assert store.attempts("p-1") == [done]

    def test_attempts_in_order_and_filtered(self, store: MetadataStore) -> None:
        store.apply(Batch(attempts=[
            attempt_record("train", 2, started=5),
            attempt_record("clean", 1, started=1),
            attempt_record("train", 1, started=2),
            attempt_record("b_same_time", 1, started=2),
            attempt_record("train", 1, run_id="p-2"),
        ]))
        assert [(a.task, a.attempt) for a in store.attempts("p-1")] == [
            ("clean", 1), ("b_same_time", 1), ("train", 1), ("train", 2),
        ]
        assert [a.attempt for a in store.attempts("p-1", "train")] == [1, 2]
        assert store.attempts("p-1", "nope") == []
        assert [a.run_id for a in store.attempts("p-2")] == ["p-2"]

    def test_attempts_of_one_time_ordered_by_map_index_then_attempt(
        self, store: MetadataStore
    ) -> None:
        store.apply(Batch(attempts=[
            attempt_record("load", 2, map_index=1), attempt_record("load", 1, map_index=1),
            attempt_record("load", 1, map_index=0),
        ]))
        assert [(a.map_index, a.attempt) for a in store.attempts("p-1")] == [
            (0, 1), (1, 1), (1, 2),
        ]

    # -- artifacts --------------------------------------------------------------------------

    def test_artifact_round_trips_with_inline_data(self, store: MetadataStore) -> None:
        record = artifact_record("ab" * 32, data=b"[1,2]", size=5, parents=("cd" * 32,))
        store.apply(Batch(artifacts=[copy.deepcopy(record)]))
        assert store.artifact("ab" * 32) == record

    def test_artifact_round_trips_with_a_uri(self, store: MetadataStore) -> None:
        record = artifact_record(
            "ab" * 32, serializer="parquet", size=1 << 20, name="model",
            uri="file:///tmp/artifacts/ab/abab", data=None, parents=(),
        )
        store.apply(Batch(artifacts=[copy.deepcopy(record)]))
        assert store.artifact("ab" * 32) == record

    def test_artifact_data_reads_many_at_once(self, store: MetadataStore) -> None:
        inline = [artifact_record(f"{i:04x}" * 16, data=b"%d" % i, size=1) for i in range(700)]
        in_file = artifact_record("ff" * 32, data=None, uri="file:///tmp/a/ff", size=9)
        store.apply(Batch(artifacts=[*inline, in_file]))
        asked = [a.hash for a in inline[::3]] + [in_file.hash, "00" * 32]
        found = store.artifact_data(asked)
        assert found == {**{a.hash: ("json", a.data) for a in inline[::3]},
                         in_file.hash: ("json", None)}
        assert store.artifact_data([]) == {}

    def test_artifact_parents_round_trip(self, store: MetadataStore) -> None:
        parents = ("01" * 32, "02" * 32, "03" * 32)
        store.apply(Batch(artifacts=[artifact_record("ab" * 32, parents=parents)]))
        found = store.artifact("ab" * 32)
        assert found is not None
        assert isinstance(found.parents, tuple)
        assert sorted(found.parents) == list(parents)

    def test_unknown_artifact(self, store: MetadataStore) -> None:
        assert store.artifact("ff" * 32) is None

    def test_artifact_insert_is_ignored_when_the_hash_exists(self, store: MetadataStore) -> None:
        first = artifact_record("ab" * 32, run_id="p-1", data=b"1", size=1)
        store.apply(Batch(artifacts=[copy.deepcopy(first)]))
        store.apply(Batch(artifacts=[
            artifact_record("ab" * 32, run_id="p-2", task="other", created=9, data=b"2", size=1)
        ]))
        assert store.artifact("ab" * 32) == first
        assert len(store.artifacts()) == 1

    def test_artifact_insert_is_ignored_with_its_parents(self, store: MetadataStore) -> None:
        store.apply(Batch(artifacts=[artifact_record("ab" * 32, parents=("01" * 32,))]))
        store.apply(Batch(artifacts=[
            artifact_record("ab" * 32, run_id="p-2", created=9, parents=("02" * 32,))
        ]))
        found = store.artifact("ab" * 32)
        assert found is not None
        assert found.parents == ("01" * 32,)

    def test_artifacts_newest_first_limited_and_by_pipeline(self, store: MetadataStore) -> None:
        store.apply(Batch(artifacts=[
            artifact_record(f"{i:02x}" * 32, created=i, pipeline="a" if i % 2 else "b")
            for i in range(6)
        ]))
        hashes = [a.hash for a in store.artifacts()]
        assert hashes == [f"{i:02x}" * 32 for i in (5, 4, 3, 2, 1, 0)]
        assert [a.hash for a in store.artifacts(limit=2)] == hashes[:2]
        assert [a.hash for a in store.artifacts("a")] == [f"{i:02x}" * 32 for i in (5, 3, 1)]
        assert [a.hash for a in store.artifacts("b", limit=1)] == ["04" * 32]
        assert store.artifacts("c") == []

    def test_artifacts_listing_keeps_every_field_but_data(self, store: MetadataStore) -> None:
        record = artifact_record("ab" * 32, data=b"xy", size=2, name="model", uri=None,
                                 parents=("cd" * 32,))
        store.apply(Batch(artifacts=[copy.deepcopy(record)]))
        (listed,) = store.artifacts()
        assert listed.data in (None, b"xy")  # a listing may leave the bytes out
        listed.data = record.data
        assert listed == record

    # -- cache ------------------------------------------------------------------------------

    def test_cache_entry_round_trips(self, store: MetadataStore) -> None:
        entry = cache_entry(
            output=None, files={"model": "cd" * 32},
            meta={"code": "c1", "params_read": {"threshold": 0.5}, "inputs": ["ab" * 32]},
        )
        store.apply(Batch(cache=[copy.deepcopy(entry)]))
        assert store.cache_entries("p") == [entry]

    def test_cache_entries_newest_first(self, store: MetadataStore) -> None:
        store.apply(Batch(cache=[
            cache_entry(key="k1", created=1), cache_entry(key="k3", created=3),
            cache_entry(key="k2", created=2),
        ]))
        assert [e.key for e in store.cache_entries("p")] == ["k3", "k2", "k1"]

    def test_cache_entries_by_task_and_pipeline(self, store: MetadataStore) -> None:
        store.apply(Batch(cache=[
            cache_entry("clean", "k1", created=1), cache_entry("train", "k2", created=2),
            cache_entry("clean", "k3", created=3), cache_entry("clean", "k4", pipeline="q"),
        ]))
        assert [e.key for e in store.cache_entries("p", "clean")] == ["k3", "k1"]
        assert [e.key for e in store.cache_entries("p", "train")] == ["k2"]
        assert store.cache_entries("p", "nope") == []
        assert [e.key for e in store.cache_entries("p")] == ["k3", "k2", "k1"]
        assert [e.key for e in store.cache_entries("q")] == ["k4"]
        assert store.cache_entries("r") == []

    def test_newest_cache_entries_per_task(self, store: MetadataStore) -> None:
        store.apply(Batch(cache=[
            cache_entry("clean", "k1", created=1), cache_entry("clean", "k3", created=3),
            cache_entry("train", "k2", created=2), cache_entry("clean", "k4", pipeline="q",
                                                               created=9),
        ]))
        found = store.newest_cache_entries("p", ["clean", "train", "nope", "clean"])
        assert {task: e.key for task, e in found.items()} == {"clean": "k3", "train": "k2"}
        assert found["clean"] == store.cache_entries("p", "clean", limit=1)[0]
        assert store.newest_cache_entries("p", []) == {}

    def test_cache_entries_by_key_and_limit(self, store: MetadataStore) -> None:
        store.apply(Batch(cache=[
            cache_entry("clean", "k1", created=1), cache_entry("train", "k1", created=2),
            cache_entry("clean", "k3", created=3),
        ]))
        assert [e.task for e in store.cache_entries("p", keys=["k1"])] == ["train", "clean"]
        assert [e.key for e in store.cache_entries("p", "clean", keys=["k1"])] == ["k1"]
        assert store.cache_entries("p", "clean", keys=["k9"]) == []
        assert [e.key for e in store.cache_entries("p", "clean", limit=1)] == ["k3"]
        assert [e.key for e in store.cache_entries("p", limit=2)] == ["k3", "k1"]

    def test_cache_entries_under_many_keys_are_read_together(self, store: MetadataStore
                                                             ) -> None:
        entries = [cache_entry("double", f"k{i}", created=i) for i in range(1200)]
        store.apply(Batch(cache=entries))
        wanted = [f"k{i}" for i in range(0, 1200, 2)] + ["nope"]  # more than one IN list holds
        found = store.cache_entries("p", "double", keys=wanted)
        assert [e.key for e in found] == [f"k{i}" for i in range(1198, -1, -2)]  # newest first
        assert [e.key for e in store.cache_entries("p", keys=wanted, limit=2)] == ["k1198",
                                                                                  "k1196"]
        assert store.cache_entries("p", "other", keys=wanted) == []
        assert store.cache_entries("p", keys=[]) == []

    def test_cache_entry_with_the_same_key_replaces_it(self, store: MetadataStore) -> None:
        store.apply(Batch(cache=[cache_entry(key="k1", output="aa" * 32, created=1)]))
        newer = cache_entry(key="k1", output="bb" * 32, run_id="p-2", created=5)
        store.apply(Batch(cache=[copy.deepcopy(newer)]))
        assert store.cache_entries("p") == [newer]

    # -- events -----------------------------------------------------------------------------

    def test_events_get_increasing_ids(self, store: MetadataStore) -> None:
        store.apply(Batch(events=[event("run_started", ts=0), event("task_started", ts=1)]))
        store.apply(Batch(events=[event("task_finished", ts=2)]))
        found = store.events()
        assert [e.kind for e in found] == ["run_started", "task_started", "task_finished"]
        ids = [e.id for e in found]
        assert ids[0] > 0
        assert ids == sorted(set(ids))

    def test_event_round_trips(self, store: MetadataStore) -> None:
        full = Event("p-1", "task_finished", T0, task="load", map_index=3,
                     data={"state": "success", "n": [1, 2], "nested": {"a": None}})
        bare = Event("p-1", "run_started", T0 + 1)
        store.apply(Batch(events=[copy.deepcopy(full), copy.deepcopy(bare)]))
        got = store.events()
        for found, sent in zip(got, (full, bare), strict=True):
            sent.id = found.id
            assert found == sent
        assert got[1].task is None and got[1].map_index == -1 and got[1].data == {}

    def test_events_filtered_by_run_and_after(self, store: MetadataStore) -> None:
        store.apply(Batch(events=[event("a1", "p-1"), event("b1", "p-2"), event("a2", "p-1")]))
        store.apply(Batch(events=[event("b2", "p-2"), event("a3", "p-1")]))
        everything = store.events()
        assert [e.kind for e in everything] == ["a1", "b1", "a2", "b2", "a3"]
        ids = {e.kind: e.id for e in everything}
        assert [e.kind for e in store.events("p-1")] == ["a1", "a2", "a3"]
        assert [e.kind for e in store.events("p-2")] == ["b1", "b2"]
        assert [e.kind for e in store.events(after=ids["b1"])] == ["a2", "b2", "a3"]
        assert [e.kind for e in store.events("p-1", after=ids["b1"])] == ["a2", "a3"]
        assert [e.kind for e in store.events("p-2", after=ids["b2"])] == []
        assert store.events(after=ids["a3"]) == []
        assert store.events("p-3") == []

    def test_events_page_backwards_newest_first(self, store: MetadataStore) -> None:
        store.apply(Batch(events=[event(f"e{i}", "p-1" if i % 2 else "p-2") for i in range(7)]))
        ids = [e.id for e in store.events()]
        first = store.events(before=ids[-1] + 1, limit=3)
        assert [e.kind for e in first] == ["e6", "e5", "e4"]
        second = store.events(before=first[-1].id, limit=3)
        assert [e.kind for e in second] == ["e3", "e2", "e1"]
        assert [e.kind for e in store.events(before=second[-1].id, limit=3)] == ["e0"]
        assert store.events(before=ids[0]) == []
        assert [e.kind for e in store.events("p-1", before=ids[-1] + 1)] == ["e5", "e3", "e1"]
        assert [e.kind for e in store.events(limit=2)] == ["e0", "e1"]

    def test_events_can_be_followed(self, store: MetadataStore) -> None:
        """The way a UI tails a run: ask again for what came after the last id it saw."""
        seen: list[str] = []
        last = 0
        for kinds in (["a", "b"], [], ["c"]):
            store.apply(Batch(events=[event(kind) for kind in kinds]))
            new = store.events("p-1", after=last)
            seen += [e.kind for e in new]
            last = new[-1].id if new else last
        assert seen == ["a", "b", "c"]

    # -- approvals -----------------------------------------------------------------------

    def test_decide_records_who_when_and_why(self, store: MetadataStore) -> None:
        store.apply(Batch(runs=[run_record()]))
        assert store.approvals(RUN) == []

        store.decide(Approval(RUN, "promote", True, "ana", T0 + 5, "looks good"))
        store.decide(Approval(RUN, "publish", False, "bo", T0 + 6, "not yet"))
        assert store.approvals(RUN) == [
            Approval(RUN, "promote", True, "ana", T0 + 5, "looks good"),
            Approval(RUN, "publish", False, "bo", T0 + 6, "not yet"),
        ]
        store.decide(Approval(RUN, "publish", True, "cy", T0 + 7, "changed my mind"))
        assert [a.approved for a in store.approvals(RUN)] == [True, True]

    def test_decide_on_an_unknown_run(self, store: MetadataStore) -> None:
        with pytest.raises(RunNotFoundError):
            store.decide(Approval("nope", "promote", True, "ana", T0))

    # -- scheduling ------------------------------------------------------------------------

    def test_create_run_once_per_interval(self, store: MetadataStore) -> None:
        day = "2026-11-01T00:00:00+00:00"
        first = run_record("p-a", state="queued", logical_date=day, interval_start=day,
                           interval_end="2026-11-02T00:00:00+00:00")
        assert store.create_runs([first]) == ["p-a"]
        again = run_record("p-b", state="queued", logical_date=day, interval_start=day,
                           interval_end="2026-11-02T00:00:00+00:00")
        assert store.create_runs([again]) == []  # another id, same interval: refused
        assert store.create_runs([first]) == []  # the same id: refused
        other = run_record("q-a", pipeline="q", state="queued", logical_date=day)
        assert store.create_runs([other, again]) == ["q-a"]  # another pipeline: fine
        manual = [run_record("p-manual-1", created=1), run_record("p-manual-2", created=2)]
        assert store.create_runs(manual) == ["p-manual-1", "p-manual-2"]  # no interval
        assert [r.run_id for r in store.runs_in_states(["queued"])] == ["p-a", "q-a"]
        assert store.latest_intervals() == {"p": "2026-11-02T00:00:00+00:00"}

    def test_pause_and_unpause(self, store: MetadataStore) -> None:
        assert store.paused() == set()
        store.set_paused("p", True)
        store.set_paused("q", True)
        store.set_paused("q", False)
        assert store.paused() == {"p"}

    def test_cursors_round_trip_as_json(self, store: MetadataStore) -> None:
        assert store.get_cursor("sensor:p.files") is None
        store.set_cursor("sensor:p.files", {"seen": ["a.csv"], "at": 1.5})
        assert store.get_cursor("sensor:p.files") == {"seen": ["a.csv"], "at": 1.5}

    def test_a_lease_has_one_live_holder(self, store: MetadataStore) -> None:
        assert store.acquire_lease("scheduler", "A", until=T0 + 30, now=T0) == "A"
        assert store.acquire_lease("scheduler", "B", until=T0 + 40, now=T0 + 10) == "A"
        assert store.acquire_lease("scheduler", "A", until=T0 + 60, now=T0 + 20) == "A"
        assert store.acquire_lease("scheduler", "B", until=T0 + 99, now=T0 + 61) == "B"
        store.release_lease("scheduler", "A")  # not A's any more: nothing happens
        assert store.acquire_lease("scheduler", "C", until=T0 + 99, now=T0 + 62) == "B"
        store.release_lease("scheduler", "B")
        assert store.acquire_lease("scheduler", "C", until=T0 + 99, now=T0 + 63) == "C"


    # -- versions and aliases ----------------------------------------------------------------

    def test_versions_newest_first_per_task_and_output(self, store: MetadataStore) -> None:
        store.apply(Batch(artifacts=[
            artifact_record("a" * 64, created=1, task="train"),
            artifact_record("b" * 64, created=2, task="train"),
            artifact_record("c" * 64, created=3, task="clean"),
            artifact_record("d" * 64, created=4, task="train", name="model"),
        ]))
        assert [v.hash[0] for v in store.versions("p", "train")] == ["b", "a"]
        assert [v.hash[0] for v in store.versions("p", "train", "model")] == ["d"]
        assert all(v.data is None for v in store.versions("p", "train"))
        assert [v.hash[0] for v in store.versions("p", "train", limit=1)] == ["b"]

    def test_alias_history_newest_first(self, store: MetadataStore) -> None:
        assert store.alias_history("p", "train", "active") == []
        store.set_alias(AliasChange("p", "train", "active", "a" * 64, T0 + 1, "ana"))
        store.set_alias(AliasChange("p", "train", "active", "b" * 64, T0 + 2, "bo"))
        store.set_alias(AliasChange("p", "train", "staging", "c" * 64, T0 + 3))
        history = store.alias_history("p", "train", "active")
        assert [(c.hash[0], c.by) for c in history] == [("b", "bo"), ("a", "ana")]
