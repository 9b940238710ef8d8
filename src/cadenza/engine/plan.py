"""What a run would do now, and why: never ran, code changed, input changed, cached..."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cadenza.engine.cache import (
    CacheIndex,
    Outputs,
    canonical,
    code_hash,
    fits,
    key_meta,
    key_of,
)
from cadenza.engine.outputs import check as check_files
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


def plan_pipeline(
    pipe: Pipeline, workspace: Workspace, params: Mapping[str, Any], *,
    force: bool = False, selected: set[str] | None = None,
) -> list[PlanStep]:
    """One step per task, in run order. A task downstream of one that runs is marked to run:
    whether its input really changes is known only once the upstream task has run."""
    graph = pipe.graph()
    # as a run finds its cache entries, but asking only for what it needs: a few per task
    cache = CacheIndex(workspace.store, pipe.name, preload=0)
    needed = graph.needed_outputs(selected)
    outputs: dict[str, tuple[str | None, Mapping[str, str]]] = {}
    steps: list[PlanStep] = []
    for node in graph:
        name = node.name
        last = next(cache.newest(name), None)
        runs, reason, found = _decide(node, last, outputs, needed, selected, force,
                                      workspace, params, cache, pipe.secret_params)
        steps.append(PlanStep(name, runs, reason, found.key if found else None))
        if not runs and found is not None:
            outputs[name] = (found.output, found.files)
        elif not runs and last is not None and reason != "not selected: skipped":
            outputs[name] = (last.output, last.files)
    return steps


def _decide(
    node: Node, last: CacheEntry | None, outputs: Outputs, needed: set[str],
    selected: set[str] | None, force: bool, workspace: Workspace, params: Mapping[str, Any],
    cache: CacheIndex, secret: frozenset[str],
) -> tuple[bool, str, CacheEntry | None]:
    if selected is not None and node.name not in selected:
        if node.name not in needed:
            return False, "not selected: skipped", None
        if last is None:
            return False, "not selected, and has no stored output: the run will stop", None
        return False, "not selected: uses its latest stored output", None
    if force:
        return True, "forced", None
    if node.spec.kind == "gate":
        return True, "a gate: waits for a person, unless these inputs were approved before", None
    if node.spec.cache is False:
        return True, "cache=False: always runs", None
    if last is None:
        return True, "never ran", None
    if last.meta.get("cacheable", True) and last.meta.get("code") != code_hash(node.spec):
        return True, "code changed", None
    moving = [up for up in node.inputs if up not in outputs]
    if moving:
        return True, f"upstream {moving[0]!r} runs first; its output may change", None
    if node.spec.map_over is not None:
        return True, "mapped: each item is checked against the cache when it runs", None
    meta = key_meta(node, outputs, params, workspace.root, secret=secret)
    found = cache.get(node.name, key_of(meta, None))
    if found is not None and fits(found, params, secret):
        if found.output is None or not workspace.holds(found.output):
            return True, "output missing", None
        files = check_files(workspace.root, node.spec.outputs, found.files,
                              workspace.artifacts)
        if not files.usable:
            return True, "output missing: " + "; ".join(files.reasons), None
        return False, "; ".join(("cached", *files.reasons)), found
    return True, _why(meta, last, params), None


def _why(meta: Mapping[str, Any], last: CacheEntry, params: Mapping[str, Any]) -> str:
    before = last.meta
    if before.get("code") != meta["code"]:
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
