"""What a run would do now, and why: the run's own decision (engine/reuse.py), made early.

Tasks are visited in run order. A task that will be reused passes on its stored output. A task
that will run cannot say what it will return; the plan assumes it returns what it returned
last time, and every verdict downstream that rests on that says so in ``assumes``: "cached if
'ingest' returns what it returned last time, else runs". A verdict with nothing assumed, and
one whose assumptions hold, is what the run will do: tests/engine/test_plan_property.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cadenza.artifacts.serializers import serialize
from cadenza.engine.branching import PlannedSkips
from cadenza.engine.cache import CacheIndex, canonical, sha256
from cadenza.engine.outputs import fields, resolve
from cadenza.engine.result import load_value
from cadenza.engine.reuse import Interval, files, find, gate_key
from cadenza.exceptions import CadenzaError
from cadenza.graph import Node
from cadenza.pipeline import Pipeline
from cadenza.store.base import CacheEntry
from cadenza.workspace import Workspace


@dataclass(frozen=True)
class PlanStep:
    task: str
    runs: bool
    reason: str
    key: str | None = None
    assumes: tuple[str, ...] = ()
    """Tasks that run first, whose outputs are assumed to be what they were last time."""


@dataclass
class _Guess:
    """What the plan knows of a task's output when the tasks after it are decided."""

    output: str | None
    files: Mapping[str, str]
    assumes: frozenset[str]  # empty: known for sure


_NOTHING = _Guess(None, {}, frozenset())


class _Planner:
    def __init__(self, pipe: Pipeline, ws: Workspace, params: Mapping[str, Any], force: bool,
                 selected: set[str] | None, interval: Interval) -> None:
        self.pipe, self.ws, self.params, self.force = pipe, ws, params, force
        self.selected, self.interval = selected, interval
        self.graph = pipe.graph()
        # as a run finds its cache entries, asking only for what it needs: a few per task
        self.cache = CacheIndex(ws.store, pipe.name, preload=0)
        newest = self.cache.prefetch_newest([node.name for node in self.graph])
        self.held = ws.holds_all(e.output for e in newest.values() if e.output is not None)
        """Whether the newest entries' outputs are still there, read together."""
        self.needed = self.graph.needed_outputs(selected)
        self.guesses: dict[str, _Guess] = {}
        self.skips = PlannedSkips(self.graph, lambda digest: load_value(ws, digest))
        # the run does not exist yet: a path naming {run_id} is one no file is at
        self.fields = fields("(the next run)", (None, *interval), params)

    def step(self, node: Node) -> PlanStep:
        name, spec = node.name, node.spec
        # the task's own newest result (a mapped task's items have entries under its name)
        last = next((e for e in self.cache.newest(name)
                     if spec.map_over is None or "items" in e.meta), None)
        if self.selected is not None and name not in self.selected:
            if name not in self.needed:
                return self._skip(name, "not selected: skipped")
            if last is None:
                return self._skip(name, "not selected, and has no stored output: the run "
                                  "will stop")
            self.guesses[name] = _Guess(last.output, last.files, frozenset())
            return PlanStep(name, False, "not selected: uses its latest stored output")
        if (skip := self.skips.verdict(node, self.guesses)) is not None:
            return self._skip(name, *skip)  # a branch's choice, or a trigger rule
        ups = [self.guesses.get(up, _NOTHING) for up in node.inputs]
        assumed = frozenset().union(*(g.assumes for g in ups)) if ups else frozenset()
        unknown = [up for up in node.inputs if self.guesses.get(up, _NOTHING).output is None]
        if self.force:
            return self._run(name, last, "forced", assumed)
        if spec.kind == "gate":
            key = gate_key({up: self.guesses.get(up, _NOTHING).output for up in node.upstream})
            entry = self.cache.get(name, key)
            if entry is not None and self._holds(entry):
                return self._reuse(name, entry, "cached: approved before for these inputs",
                                   assumed)
            return self._run(name, last, "a gate: waits for a person", assumed)
        if spec.cache is False:
            return self._run(name, last, "cache=False: always runs", assumed)
        if unknown:
            why = "never ran" if last is None else f"upstream {unknown[0]!r} has no output yet"
            return self._run(name, last, why, assumed | set(unknown))
        outputs = {up: (g.output, g.files) for up, g in zip(node.inputs, ups, strict=True)}
        if spec.map_over is not None:
            return self._mapped(node, last, outputs, assumed)
        meta, key, entry = find(node, outputs, self.params, self.ws.root, self.interval,
                                self.cache, self.pipe.secret_params)
        if entry is None:
            return self._run(name, last, _why(meta, last, self.params), assumed, key)
        if not self._holds(entry):
            return self._run(name, last, "output missing", assumed, key)
        try:
            declared = resolve(spec.outputs, self.fields, self.ws.root)
        except CadenzaError as error:
            return self._run(name, last, str(error), assumed, key)
        checked = files(entry, declared, self.ws.root, self.ws.artifacts)
        if not checked.usable:
            return self._run(name, last, "output missing: " + "; ".join(checked.reasons),
                             assumed, key)
        return self._reuse(name, entry, "; ".join(("cached", *checked.reasons)), assumed)

    def _mapped(self, node: Node, last: CacheEntry | None, outputs: Any,
                assumed: frozenset[str]) -> PlanStep:
        """Each item is decided as the run decides it: the list is read from the store."""
        spec = node.spec
        assert spec.map_over is not None
        source = self.guesses[spec.map_over].output
        try:
            items = load_value(self.ws, source) if source is not None else None
        except CadenzaError:
            items = None
        if not isinstance(items, list | tuple):
            return self._run(node.name, last, "mapped over a list the plan cannot read",
                             assumed)
        runs = 0
        for item in items:
            digest = sha256(serialize(item, node.name)[1])
            _, _, entry = find(node, outputs, self.params, self.ws.root, self.interval,
                               self.cache, self.pipe.secret_params, digest)
            if entry is None or not self._holds(entry) or not files(
                    entry, resolve(spec.outputs, self.fields, self.ws.root), self.ws.root,
                    self.ws.artifacts).usable:
                runs += 1
        if runs:
            return self._run(node.name, last, f"mapped: {runs} of {len(items)} items run",
                             assumed)
        # every item reused: the run stores the list again, so its hash is the last one's
        self.guesses[node.name] = _Guess(last.output if last else None,
                                         last.files if last else {}, assumed)
        return PlanStep(node.name, False, _cached(f"cached: all {len(items)} items", assumed),
                        None, tuple(sorted(assumed)))

    def _holds(self, entry: CacheEntry) -> bool:
        if entry.output is None:
            return False
        held = self.held.get(entry.output)
        return self.ws.holds(entry.output) if held is None else held

    def _reuse(self, name: str, entry: CacheEntry, reason: str, assumed: frozenset[str]
               ) -> PlanStep:
        self.guesses[name] = _Guess(entry.output, entry.files, assumed)
        return PlanStep(name, False, _cached(reason, assumed), entry.key,
                        tuple(sorted(assumed)))

    def _run(self, name: str, last: CacheEntry | None, reason: str, assumed: frozenset[str],
             key: str | None = None) -> PlanStep:
        # what it returns is known only once it ran: assume what it returned last time
        self.guesses[name] = _Guess(last.output if last else None,
                                    last.files if last else {}, assumed | {name})
        return PlanStep(name, True, reason, key, tuple(sorted(assumed)))

    def _skip(self, name: str, reason: str, assumes: frozenset[str] = frozenset()) -> PlanStep:
        self.guesses[name] = _NOTHING
        self.skips.skip(name, assumes)
        return PlanStep(name, False, reason, None, tuple(sorted(assumes)))


