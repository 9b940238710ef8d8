"""Retry: validation, the wait before each retry, and which errors earn another attempt."""

from __future__ import annotations

import math
import random

import pytest

from cadenza import InvalidOptionError, Retry
from cadenza.engine.retry import NO_RETRY


class Flaky(Exception):
    pass


class Fatal(Flaky):
    pass


def test_defaults() -> None:
    policy = Retry()
    assert policy.attempts == 0
    assert (policy.backoff, policy.factor, policy.max_delay, policy.jitter) == (1.0, 2.0, None, 0)
    assert policy.retry_on == (Exception,)
    assert policy.non_retryable == ()
    assert Retry() == NO_RETRY


def test_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Retry(1).attempts = 2  # type: ignore[misc]


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "option", "words"),
    [
        ({"attempts": -1}, "attempts", "positive"),
        ({"attempts": 1.5}, "attempts", "whole number"),
        ({"attempts": True}, "attempts", "whole number"),
        ({"attempts": "3"}, "attempts", "whole number"),
        ({"backoff": -0.1}, "backoff", "0 or more"),
        ({"backoff": "1s"}, "backoff", "0 or more"),
        ({"factor": 0.5}, "factor", "constant wait"),
        ({"factor": -1}, "factor", "0 or more"),
        ({"factor": None}, "factor", "0 or more"),
        ({"max_delay": -1}, "max_delay", "None"),
        ({"max_delay": "30"}, "max_delay", "None"),
        ({"jitter": 1.5}, "jitter", "between 0 and 1"),
        ({"jitter": -0.1}, "jitter", "between 0 and 1"),
        ({"jitter": float("nan")}, "jitter", "between 0 and 1"),
        ({"retry_on": [ValueError]}, "retry_on", "tuple of exception classes"),
        ({"retry_on": (ValueError, "KeyError")}, "retry_on", "tuple of exception classes"),
        ({"retry_on": (int,)}, "retry_on", "tuple of exception classes"),
        ({"non_retryable": ValueError}, "non_retryable", "tuple of exception classes"),
    ],
)
def test_invalid_policy(kwargs: dict[str, object], option: str, words: str) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        Retry(**kwargs)  # type: ignore[arg-type]
    exc = excinfo.value
    value = next(iter(kwargs.values()))
    assert exc.option == option
    assert exc.value is value
    assert f"Retry {option}={value!r} is invalid" in str(exc)
    assert words in str(exc)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": 10, "backoff": 0, "factor": 1},
        {"backoff": 2, "max_delay": 0},
        {"jitter": 0}, {"jitter": 1}, {"jitter": 0.25},
        {"retry_on": (OSError, KeyboardInterrupt), "non_retryable": (FileNotFoundError,)},
    ],
)
def test_valid_policy(kwargs: dict[str, object]) -> None:
    Retry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["backoff", "factor", "max_delay", "jitter"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), True])
def test_nan_infinity_and_bools_are_not_numbers_of_seconds(option: str, value: object) -> None:
    with pytest.raises(InvalidOptionError) as excinfo:
        Retry(**{option: value})  # type: ignore[arg-type]
    assert excinfo.value.option == option


# -- delay -----------------------------------------------------------------------------------


def test_delay_grows_by_factor() -> None:
    policy = Retry(5, backoff=0.5, factor=3)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 13.5]


def test_delay_factor_one_is_constant() -> None:
    policy = Retry(5, backoff=2, factor=1)
    assert {policy.delay(n) for n in range(1, 6)} == {2}


def test_delay_is_capped_by_max_delay() -> None:
    policy = Retry(10, backoff=1, factor=2, max_delay=5)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_zero_backoff_never_waits() -> None:
    assert Retry(3, backoff=0, jitter=1).delay(3, random.Random(1)) == 0


def test_jitter_stays_within_its_bounds() -> None:
    policy = Retry(10, backoff=1, factor=2, max_delay=6, jitter=0.5)
    rng = random.Random(1234)
    for retry_number in range(1, 8):
        base = min(2.0 ** (retry_number - 1), 6)
        waits = [policy.delay(retry_number, rng) for _ in range(200)]
        assert all(base <= w <= base * 1.5 for w in waits)
        assert max(waits) - min(waits) > 0.2 * base  # it does spread


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    policy = Retry(3, backoff=10, jitter=0.3)
    first = [policy.delay(2, random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1
    expected = 20 + 20 * 0.3 * random.Random(7).random()
    assert first[0] == pytest.approx(expected)


def test_jitter_uses_the_module_random_without_an_rng() -> None:
    policy = Retry(3, backoff=1, jitter=1)
    waits = [policy.delay(1) for _ in range(50)]
    assert all(1 <= w <= 2 for w in waits)


def test_delay_of_a_late_retry_is_max_delay() -> None:
    # 2.0 ** 1099 overflows a float: the cap must still decide
    policy = Retry(2000, backoff=1, max_delay=30)
    assert policy.delay(1100) == 30


def test_delay_of_a_late_retry_without_a_cap_is_finite() -> None:
    wait = Retry(2000, backoff=1).delay(1100)
    assert wait > 1e300
    assert math.isfinite(wait)


# -- allows ----------------------------------------------------------------------------------


def test_allows_counts_attempts() -> None:
    policy = Retry(3)
    error = ValueError("x")
    assert [policy.allows(error, attempt) for attempt in (1, 2, 3, 4, 5)] == [
        True, True, True, False, False,
    ]


def test_no_retry_allows_nothing() -> None:
    assert not NO_RETRY.allows(ValueError("x"), 1)


def test_allows_only_retry_on_types() -> None:
    policy = Retry(3, retry_on=(Flaky, OSError))
    assert policy.allows(Flaky(), 1)
    assert policy.allows(Fatal(), 1)  # a subclass matches
    assert policy.allows(FileNotFoundError(), 1)
    assert not policy.allows(ValueError(), 1)


def test_non_retryable_wins_over_retry_on() -> None:
    policy = Retry(3, retry_on=(Flaky,), non_retryable=(Fatal,))
    assert policy.allows(Flaky(), 1)
    assert not policy.allows(Fatal(), 1)


def test_base_exceptions_are_not_retried_by_default() -> None:
    assert not Retry(3).allows(KeyboardInterrupt(), 1)
