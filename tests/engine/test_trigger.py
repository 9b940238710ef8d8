"""Trigger rules: every rule over every combination of upstream end states, against a model of
Airflow's TriggerRuleDep, and the cases Airflow's own tests pin, row by row."""

from __future__ import annotations

import itertools

import pytest

from cadenza import TaskState
from cadenza.engine.states import TERMINAL
from cadenza.engine.trigger import RULES, decide
from cadenza.exceptions import InvalidOptionError
from cadenza.pipeline import TRIGGER_RULES, Pipeline

S = TaskState
ENDS = sorted(TERMINAL)  # what an upstream task can have ended in
OK, FAIL, UPF, SKIP = S.SUCCESS, S.FAILED, S.UPSTREAM_FAILED, S.SKIPPED


def airflow(rule: str, upstream: tuple[TaskState, ...]) -> TaskState | None:
    """What Airflow's TriggerRuleDep does once every upstream task is done, in its terms.

    First the state it sets (the scheduler's flag_upstream_failed pass); if it sets none, the
    dependency must pass, or Airflow would leave the task waiting for ever. cadenza's cached
    counts as success and cancelled as failed.
    """
    success = sum(s in (S.SUCCESS, S.CACHED) for s in upstream)
    failed = sum(s in (S.FAILED, S.CANCELLED) for s in upstream)
    upstream_failed = sum(s is S.UPSTREAM_FAILED for s in upstream)
    skipped = sum(s is S.SKIPPED for s in upstream)
    n = done = len(upstream)
    sets = {
        "all_success": UPF if upstream_failed or failed else SKIP if skipped else None,
        "all_failed": SKIP if success or skipped else None,
        "one_success": SKIP if done == skipped else UPF if success <= 0 else None,
        "one_failed": SKIP if not (failed or upstream_failed) else None,
        "one_done": SKIP if not (failed or success) else None,
        "none_failed": UPF if upstream_failed or failed else None,
        "none_failed_min_one_success": (
            UPF if upstream_failed or failed else SKIP if skipped == n else None
        ),
        "none_skipped": SKIP if skipped else None,
        "all_skipped": SKIP if success or failed or upstream_failed else None,
    }.get(rule)
    if sets is not None:
        return sets
    passes = {
        "all_success": n - success == 0,
        "all_failed": n - failed - upstream_failed == 0,
        "all_done": True,
        "always": True,
        "one_success": success > 0,
        "one_failed": bool(failed or upstream_failed),
        "one_done": success + failed > 0,
        "none_failed": n - success - skipped == 0,
        "none_failed_min_one_success": n - success - skipped == 0 and success > 0,
        "none_skipped": skipped == 0,
        "all_skipped": n - skipped == 0,
    }[rule]
    assert passes, f"Airflow would leave a {rule} task waiting on {upstream}"
    return None


COMBOS = [
    combo
    for size in (1, 2, 3)
    for combo in itertools.combinations_with_replacement(ENDS, size)
]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_combination_matches_airflow(rule: str) -> None:
    for combo in COMBOS:
        for order in set(itertools.permutations(combo)):
            assert decide(rule, order) == airflow(rule, order), (rule, order)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_no_upstream_always_runs(rule: str) -> None:
    assert decide(rule, []) is None


def ups(**counts: int) -> list[TaskState]:
    states = {"success": OK, "failed": FAIL, "upstream_failed": UPF, "skipped": SKIP,
              "cached": S.CACHED, "cancelled": S.CANCELLED}
    return [states[name] for name, count in counts.items() for _ in range(count)]


# The cases of Airflow's tests/ti_deps/deps/test_trigger_rule_dep.py, with every upstream done;
# None: the task runs.
@pytest.mark.parametrize(
    ("rule", "upstream", "expected"),
    [
        ("one_success", ups(success=1, skipped=2, failed=3, upstream_failed=2), None),
        ("one_success", ups(skipped=1, failed=1, upstream_failed=1), UPF),
        ("one_success", ups(skipped=2), SKIP),
        ("one_failed", ups(success=2), SKIP),
        ("one_failed", ups(skipped=2, failed=2), None),
        ("one_failed", ups(skipped=2, upstream_failed=2), None),
        ("one_done", ups(success=2), None),
        ("one_done", ups(failed=2), None),
        ("one_done", ups(skipped=2), SKIP),
        ("one_done", ups(upstream_failed=2), SKIP),  # upstream_failed is not "done" here
        ("all_success", ups(success=1), None),
        ("all_success", ups(success=1, failed=1), UPF),
        ("all_success", ups(success=1, skipped=1), SKIP),
        ("none_failed", ups(success=1, skipped=1), None),
        ("none_failed", ups(success=1, skipped=1, failed=1), UPF),
        ("none_failed", ups(success=1, skipped=1, upstream_failed=1), UPF),
        ("none_failed_min_one_success", ups(success=1, skipped=1), None),
        ("none_failed_min_one_success", ups(skipped=2), SKIP),
        ("none_failed_min_one_success", ups(success=1, skipped=1, failed=1), UPF),
        ("none_failed_min_one_success", ups(success=1, skipped=1, upstream_failed=1), UPF),
        ("all_failed", ups(failed=2), None),
        ("all_failed", ups(success=2), SKIP),
        ("all_done", ups(success=2), None),
        ("all_skipped", ups(success=1), SKIP),
        ("all_skipped", ups(upstream_failed=1), SKIP),
        ("all_skipped", ups(skipped=3), None),
        ("none_skipped", ups(success=2, failed=1), None),
        ("none_skipped", ups(success=1, skipped=1), SKIP),
        ("always", ups(failed=1, skipped=1, upstream_failed=1), None),
    ],
)
def test_airflows_own_cases(
    rule: str, upstream: list[TaskState], expected: TaskState | None
) -> None:
    assert decide(rule, upstream) == expected


@pytest.mark.parametrize(
    ("rule", "upstream", "expected"),
    [
        ("all_success", ups(success=1, cached=1), None),  # cached is a success
        ("all_success", ups(skipped=1, failed=1), UPF),  # a failure beats a skip, always
        ("all_success", ups(success=1, cancelled=1), UPF),  # cancelled is a failure
        ("one_done", ups(cancelled=1, skipped=1), None),
        ("all_failed", ups(failed=1, cancelled=1, upstream_failed=1), None),
        ("one_success", ups(cached=1, failed=1), None),
    ],
)
def test_cadenzas_own_states(
    rule: str, upstream: list[TaskState], expected: TaskState | None
) -> None:
    assert decide(rule, upstream) == expected


def test_unknown_rule() -> None:
    with pytest.raises(ValueError, match="unknown trigger rule 'sometimes'"):
        decide("sometimes", [S.SUCCESS])


def test_the_pipeline_takes_exactly_these_rules() -> None:
    assert frozenset(RULES) == TRIGGER_RULES


@pytest.mark.parametrize(
    ("rule", "hint"),
    [
        ("none_failed_or_skipped", "renamed it 'none_failed_min_one_success'"),
        ("dummy", "renamed it 'always'"),
        ("all_done_setup_success", "no setup/teardown"),
        ("sometimes", "choose one of all_success, all_failed"),
    ],
)
def test_an_airflow_rule_cadenza_lacks_says_what_to_use(rule: str, hint: str) -> None:
    pipe = Pipeline("rules")
    with pytest.raises(InvalidOptionError, match=hint) as raised:
        pipe.task(lambda: None, name="t", trigger_rule=rule)
    assert "\n" not in str(raised.value) and repr(rule) in str(raised.value)
