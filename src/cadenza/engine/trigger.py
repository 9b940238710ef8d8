"""Trigger rules: given the end states of a task's upstream tasks, may it run?

The rules and their skip / upstream_failed propagation follow Airflow's documentation. One
difference: ``one_success`` and ``one_failed`` decide once every upstream task is done (Airflow
fires them at the first success or failure); the states that result are the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from cadenza.engine.states import TaskState

S = TaskState
_OK = frozenset({S.SUCCESS, S.CACHED})
_BAD = frozenset({S.FAILED, S.UPSTREAM_FAILED, S.CANCELLED})


def decide(rule: str, upstream: Sequence[TaskState]) -> TaskState | None:
    """None: the task runs. Otherwise the state it ends in without running."""
    if not upstream:
        return None
    ok = bad = 0
    for state in upstream:
        if state in _OK:
            ok += 1
        elif state in _BAD:
            bad += 1
    skipped = len(upstream) - ok - bad
    if rule == "all_success":
        return S.UPSTREAM_FAILED if bad else S.SKIPPED if skipped else None
    if rule == "all_done":
        return None
    if rule == "all_failed":
        return None if bad == len(upstream) else S.SKIPPED
    if rule == "one_success":
        return None if ok else S.UPSTREAM_FAILED if bad else S.SKIPPED
    if rule == "one_failed":
        return None if bad else S.SKIPPED
    if rule == "none_failed":
        return S.UPSTREAM_FAILED if bad else None
    raise ValueError(f"unknown trigger rule {rule!r}")
