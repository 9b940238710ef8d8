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

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from cadenza.engine.states import TaskState
from cadenza.engine.trigger import decide
from cadenza.exceptions import CadenzaError, TaskError
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


class Guess(Protocol):
    output: str | None
    assumes: frozenset[str]


class PlannedSkips:
    """For ``cadenza plan``: the tasks the run will skip, decided as the run decides them.

    A branch's choice is read from the output the plan expects it to have (its cached one, or
    the one it made last time if it runs again); tasks not skipped are assumed to succeed, as
    the plan assumes of every task that runs. A verdict that rests on a task running again
    names it in ``assumes``."""

    def __init__(self, graph: Graph, load: Callable[[str], Any]) -> None:
        self.graph, self.load = graph, load
        self.skipped: dict[str, frozenset[str]] = {}
        """Tasks planned as skipped, with what that assumes."""
        self._skips: dict[str, frozenset[str]] = {}

    def skip(self, task: str, assumes: frozenset[str] = frozenset()) -> None:
        self.skipped[task] = assumes

    def verdict(
        self, node: Node, guesses: Mapping[str, Guess]
    ) -> tuple[str, frozenset[str]] | None:
        """Why ``node`` will be skipped, and what that assumes; None if it may run."""
        for up in node.upstream:
            guess = guesses.get(up)
            if up in self.skipped or guess is None or guess.output is None:
                continue
            if self.graph.nodes[up].spec.kind == "branch" and node.name in self._of(up, guess):
                return f"skipped: branch {up!r} does not choose it", guess.assumes
        if not any(up in self.skipped for up in node.upstream):
            return None
        states = [S.SKIPPED if up in self.skipped else S.SUCCESS for up in node.upstream]
        if decide(node.spec.trigger_rule, states) is not S.SKIPPED:
            return None
        first = next(up for up in node.upstream if up in self.skipped)
        assumes = frozenset().union(*(self.skipped[up] for up in node.upstream
                                      if up in self.skipped))
        return (f"skipped: upstream {first!r} is skipped "
                f"(trigger rule {node.spec.trigger_rule})", assumes)

    def _of(self, branch: str, guess: Guess) -> frozenset[str]:
        found = self._skips.get(branch)
        if found is None:
            assert guess.output is not None
            try:
                found = skipped_by(self.graph, branch, self.load(guess.output))
            except CadenzaError:  # unreadable, or a choice it may no longer make: it runs
                found = frozenset()
            self._skips[branch] = found
        return found
