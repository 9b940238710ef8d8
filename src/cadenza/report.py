"""What a finished run's records say beyond their rows: its critical path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cadenza.store.base import Event, TaskInstanceRecord


def dag_of(events: Iterable[Event]) -> dict[str, list[str]]:
    """Each task's upstream tasks, as the run recorded them when it started."""
    for event in events:
        if event.kind == "run_started" and "upstream" in event.data:
            return {task: list(ups) for task, ups in event.data["upstream"].items()}
    return {}


def critical_path(
    instances: Sequence[TaskInstanceRecord], upstream: Mapping[str, Sequence[str]]
) -> list[str]:
    """The chain of tasks that set the run's end: from the task that ended last, back through
    the upstream task that ended last, to a task that waited for nobody. Tasks that did not
    run (cached, skipped) have no times and are left out."""
    ended = {ti.task: ti.ended_at for ti in instances
             if ti.map_index < 0 and ti.ended_at is not None and ti.started_at is not None}
    if not ended:
        return []
    path = [max(ended, key=lambda t: ended[t] or 0.0)]
    while True:
        before = [u for u in upstream.get(path[-1], ()) if u in ended]
        if not before:
            return path[::-1]
        path.append(max(before, key=lambda t: ended[t] or 0.0))


def dag_order(upstream: Mapping[str, Sequence[str]]) -> list[str]:
    """The tasks of ``upstream`` layer by layer (a task one past its deepest upstream), each
    layer in the order the pipeline declares its tasks: how `status` and the run page list
    them. Upstream names that are not keys are ignored; a cycle is cut where it is met."""
    index = {task: i for i, task in enumerate(upstream)}
    depth: dict[str, int] = {}

    def depth_of(task: str) -> int:
        # Iterative, so a 10,000-task chain does not hit the recursion limit.
        stack, seen = [task], {task}
        while stack:
            top = stack[-1]
            waiting = [u for u in upstream.get(top, ()) if u in index and u not in depth
                       and u not in seen]
            if waiting:
                stack.extend(waiting)
                seen.update(waiting)
                continue
            stack.pop()
            depth[top] = 1 + max((depth.get(u, -1) for u in upstream.get(top, ())
                                  if u in index), default=-1)
        return depth[task]

    return sorted(upstream, key=lambda task: (depth_of(task), index[task]))
