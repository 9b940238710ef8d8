"""Branches: what a branch task's return value chooses, and which tasks that skips.

A ``@pipe.branch`` task returns the name of a task directly downstream of it, a list of such
names, or None (or an empty list) to follow none. The choice is the branch's stored output, so
a branch reused from the cache, or from the run being resumed, chooses exactly as it chose when
it ran: ``skipped_by`` is worked out from that value either way.

What a choice skips is Airflow's ``SkipMixin.skip_all_except``: each task directly downstream
of the branch that was not chosen is skipped, whatever its trigger rule, unless it is also
downstream of a chosen task (``branch -> [optional, join]``, ``optional -> join``: choosing
``optional`` runs ``join``). The tasks after a skipped one decide by their own trigger rules
(engine/trigger.py): ``all_success`` skips, ``none_failed_min_one_success`` joins.

One difference: Airflow accepts any task id of the DAG, and fails the branch only for an id the
DAG lacks. cadenza accepts only the branch's direct downstream tasks; any other name fails the
branch, naming the value and the valid choices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cadenza.engine.states import TaskState
from cadenza.engine.trigger import decide
from cadenza.exceptions import TaskError
from cadenza.graph import Graph, Node

S = TaskState


def names(value: Any) -> tuple[Any, ...]:
    """What a branch returned, as a tuple of names: a str is one, None none, a list, tuple or
    set its items. Anything else is kept whole, for ``chosen`` to refuse by value."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(value)
    return (value,)


def chosen(branch: str, returned: Iterable[Any], downstream: Iterable[str]) -> frozenset[str]:
    """The tasks the branch chose; a TaskError for a value that names none of them."""
    valid = tuple(downstream)
    picked = tuple(returned)
    for name in picked:
        if not isinstance(name, str) or name not in valid:
            choices = ", ".join(map(repr, valid)) if valid else "nothing: no task comes after it"
            raise TaskError(
                f"Branch {branch!r} returned {name!r}, which is not a task directly after it. "
                f"Return one of {choices} (or a list of them), or None to skip them all.",
                task=branch,
            )
    return frozenset(picked)


def unchosen(graph: Graph, branch: str, picked: frozenset[str]) -> frozenset[str]:
    """The branch's direct downstream tasks it skips: not chosen, and not downstream of a
    chosen task either."""
    reached = set(picked)
    stack = list(picked)
    while stack:
        for down in graph.nodes[stack.pop()].downstream:
            if down not in reached:
                reached.add(down)
                stack.append(down)
    return frozenset(d for d in graph.nodes[branch].downstream if d not in reached)


def skipped_by(graph: Graph, branch: str, value: Any) -> frozenset[str]:
    """The tasks a branch that returned ``value`` skips (a TaskError if ``value`` is not a
    choice it may make)."""
    picked = chosen(branch, names(value), graph.nodes[branch].downstream)
    return unchosen(graph, branch, picked)


def planned(
    node: Node, skipped: Mapping[str, str], skips: Mapping[str, frozenset[str]]
) -> str | None:
    """For ``cadenza plan``: why ``node`` will be skipped, or None if it may run.

    ``skipped``: the tasks planned as skipped so far, with why; ``skips``: for each branch the
    plan expects to succeed, the tasks its choice skips. Upstream tasks not skipped are assumed
    to succeed, as the plan assumes of every task that runs."""
    for up in node.upstream:
        if node.name in skips.get(up, ()):
            return f"skipped: branch {up!r} did not choose it"
    if not any(up in skipped for up in node.upstream):
        return None
    states = [S.SKIPPED if up in skipped else S.SUCCESS for up in node.upstream]
    if decide(node.spec.trigger_rule, states) is not S.SKIPPED:
        return None
    first = next(up for up in node.upstream if up in skipped)
    return f"skipped: upstream {first!r} is skipped (trigger rule {node.spec.trigger_rule})"
