"""Gates: tasks that wait for a person's decision before their downstream may run. Mixed into
the Runner (engine/run.py), whose loop thread alone calls these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cadenza.engine.journal import Instance, Journal, Key
from cadenza.engine.reuse import gate_key
from cadenza.engine.states import TaskState
from cadenza.graph import Node
from cadenza.store.base import Approval, RunRecord, TaskInstanceRecord

if TYPE_CHECKING:
    from cadenza.engine.cache import CacheIndex
    from cadenza.pipeline import TaskSpec
    from cadenza.store.base import CacheEntry
    from cadenza.workspace import Workspace

S = TaskState


class Gates:
    """A gate approved before for the same upstream outputs is cached; any other waits in
    ``awaiting`` until a decision is in the store (or the caller approved it up front)."""

    # what the gates use of the Runner
    ws: Workspace
    run: RunRecord
    tis: dict[Key, Instance]
    journal: Journal
    cache: CacheIndex
    awaiting: set[str]
    approve: set[str]
    prior: dict[Key, TaskInstanceRecord]

    if TYPE_CHECKING:
        def _reusable(self, entry: CacheEntry, spec: TaskSpec) -> bool: ...
        def _end(self, ti: Instance, state: TaskState) -> None: ...
        def _move(self, ti: Instance, new: TaskState) -> None: ...
        def _event(self, task: str | None, index: int, kind: str, **data: object) -> None: ...
        def _commit(self, force: bool = False, *, early: bool = False) -> None: ...
        def _store_value(self, task: str, value: object, parents: tuple[str, ...]) -> str: ...
        def _cache_entry(self, ti: Instance) -> None: ...
        def _uncached(self, task: str) -> bool: ...

    def _gate(self, ti: Instance, node: Node) -> None:
        """A gate approved before for these very upstream outputs stays approved (cached);
        anything new waits for a person."""
        ti.cache_key = gate_key({up: self.tis[(up, -1)].output for up in node.upstream})
        ti.meta = {"gate": True, "cacheable": True}
        decided_here = any(a.task == node.name for a in self.ws.store.approvals(self.run.run_id))
        fresh = self._uncached(node.name) or decided_here
        entry = None if fresh else self.cache.get(node.name, ti.cache_key)
        if entry is not None and self._reusable(entry, node.spec):
            ti.output = entry.output
            self._end(ti, S.CACHED)
            return
        self._open_gate(ti, node)  # a decision made in this run wins over earlier ones

    def _open_gate(self, ti: Instance, node: Node) -> None:
        self._move(ti, S.AWAITING_APPROVAL)
        # When the gate asked, on the store's clock, as decisions are stamped (actions.decide):
        # only a decision made since counts. A gate still waiting from before keeps its time,
        # so a decision made while its run was stopped counts; one that was rejected (then
        # retried) or cleared asks again, and its old decision no longer counts.
        prior = self.prior.get((ti.task, -1))
        waited = prior is not None and prior.state == S.AWAITING_APPROVAL
        ti.started = prior.started_at if waited and prior and prior.started_at else (
            self.ws.store.clock())
        self.journal.instance(ti)
        self._event(ti.task, -1, "gate_opened", message=node.spec.message)
        self.awaiting.add(ti.task)
        self._check_gates()

    def _check_gates(self) -> None:
        """Settle every waiting gate a person (or the caller) has decided on."""
        decisions = {a.task: a for a in self.ws.store.approvals(self.run.run_id)}
        for name in sorted(self.awaiting):
            decision = decisions.get(name)
            if decision is not None and not counts(decision, self.tis[(name, -1)].started):
                decision = None  # made on an earlier opening of this gate
            if decision is None and name in self.approve:
                decision = Approval(self.run.run_id, name, True, "caller",
                                    self.ws.store.clock(), "approved when the run was started")
                self._commit(early=True)  # the run's own record first: a decision needs it
                self.ws.store.decide(decision)
            if decision is None:
                continue
            self.awaiting.discard(name)
            ti = self.tis[(name, -1)]
            verdict = {"approved": decision.approved, "by": decision.by, "at": decision.at,
                       "reason": decision.reason}
            self._event(name, -1, "gate_decided", **verdict)
            if decision.approved:
                ti.output = self._store_value(name, verdict, ())
                if ti.cache_key is not None:  # the next run with these inputs needs no person
                    self._cache_entry(ti)
                self._end(ti, S.SUCCESS)
            else:
                ti.error = f"rejected by {decision.by}: {decision.reason or 'no reason given'}"
                self._end(ti, S.FAILED)


def counts(decision: Approval, opened: float | None) -> bool:
    """Whether ``decision`` answers the gate's opening at ``opened`` (both on the store's
    clock): a decision from before it answered an earlier opening, which a retry or clear has
    set aside."""
    return opened is None or decision.at >= opened
