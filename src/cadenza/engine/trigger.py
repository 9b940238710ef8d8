"""Trigger rules: given the end states of a task's upstream tasks, may it run?

Each rule ends the task where Airflow's ``TriggerRuleDep`` ends it, counting cadenza's states
in Airflow's terms: ``cached`` is a success and ``cancelled`` a failure. Airflow's ``removed``
and its setup/teardown rules have no counterpart here.

One difference, in timing only: a rule is decided once every upstream task is done, because
upstream tasks hand their outputs to the task. Airflow starts ``one_success``, ``one_failed``,
``one_done`` and ``always`` tasks early, and may settle ``all_success`` as ``skipped`` when a
skip is seen before a failure; cadenza waits, so a failure always wins over a skip.
"""

from __future__ import annotations

from collections.abc import Sequence

from cadenza.engine.states import TaskState

S = TaskState
_SUCCESS = frozenset({S.SUCCESS, S.CACHED})
_FAILED = frozenset({S.FAILED, S.CANCELLED})

RULES: dict[str, str] = {
    "all_success": "every upstream task succeeded (the default)",
    "all_failed": "every upstream task failed or is upstream_failed",
    "all_done": "every upstream task is done, whatever its state",
    "all_skipped": "every upstream task was skipped",
    "one_success": "at least one upstream task succeeded",
    "one_failed": "at least one upstream task failed or is upstream_failed",
    "one_done": "at least one upstream task succeeded or failed",
    "none_failed": "no upstream task failed or is upstream_failed (skips are fine)",
    "none_failed_min_one_success": "none failed, and not all were skipped (a join after a "
                                   "branch)",
    "none_skipped": "no upstream task was skipped",
    "always": "whatever happened upstream",
}
"""Every rule a task may name, with what it waits for."""


def decide(rule: str, upstream: Sequence[TaskState]) -> TaskState | None:
    """None: the task runs. Otherwise the state it ends in without running."""
    if not upstream:
        return None
    success = failed = upstream_failed = skipped = 0
    for state in upstream:
        if state in _SUCCESS:
            success += 1
        elif state in _FAILED:
            failed += 1
        elif state is S.UPSTREAM_FAILED:
            upstream_failed += 1
        else:
            skipped += 1
    bad = failed + upstream_failed
    every = len(upstream)
    if rule == "all_success":
        return S.UPSTREAM_FAILED if bad else S.SKIPPED if skipped else None
    if rule == "all_failed":
        return S.SKIPPED if success or skipped else None
    if rule == "all_done" or rule == "always":
        return None
    if rule == "all_skipped":
        return S.SKIPPED if success or bad else None
    if rule == "one_success":
        return S.SKIPPED if skipped == every else None if success else S.UPSTREAM_FAILED
    if rule == "one_failed":
        return None if bad else S.SKIPPED
    if rule == "one_done":  # Airflow counts failed here, not upstream_failed
        return None if success or failed else S.SKIPPED
    if rule == "none_failed":
        return S.UPSTREAM_FAILED if bad else None
    if rule == "none_failed_min_one_success":
        return S.UPSTREAM_FAILED if bad else S.SKIPPED if skipped == every else None
    if rule == "none_skipped":
        return S.SKIPPED if skipped else None
    raise ValueError(f"unknown trigger rule {rule!r}")
