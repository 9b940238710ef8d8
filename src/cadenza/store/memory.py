"""A MetadataStore in dictionaries: for tests and `cadenza.testing`; gone when the process ends."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Collection, Iterable
from typing import Any

from cadenza.exceptions import ClaimLostError, RunNotFoundError
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


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, RunRecord] = {}
        self._tis: dict[tuple[str, str, int], TaskInstanceRecord] = {}
        self._attempts: dict[tuple[str, str, int, int], AttemptRecord] = {}
        self._artifacts: dict[str, ArtifactRecord] = {}
        self._cache: dict[tuple[str, str, str], CacheEntry] = {}
        self._events: list[Event] = []
        self._approvals: dict[tuple[str, str], Approval] = {}
        self._paused: set[str] = set()
        self._cursors: dict[str, str] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._aliases: list[AliasChange] = []
        self._slots: dict[tuple[str, str, str, int], Slot] = {}

    def apply(self, batch: Batch, fence: Fence | None = None) -> None:
        batch = copy.deepcopy(batch)  # records stay the store's own, as a database's would
        with self._lock:
            if fence is not None:
                run_id, epoch = fence
                held = self._runs.get(run_id)
                if held is None or held.epoch != epoch:
                    raise ClaimLostError(run_id, held.owner if held else None)
            for run in batch.runs:
                old = self._runs.get(run.run_id)
                if old is not None:  # the flag is request_cancel's, the claim claim_run's
                    run.cancel_requested, run.owner = old.cancel_requested, old.owner
                    run.epoch, run.heartbeat = old.epoch, old.heartbeat
                self._runs[run.run_id] = run
            for ti in batch.task_instances:
                self._tis[(ti.run_id, ti.task, ti.map_index)] = ti
            for a in batch.attempts:
                self._attempts[(a.run_id, a.task, a.map_index, a.attempt)] = a
            for art in batch.artifacts:
                self._artifacts.setdefault(art.hash, art)
            for entry in batch.cache:
                self._cache[(entry.pipeline, entry.task, entry.key)] = entry
            for event in batch.events:
                event.id = len(self._events) + 1
                self._events.append(event)

    def clock(self) -> float:
        return time.time()

    def claim_run(self, run_id: str, owner: str, stale_after: float = STALE_AFTER
                  ) -> int | None:
        with self._lock:
            run = self._get(run_id)
            now = time.time()
            if run.owner != owner and owner_live(run.owner, now - (run.heartbeat or 0.0),
                                                 stale_after):
                return None
            run.owner, run.epoch, run.heartbeat = owner, run.epoch + 1, now
            return run.epoch

    def heartbeat(self, run_id: str, owner: str, epoch: int) -> bool:
        with self._lock:
            run = self._get(run_id)
            if (run.owner, run.epoch) != (owner, epoch):
                return False
            run.heartbeat = time.time()
            return True

    def release_run(self, run_id: str, owner: str, epoch: int) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and (run.owner, run.epoch) == (owner, epoch):
                run.owner = None

    # -- pool slots -------------------------------------------------------------------------

    def take_slot(self, pool: str, limit: int, holder: SlotHolder,
                  stale_after: float = STALE_AFTER) -> bool:
        key = (pool, holder.run_id, holder.task, holder.map_index)
        with self._lock:
            now = time.time()
            held = []
            for slot in self._slots.values():
                if slot.pool == pool:
                    run = self._runs.get(slot.run_id)
                    held.append((slot.run_id, slot.task, slot.map_index, slot.epoch,
                                 run.epoch if run else None, run.owner if run else None,
                                 now - ((run.heartbeat if run else None) or 0.0)))
            verdict, dead = judge_slots(held, holder, limit, stale_after)
            for run_id, task, index in dead:
                del self._slots[(pool, run_id, task, index)]
            if verdict is not None:
                return verdict
            self._slots[key] = Slot(*key, holder.epoch, now)
            return True

    def release_slot(self, pool: str, holder: SlotHolder) -> None:
        key = (pool, holder.run_id, holder.task, holder.map_index)
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None and slot.epoch == holder.epoch:
                del self._slots[key]

    def release_slots(self, run_id: str, epoch: int) -> None:
        with self._lock:
            for key, slot in list(self._slots.items()):
                if slot.run_id == run_id and slot.epoch == epoch:
                    del self._slots[key]

    def slots(self, pool: str | None = None) -> list[Slot]:
        with self._lock:
            found = [copy.copy(s) for s in self._slots.values() if pool in (None, s.pool)]
        return sorted(found, key=lambda s: (s.taken_at, s.pool, s.run_id, s.task, s.map_index))

    def request_cancel(self, run_id: str, requested: bool = True) -> None:
        with self._lock:
            self._get(run_id).cancel_requested = requested

    def decide(self, approval: Approval) -> None:
        with self._lock:
            self._get(approval.run_id)
            self._approvals[(approval.run_id, approval.task)] = copy.deepcopy(approval)

    def approvals(self, run_id: str) -> list[Approval]:
        with self._lock:
            return [copy.deepcopy(a) for k, a in self._approvals.items() if k[0] == run_id]

    def _get(self, run_id: str) -> RunRecord:
        try:
            return self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(run_id) from None

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            return copy.deepcopy(self._get(run_id))

    def list_runs(self, pipeline: str | None = None, limit: int = 50, offset: int = 0
                  ) -> list[RunRecord]:
        with self._lock:
            runs = [r for r in self._runs.values() if pipeline in (None, r.pipeline)]
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return [copy.deepcopy(r) for r in runs[offset:offset + limit]]

    def pipelines(self) -> list[str]:
        with self._lock:
            return sorted({r.pipeline for r in self._runs.values()})

    def task_instances(self, run_id: str, mapped: bool = True) -> list[TaskInstanceRecord]:
        with self._lock:
            return [copy.deepcopy(ti) for k, ti in self._tis.items()
                    if k[0] == run_id and (mapped or k[2] < 0)]

    def attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]:
        with self._lock:
            found = [
                copy.deepcopy(a) for k, a in self._attempts.items()
                if k[0] == run_id and task in (None, k[1])
            ]
        return sorted(found, key=lambda a: (a.started_at, a.task, a.map_index, a.attempt))

    def artifact(self, hash: str) -> ArtifactRecord | None:
        with self._lock:
            return copy.deepcopy(self._artifacts.get(hash))

    def artifact_data(self, hashes: Collection[str]) -> dict[str, tuple[str, bytes | None]]:
        with self._lock:
            return {h: (a.serializer, a.data) for h in hashes
                    if (a := self._artifacts.get(h)) is not None}

    def artifacts(self, pipeline: str | None = None, limit: int = 100) -> list[ArtifactRecord]:
        with self._lock:
            found = [a for a in self._artifacts.values() if pipeline in (None, a.pipeline)]
        return copy.deepcopy(sorted(found, key=lambda a: a.created_at, reverse=True)[:limit])

    def cache_entries(self, pipeline: str, task: str | None = None, *,
                      keys: Collection[str] | None = None, limit: int | None = None
                      ) -> list[CacheEntry]:
        wanted = None if keys is None else set(keys)
        with self._lock:
            found = [
                e for k, e in self._cache.items()
                if k[0] == pipeline and task in (None, k[1]) and (wanted is None or k[2] in wanted)
            ]
        return copy.deepcopy(sorted(found, key=lambda e: e.created_at, reverse=True)[:limit])

    def newest_cache_entries(self, pipeline: str, tasks: Collection[str]
                             ) -> dict[str, CacheEntry]:
        found = {task: self.cache_entries(pipeline, task, limit=1) for task in tasks}
        return {task: entries[0] for task, entries in found.items() if entries}

    def events(self, run_id: str | None = None, after: int = 0, *, before: int | None = None,
               limit: int | None = None) -> list[Event]:
        with self._lock:
            found = [e for e in self._events[after:before and max(before - 1, 0)]
                     if run_id in (None, e.run_id)]
        if before is not None:
            found.reverse()
        return copy.deepcopy(found[:limit])

    # -- scheduling -------------------------------------------------------------------------

    def create_runs(self, runs: Iterable[RunRecord]) -> list[str]:
        created: list[str] = []
        with self._lock:
            taken: set[tuple[str, str | None]] = {
                (r.pipeline, r.logical_date) for r in self._runs.values()
                if r.logical_date is not None
            }
            for run in runs:
                key = (run.pipeline, run.logical_date)
                if run.run_id in self._runs or (run.logical_date is not None and key in taken):
                    continue
                self._runs[run.run_id] = record = copy.deepcopy(run)
                if record.owner is not None:  # created claimed: alive as of now
                    record.epoch, record.heartbeat = max(record.epoch, 1), time.time()
                taken.add(key)
                created.append(run.run_id)
        return created

    def runs_in_states(self, states: Iterable[str]) -> list[RunRecord]:
        wanted = set(states)
        with self._lock:
            found = [copy.deepcopy(r) for r in self._runs.values() if r.state in wanted]
        return sorted(found, key=lambda r: r.created_at)

    def latest_intervals(self) -> dict[str, str]:
        latest: dict[str, str] = {}
        with self._lock:
            for r in self._runs.values():
                if r.logical_date is not None and r.interval_end is not None:
                    latest[r.pipeline] = max(latest.get(r.pipeline, ""), r.interval_end)
        return latest

    def set_paused(self, pipeline: str, paused: bool) -> None:
        with self._lock:
            (self._paused.add if paused else self._paused.discard)(pipeline)

    def paused(self) -> set[str]:
        with self._lock:
            return set(self._paused)

    def get_cursor(self, key: str) -> Any:
        with self._lock:
            text = self._cursors.get(key)
        return None if text is None else json.loads(text)

    def set_cursor(self, key: str, value: Any) -> None:
        with self._lock:
            self._cursors[key] = json.dumps(value)  # stored as the SQL store would: as JSON

    def acquire_lease(self, name: str, holder: str, until: float, now: float) -> str | None:
        with self._lock:
            current = self._leases.get(name)
            if current is None or current[0] == holder or current[1] < now:
                self._leases[name] = (holder, until)
            return self._leases[name][0]

    def release_lease(self, name: str, holder: str) -> None:
        with self._lock:
            if self._leases.get(name, ("", 0.0))[0] == holder:
                del self._leases[name]

    # -- versions and aliases ---------------------------------------------------------------

    def versions(self, pipeline: str, task: str, name: str = "return",
                 limit: int | None = None) -> list[ArtifactRecord]:
        with self._lock:
            found = [a for a in self._artifacts.values()
                     if (a.pipeline, a.task, a.name) == (pipeline, task, name)]
        found = copy.deepcopy(sorted(found, key=lambda a: a.created_at, reverse=True)[:limit])
        for record in found:
            record.data = None
        return found

    def set_alias(self, change: AliasChange) -> None:
        with self._lock:
            self._aliases.append(copy.deepcopy(change))

    def alias_history(self, pipeline: str, task: str, alias: str, name: str = "return"
                      ) -> list[AliasChange]:
        with self._lock:
            found = [c for c in self._aliases
                     if (c.pipeline, c.task, c.alias, c.name) == (pipeline, task, alias, name)]
        return copy.deepcopy(sorted(found, key=lambda c: c.at, reverse=True))

    def close(self) -> None:
        pass
