"""Deciding what runs: when a task's last upstream task is done, its trigger rule, a branch's
choice and the run's selection (``--only``/``--from``) decide whether it runs, is skipped, is
upstream_failed, or reuses a stored output. Mixed into the Runner (engine/run.py), whose loop
thread alone calls these."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cadenza.engine import branching
from cadenza.engine.journal import Instance, Key
from cadenza.engine.states import SUCCEEDED, TaskState
from cadenza.engine.trigger import decide
from cadenza.exceptions import CadenzaError, TaskError
from cadenza.graph import Graph, Node

if TYPE_CHECKING:
    from cadenza.engine.attempt import AttemptResult
    from cadenza.engine.values import Values
    from cadenza.store.base import CacheEntry

S = TaskState
PENDING, FAILED = S.PENDING, S.FAILED


class TriggerRules:
    """``waiting`` counts each task's upstream tasks not done; at zero, ``_evaluate`` decides
    the task. ``unchosen`` keeps what each succeeded branch skips (engine/branching.py)."""

    # what the rules use of the Runner
    graph: Graph
    tis: dict[Key, Instance]
    done: dict[str, TaskState]
    waiting: dict[str, int]
    branches: frozenset[str]
    unchosen: dict[str, frozenset[str]]
    selected: set[str] | None
    needed: set[str]
    latest: dict[str, CacheEntry]
    provided: dict[str, Any]
    values: Values

    if TYPE_CHECKING:
        def _end(self, ti: Instance, state: TaskState) -> None: ...
        def _gate(self, ti: Instance, node: Node) -> None: ...
        def _expand(self, node: Node) -> None: ...
        def _prepare(self, ti: Instance, node: Node) -> None: ...
        def _store_value(self, task: str, value: object, parents: tuple[str, ...]) -> str: ...

    def _evaluate(self, node: Node) -> None:
        spec = node.spec
        name = spec.name
        if self.selected is not None and name not in self.selected:
            if name in self.needed:
                self._reuse_latest(node)
            else:
                self._end(self.tis[(name, -1)], S.SKIPPED)
            return
        done = self.done
        verdict = decide(spec.trigger_rule, [done[up] for up in node.upstream])
        if self.branches:  # a branch's skip comes before any trigger rule, as in Airflow
            for up in node.upstream:
                if up in self.branches and done[up] in SUCCEEDED and name in self._skips(up):
                    verdict = S.SKIPPED
        if verdict is not None:
            self._end(self.tis[(name, -1)], verdict)
        elif spec.kind == "gate":
            self._gate(self.tis[(name, -1)], node)
        elif spec.map_over is not None:
            self._expand(node)
        else:
            self._prepare(self.tis[(name, -1)], node)

    def _skips(self, branch: str) -> frozenset[str]:
        """What a succeeded branch skips. One reused from the cache or a resumed run chooses
        from its stored output, exactly as it chose when it ran."""
        found = self.unchosen.get(branch)
        if found is None:
            value = self.values.of(self.tis[(branch, -1)])
            try:
                found = branching.skipped_by(self.graph, branch, value)
            except TaskError:  # resumed into a changed pipeline: what it chose is gone
                found = frozenset(self.graph.nodes[branch].downstream)
            self.unchosen[branch] = found
        return found

    def _choose(self, ti: Instance, result: AttemptResult) -> AttemptResult:
        """A branch's attempt returned: note what its choice skips, or fail it for a choice
        it may not make (not retried: the same inputs make the same choice)."""
        assert result.follow is not None
        try:
            picked = branching.chosen(ti.task, result.follow, self.graph.nodes[ti.task].downstream)
        except TaskError as error:
            return replace(result, state=FAILED, kind="failed", error=str(error), stored=None,
                           files={}, follow=None)
        self.unchosen[ti.task] = branching.unchosen(self.graph, ti.task, picked)
        return result

    def _can_choose(self, branch: str, output: str) -> bool:
        """Whether a branch's stored choice names only tasks still after it."""
        try:
            branching.skipped_by(self.graph, branch, self.values.load(output))
        except CadenzaError:  # a bad choice, or a damaged value: run it again
            return False
        return True

    def _reuse_latest(self, node: Node) -> None:
        ti = self.tis[(node.name, -1)]
        if node.name in self.provided:  # given by the caller (`cadenza task --input`)
            ti.output = self._store_value(node.name, self.provided[node.name], ())
            self._end(ti, S.CACHED)
            return
        entry = self.latest[node.name]
        ti.output, ti.files, ti.cache_key = entry.output, entry.files, entry.key
        self._end(ti, S.CACHED)

    def _task_done(self, task: str, state: TaskState) -> None:
        self.done[task] = state
        for down in self.graph.nodes[task].downstream:
            self.waiting[down] -= 1
            if self.waiting[down] == 0 and self.tis[(down, -1)].state is PENDING:
                self._evaluate(self.graph.nodes[down])

