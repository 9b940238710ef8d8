"""Recording what an attempt produced: its attempt record (masked), its output and declared
files as artifacts with their lineage, and its cache entry, all into the run's journal. Mixed
into the Runner (engine/run.py), whose loop thread alone calls these."""

from __future__ import annotations

import heapq
import time
from typing import TYPE_CHECKING, Any

from cadenza.artifacts.serializers import serialize
from cadenza.engine import logs
from cadenza.engine.attempt import AttemptResult, StoredValue, store_bytes
from cadenza.engine.cache import hide
from cadenza.engine.journal import Instance, Journal, Key
from cadenza.engine.states import TaskState
from cadenza.graph import Graph, Node
from cadenza.secrets import mask, mask_data
from cadenza.store.base import ArtifactRecord, CacheEntry

if TYPE_CHECKING:
    from cadenza.engine.cache import CacheIndex
    from cadenza.engine.values import Values
    from cadenza.pipeline import Pipeline
    from cadenza.workspace import Workspace

S = TaskState
SUCCESS, UP_FOR_RETRY = S.SUCCESS, S.UP_FOR_RETRY


class Records:
    """``_record`` ends an attempt: a success stores its output (``_store_output``), a retry
    waits in ``retries``, anything else ends the instance. ``_recorded`` keeps the artifact
    hashes this run has recorded already: a repeat adds no row."""

    # what recording uses of the Runner
    pipe: Pipeline
    graph: Graph
    ws: Workspace
    run_id: str
    tis: dict[Key, Instance]
    journal: Journal
    cache: CacheIndex
    values: Values
    params: Any
    secret: frozenset[str]
    retries: list[tuple[float, Key]]
    _recorded: set[str]

    if TYPE_CHECKING:
        def _choose(self, ti: Instance, result: AttemptResult) -> AttemptResult: ...
        def _end(self, ti: Instance, state: TaskState) -> None: ...
        def _move(self, ti: Instance, new: TaskState) -> None: ...
        def _event(self, task: str | None, index: int, kind: str, **data: Any) -> None: ...

    def _record(self, ti: Instance, result: AttemptResult) -> None:
        if result.follow is not None and result.state is SUCCESS:
            result = self._choose(ti, result)
        if result.error is not None:  # a task's error text may quote a secret
            result.error, result.traceback = mask(result.error), mask_data(result.traceback)
        ti.started, ti.ended, ti.error = result.started, result.ended, result.error
        attempt = ti.running
        assert attempt is not None and attempt.attempt == ti.attempt
        attempt.state, attempt.started_at, attempt.ended_at = (
            result.kind, result.started, result.ended
        )
        attempt.error, attempt.traceback = result.error, result.traceback
        attempt.log_path = ti.log_path if result.logged else None
        if result.shared_log is not None:  # for `cadenza logs` and the UI on other hosts
            self._event(ti.task, ti.index, logs.STORED, attempt=ti.attempt,
                        text=result.shared_log[0], records=result.shared_log[1])
        if result.checks:
            attempt.checks = mask_data(result.checks)
            for check in attempt.checks:
                kind = ("check_passed" if check["passed"] else
                        "check_failed" if check["severity"] == "error" else "check_warned")
                self._event(ti.task, ti.index, kind, check=check["check"],
                            severity=check["severity"], description=check["description"])
        if result.metrics:  # ctx.log_metric: read back by web/preview.py
            self._event(ti.task, ti.index, "metrics_logged", attempt=ti.attempt,
                        metrics=result.metrics)
        self.journal.update(attempt)
        state = result.state
        if state is SUCCESS:
            self._store_output(ti, result)
        if state is UP_FOR_RETRY:
            self._move(ti, UP_FOR_RETRY)
            self.journal.instance(ti)
            delay = self.graph.nodes[ti.task].spec.retry.delay(ti.attempt)
            heapq.heappush(self.retries, (time.monotonic() + delay, (ti.task, ti.index)))
        else:
            self._end(ti, state)

    def _store_output(self, ti: Instance, result: AttemptResult) -> None:
        node = self.graph.nodes[ti.task]
        stored = result.stored
        assert stored is not None
        ti.output = stored.hash
        ti.files = {name: file.hash for name, file in result.files.items()} if result.files else {}
        self.values.stored((ti.task, ti.index), result.value, stored)
        parents = self._parents(node)
        self._artifact(ti.task, "return", stored, parents)
        for name, file in result.files.items():
            self._artifact(ti.task, name, file, parents)
        if ti.meta is not None and ti.cache_key is not None:
            params = self.params
            ti.meta["params_read"] = {
                k: hide(params[k]) if k in self.secret else params[k]
                for k in result.params_read if k in params
            }
            ti.meta["cacheable"] = node.spec.cache is not False
        if ti.cache_key is None:  # cache=False: kept so --only/--from can reuse the output
            ti.cache_key, ti.meta = f"run:{self.run_id}:{ti.index}", {"cacheable": False}
        self._cache_entry(ti)

    def _cache_entry(self, ti: Instance) -> None:
        assert ti.cache_key is not None and ti.meta is not None
        entry = CacheEntry(
            self.pipe.name, ti.task, ti.cache_key, ti.output, ti.files, self.run_id,
            time.time(), ti.meta,
        )
        self.cache.add(entry)
        self.journal.batch.cache.append(entry)

    def _parents(self, node: Node) -> tuple[str, ...]:
        found: list[str] = []
        for up in node.inputs:
            ti = self.tis[(up, -1)]
            if ti.output is not None:
                found.append(ti.output)
            if ti.files:
                found.extend(ti.files.values())
        return tuple(dict.fromkeys(found))

    def _store_value(self, task: str, value: Any, parents: tuple[str, ...]) -> str:
        """Store a value the loop itself makes for ``task`` (a gate's verdict, a provided
        input, a mapped task's list) as its output; return its hash."""
        stored = store_bytes(self.ws.artifacts, *serialize(value, task))
        self.values.stored((task, -1), value, stored)
        self._artifact(task, "return", stored, parents)
        return stored.hash

    def _artifact(
        self, task: str, name: str, stored: StoredValue, parents: tuple[str, ...]
    ) -> None:
        if stored.hash in self._recorded:
            return
        self._recorded.add(stored.hash)
        self.journal.batch.artifacts.append(ArtifactRecord(
            stored.hash, stored.serializer, stored.size, self.pipe.name, task,
            self.run_id, time.time(), name, stored.uri, stored.data, parents,
        ))

