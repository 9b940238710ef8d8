"""Mapped tasks: one instance per item of an upstream list, and the parent that gathers their
results. Mixed into the Runner (engine/run.py), whose loop thread alone calls these."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadenza.artifacts.serializers import serialize
from cadenza.engine.cache import sha256
from cadenza.engine.journal import Instance, Journal, Key
from cadenza.engine.reuse import cache_key
from cadenza.engine.states import SUCCEEDED, TaskState
from cadenza.graph import Node
from cadenza.store.base import TaskInstanceRecord

if TYPE_CHECKING:
    from cadenza.engine.cache import CacheIndex
    from cadenza.engine.values import Values
    from cadenza.workspace import Workspace

S = TaskState


class MappedTasks:
    """``_expand`` makes a mapped task's items once its list is known (an item that succeeded
    in the run before a resume stays done); ``_aggregate`` ends the parent once every item
    has ended."""

    # what mapping uses of the Runner
    ws: Workspace
    tis: dict[Key, Instance]
    prior: dict[Key, TaskInstanceRecord]
    journal: Journal
    cache: CacheIndex
    values: Values
    remaining: dict[str, int]
    params: Any
    secret: frozenset[str]
    interval: tuple[str | None, str | None, str | None]
    _root: Path
    _intact_memo: dict[str, bool]

    if TYPE_CHECKING:
        def _end(self, ti: Instance, state: TaskState) -> None: ...
        def _move(self, ti: Instance, new: TaskState) -> None: ...
        def _prepare(self, ti: Instance, node: Node) -> None: ...
        def _store_value(self, task: str, value: object, parents: tuple[str, ...]) -> str: ...
        def _cache_entry(self, ti: Instance) -> None: ...
        def _uncached(self, task: str) -> bool: ...

    def _expand(self, node: Node) -> None:
        assert node.spec.map_over is not None
        items = self.values.of(self.tis[(node.spec.map_over, -1)])
        parent = self.tis[(node.name, -1)]
        parent.started = time.time()
        self._move(parent, S.QUEUED)
        self._move(parent, S.RUNNING)
        if not isinstance(items, list | tuple):
            ti = parent
            ti.error = (
                f"Task {node.name!r} maps over {node.spec.map_over!r}, which returned "
                f"{type(items).__name__}, not a list. Return a list from "
                f"{node.spec.map_over!r}."
            )
            self._end(ti, S.FAILED)
            return
        self.remaining[node.name] = len(items)
        if not items:
            self._aggregate(node.name)
        fresh: list[Instance] = []
        for index, item in enumerate(items):
            ti = self.tis[(node.name, index)] = Instance(node.name, index, item=item)
            prior = self.prior.get((node.name, index))
            if prior is not None and S(prior.state) in SUCCEEDED:
                ti.output, ti.files, ti.attempt = prior.output, prior.files, prior.attempt
                self._end(ti, S.CACHED)
            else:
                if prior is not None:  # numbered on from its earlier attempts, never reused
                    ti.attempt = prior.attempt
                self.journal.instance(ti)
                fresh.append(ti)
        if node.spec.cache is not False:
            self._keys(fresh, node)
        for ti in fresh:
            self._prepare(ti, node)

    def _keys(self, items: list[Instance], node: Node) -> None:
        """Every item's cache key, then one read of the store for the entries under them and
        one for the outputs those name: not a query or two per item."""
        tis = self.tis
        outputs = {up: (tis[(up, -1)].output, tis[(up, -1)].files) for up in node.inputs}
        for ti in items:
            ti.meta, ti.cache_key = cache_key(
                node, outputs, self.params, self._root, self.interval[1:], self.secret,
                sha256(serialize(ti.item, ti.task)[1]),
            )
        if self._uncached(node.name) or len(items) < 2:
            return
        self.cache.prefetch(node.name, [ti.cache_key for ti in items if ti.cache_key])
        memo = self._intact_memo
        named = {entry.output for ti in items if ti.cache_key
                 if (entry := self.cache.get(node.name, ti.cache_key)) is not None
                 and entry.output is not None and entry.output not in memo}
        memo.update(self.ws.holds_all(named))

    def _aggregate(self, task: str) -> None:
        """All items of a mapped task are done: its parent ends, with the list of results."""
        parent = self.tis[(task, -1)]
        items = sorted(
            (ti for (name, index), ti in self.tis.items() if name == task and index >= 0),
            key=lambda ti: ti.index,
        )
        states = {ti.state for ti in items}
        if states - SUCCEEDED - {S.SKIPPED}:
            failed = [ti.index for ti in items if ti.state not in SUCCEEDED | {S.SKIPPED}]
            parent.error = f"{len(failed)} of {len(items)} mapped items failed: {failed[:10]}"
            self._end(parent, S.CANCELLED if states == {S.CANCELLED} else S.FAILED)
            return
        self.values.preload([ti for ti in items if ti.state in SUCCEEDED])
        values = [
            self.values.take(ti) if ti.state in SUCCEEDED else None for ti in items
        ]
        parent.output = self._store_value(
            task, values, tuple(ti.output for ti in items if ti.output)
        )
        parent.cache_key = sha256("".join(ti.cache_key or "-" for ti in items).encode())
        parent.meta = {"items": len(items)}
        self._cache_entry(parent)
        self._end(parent, S.CACHED if states == {S.CACHED} else S.SUCCESS)
