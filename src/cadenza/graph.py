"""The checked DAG of a pipeline: who feeds whom, in a stable topological order."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cadenza.exceptions import CycleError, InvalidOptionError, UnknownInputError
from cadenza.pipeline import CONTEXT_ARG, TaskSpec

if TYPE_CHECKING:
    from cadenza.pipeline import Pipeline


@dataclass(frozen=True)
class Node:
    """A task with its parameters resolved against the rest of the pipeline."""

    spec: TaskSpec
    inputs: tuple[str, ...]
    """Upstream tasks whose outputs this task receives, in parameter order."""
    params: tuple[str, ...]
    """Pipeline params this task receives as arguments."""
    wants_ctx: bool
    upstream: tuple[str, ...]
    """Every task that must finish first: inputs, then ``after=`` names."""
    downstream: tuple[str, ...]
    input_files: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.spec.name


def _suggest(name: str, candidates: Iterable[str]) -> str | None:
    import difflib  # only for a mistake's message

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown(pipe: Pipeline, task: str, name: str, what: str) -> UnknownInputError:
    suggestion = _suggest(name, [*pipe.tasks, *pipe.params])
    hint = f" Did you mean {suggestion!r}?" if suggestion else (
        f" Define a task named {name!r}, add it to the pipeline's params, or give the "
        "parameter a default."
    )
    return UnknownInputError(
        f"Task {task!r} {what} {name!r}, but no task or param is named that.{hint}",
        pipeline=pipe.name, task=task, name=name, suggestion=suggestion,
    )


def _resolve(pipe: Pipeline, spec: TaskSpec) -> tuple[tuple[str, ...], ...]:
    inputs: list[str] = []
    params: list[str] = []
    wants_ctx = False
    files = list(spec.input_files)
    for arg in spec.args:
        if arg in pipe.tasks:
            inputs.append(arg)
        elif arg in pipe.params:
            params.append(arg)
        elif arg == CONTEXT_ARG:
            wants_ctx = True
        elif arg not in spec.optional_args:
            raise _unknown(pipe, spec.name, arg, "asks for input")
    for entry in spec.shell_inputs:
        (inputs if entry in pipe.tasks else files).append(entry)
    for name in spec.after:
        if name not in pipe.tasks:
            raise _unknown(pipe, spec.name, name, "runs after")
    if spec.pool is not None and spec.pool not in pipe.pools:
        raise InvalidOptionError(
            f"Task {spec.name!r} uses pool {spec.pool!r}, which pipeline {pipe.name!r} does not "
            f"define. Add it: Pipeline(..., pools={{{spec.pool!r}: 2}}).",
            option="pool", value=spec.pool, pipeline=pipe.name, task=spec.name,
        )
    if spec.map_over is not None and spec.map_over not in inputs:
        raise InvalidOptionError(
            f"Task {spec.name!r} maps over {spec.map_over!r}, which is not an upstream task. "
            "map_over must name the upstream task whose returned list fans out.",
            option="map_over", value=spec.map_over, pipeline=pipe.name, task=spec.name,
        )
    upstream = tuple(dict.fromkeys([*inputs, *spec.after]))
    for name in upstream:
        if name == spec.name:
            raise CycleError(
                f"Task {name!r} in pipeline {pipe.name!r} depends on itself. Remove it from "
                "its own parameters or after=.",
                pipeline=pipe.name, cycle=[name, name],
            )
    return tuple(inputs), tuple(params), (CONTEXT_ARG,) if wants_ctx else (), upstream, tuple(files)


class Graph:
    """The nodes of a pipeline and their order; built once per pipeline definition."""

    def __init__(self, pipeline: str, nodes: dict[str, Node], order: tuple[str, ...]):
        self.pipeline = pipeline
        self.nodes = nodes
        self.order = order

    @classmethod
    def build(cls, pipe: Pipeline) -> Graph:
        resolved = {name: _resolve(pipe, spec) for name, spec in pipe.tasks.items()}
        downstream: dict[str, list[str]] = {name: [] for name in pipe.tasks}
        for name, (_, _, _, upstream, _) in resolved.items():
            for up in upstream:
                downstream[up].append(name)
        nodes = {
            name: Node(
                spec=pipe.tasks[name], inputs=inputs, params=params, wants_ctx=bool(ctx),
                upstream=upstream, downstream=tuple(downstream[name]), input_files=files,
            )
            for name, (inputs, params, ctx, upstream, files) in resolved.items()
        }
        for task in pipe.checks:
            if task not in pipe.tasks:
                suggestion = _suggest(task, pipe.tasks)
                hint = f" Did you mean {suggestion!r}?" if suggestion else ""
                raise UnknownInputError(
                    f"A check is attached to task {task!r}, but pipeline {pipe.name!r} has no "
                    f"task of that name.{hint}",
                    pipeline=pipe.name, task=task, name=task, suggestion=suggestion,
                )
        return cls(pipe.name, nodes, _toposort(pipe.name, nodes))

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        """The nodes in topological order."""
        return (self.nodes[name] for name in self.order)

    def descendants(self, names: Iterable[str]) -> set[str]:
        """The given tasks and everything downstream of them."""
        return self._walk(names, lambda n: n.downstream)

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """The given tasks and everything upstream of them."""
        return self._walk(names, lambda n: n.upstream)

    def needed_outputs(self, selected: set[str] | None) -> set[str]:
        """Tasks outside ``selected`` whose stored outputs the selected tasks read."""
        if selected is None:
            return set()
        return {up for name in selected for up in self.nodes[name].upstream} - selected

    def _walk(self, names: Iterable[str], step: Callable[[Node], Iterable[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(step(self.nodes[name]))
        return seen


def _toposort(pipeline: str, nodes: dict[str, Node]) -> tuple[str, ...]:
    """Kahn's algorithm, ties broken by definition order so the result never depends on hashing."""
    rank = {name: i for i, name in enumerate(nodes)}
    waiting = {name: len(node.upstream) for name, node in nodes.items()}
    heap = [rank[name] for name, count in waiting.items() if count == 0]
    heapq.heapify(heap)
    names = list(nodes)
    order: list[str] = []
    while heap:
        name = names[heapq.heappop(heap)]
        order.append(name)
        for down in nodes[name].downstream:
            waiting[down] -= 1
            if waiting[down] == 0:
                heapq.heappush(heap, rank[down])
    if len(order) < len(nodes):
        cycle = _find_cycle({n for n, c in waiting.items() if c > 0}, nodes)
        raise CycleError(
            f"Pipeline {pipeline!r} has a cycle: {' -> '.join(cycle)}. A task cannot depend, "
            "even indirectly, on itself: remove one of these dependencies.",
            pipeline=pipeline, cycle=cycle,
        )
    return tuple(order)


def _find_cycle(stuck: set[str], nodes: dict[str, Node]) -> list[str]:
    """Walk upstream from a stuck node until a node repeats; return that loop in run order."""
    start = min(stuck, key=list(nodes).index)
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(up for up in nodes[node].upstream if up in stuck)
    loop = path[seen[node]:]
    loop.reverse()
    first = min(range(len(loop)), key=lambda i: list(nodes).index(loop[i]))
    loop = loop[first:] + loop[:first]  # start at the task defined first
    return [*loop, loop[0]]