def _cached(reason: str, assumed: frozenset[str]) -> str:
    if not assumed:
        return reason
    names = ", ".join(repr(n) for n in sorted(assumed))
    if len(assumed) == 1:
        return f"{reason} if {names} returns what it returned last time, else runs"
    return f"{reason} if {names} return what they returned last time, else runs"


def plan_pipeline(
    pipe: Pipeline, workspace: Workspace, params: Mapping[str, Any], *,
    force: bool = False, selected: set[str] | None = None,
    interval: Interval = (None, None),
) -> list[PlanStep]:
    """One step per task, in run order. ``interval``: the data interval of the run to plan (a
    manual run has none)."""
    planner = _Planner(pipe, workspace, params, force, selected, interval)
    return [planner.step(node) for node in planner.graph]


def _why(meta: Mapping[str, Any], last: CacheEntry | None, params: Mapping[str, Any]) -> str:
    if last is None:
        return "never ran"
    before = last.meta
    if "code" in before and before["code"] != meta["code"]:
        return "code changed"
    reasons: list[str] = []
    for kind, label in (("params", "param"), ("inputs", "input"), ("files", "input file")):
        old, new = before.get(kind, {}), meta[kind]
        reasons += [
            f"{label} {k!r} changed" for k in sorted(set(old) | set(new))
            if canonical(old.get(k)) != canonical(new.get(k))
        ]
    for k, v in before.get("params_read", {}).items():
        if params.get(k) != v:
            reasons.append(f"param {k!r} changed")
    return ", ".join(reasons) if reasons else "no stored result for this key"

