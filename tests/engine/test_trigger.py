"""Trigger rules: every rule over every combination of upstream end states, against Airflow."""

from __future__ import annotations

import itertools

import pytest

from cadenza import TaskState
from cadenza.engine.states import TERMINAL
from cadenza.engine.trigger import decide
from cadenza.pipeline import TRIGGER_RULES

S = TaskState
RULES = sorted(TRIGGER_RULES)
ENDS = sorted(TERMINAL)  # what an upstream task can have ended in


def airflow(rule: str, upstream: tuple[TaskState, ...]) -> TaskState | None:
    """Airflow's TriggerRuleDep once every upstream task is done, in its own terms.

    success = success or cached; failed = failed or upstream_failed, and cadenza's cancelled
    counts as a failure too; skipped = skipped. None means the task runs.
    """
    success = sum(s in (S.SUCCESS, S.CACHED) for s in upstream)
    failed = sum(s in (S.FAILED, S.UPSTREAM_FAILED, S.CANCELLED) for s in upstream)
    skipped = sum(s is S.SKIPPED for s in upstream)
    done = len(upstream)
    if rule == "all_success":
        return S.UPSTREAM_FAILED if failed else S.SKIPPED if skipped else None
    if rule == "all_failed":
        return S.SKIPPED if success or skipped else None
    if rule == "all_done":
        return None
    if rule == "one_success":
        if done == skipped:
            return S.SKIPPED
        return S.UPSTREAM_FAILED if success <= 0 else None
    if rule == "one_failed":
        return S.SKIPPED if not failed else None
    if rule == "none_failed":
        return S.UPSTREAM_FAILED if failed else None
    raise AssertionError(rule)


COMBOS = [
    combo
    for size in (1, 2, 3)
    for combo in itertools.combinations_with_replacement(ENDS, size)
]


@pytest.mark.parametrize("rule", RULES)
def test_every_combination_matches_airflow(rule: str) -> None:
    for combo in COMBOS:
        for order in set(itertools.permutations(combo)):
            assert decide(rule, order) == airflow(rule, order), (rule, order)


@pytest.mark.parametrize("rule", RULES)
def test_no_upstream_always_runs(rule: str) -> None:
    assert decide(rule, []) is None


@pytest.mark.parametrize(
    ("rule", "upstream", "expected"),
    [
        ("all_success", [S.SUCCESS, S.CACHED], None),
        ("all_success", [S.SUCCESS, S.SKIPPED], S.SKIPPED),
        ("all_success", [S.SKIPPED, S.FAILED], S.UPSTREAM_FAILED),  # failure beats skip
        ("all_success", [S.SUCCESS, S.CANCELLED], S.UPSTREAM_FAILED),
        ("all_success", [S.UPSTREAM_FAILED], S.UPSTREAM_FAILED),
        ("all_done", [S.FAILED, S.SKIPPED, S.SUCCESS], None),
        ("all_failed", [S.FAILED, S.UPSTREAM_FAILED], None),
        ("all_failed", [S.FAILED, S.SUCCESS], S.SKIPPED),
        ("all_failed", [S.FAILED, S.SKIPPED], S.SKIPPED),
        ("one_success", [S.FAILED, S.CACHED], None),
        ("one_success", [S.FAILED, S.SKIPPED], S.UPSTREAM_FAILED),
        ("one_success", [S.SKIPPED, S.SKIPPED], S.SKIPPED),
        ("one_failed", [S.SUCCESS, S.UPSTREAM_FAILED], None),
        ("one_failed", [S.SUCCESS, S.SKIPPED], S.SKIPPED),
        ("none_failed", [S.SUCCESS, S.SKIPPED], None),
        ("none_failed", [S.SKIPPED, S.SKIPPED], None),
        ("none_failed", [S.SUCCESS, S.FAILED], S.UPSTREAM_FAILED),
    ],
)
def test_rule_examples(rule: str, upstream: list[TaskState], expected: TaskState | None) -> None:
    assert decide(rule, upstream) == expected


def test_unknown_rule() -> None:
    with pytest.raises(ValueError, match="unknown trigger rule 'sometimes'"):
        decide("sometimes", [S.SUCCESS])


def test_rules_match_the_pipeline_options() -> None:
    for rule in TRIGGER_RULES:
        decide(rule, [S.SUCCESS])  # none raises
