"""parse_duration: '90s', '10m', '1h30m', '2d', numbers and timedeltas, and nothing else."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cadenza._durations import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("500ms", 0.5),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("1.5h", 5400.0),
        ("0.25s", 0.25),
        (" 10m ", 600.0),
        ("1h 30m", 5400.0),
        ("1m1m", 120.0),
        (5, 5.0),
        (0.5, 0.5),
        (timedelta(minutes=1, seconds=30), 90.0),
    ],
)
def test_parses(value: object, seconds: float) -> None:
    result = parse_duration(value)
    assert result == seconds
    assert type(result) is float


@pytest.mark.parametrize(
    "value",
    [
        "ten minutes", "10x", "10M", "m", "1.5.5s", "-1s", "1e3s", "", "   ", "s10",
        "10 minutes",
    ],
)
def test_rejects_text(value: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(value)
    message = str(excinfo.value)
    assert repr(value) in message
    assert "'30s'" in message and "'10m'" in message


@pytest.mark.parametrize(
    "value",
    [0, -1, 0.0, -0.5, "0s", "0m0s", float("nan"), float("inf"), timedelta(0), timedelta(-1)],
)
def test_rejects_zero_negative_and_non_finite(value: object) -> None:
    with pytest.raises(ValueError, match="is not a positive, finite duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [None, [10], {"m": 1}, b"10m"])
def test_rejects_other_types(value: object) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(value)
    assert repr(value) in str(excinfo.value)
    assert "'30s'" in str(excinfo.value)


@pytest.mark.parametrize("value", [True, False])
def test_rejects_booleans(value: bool) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(value)
    assert repr(value) in str(excinfo.value)


def test_boolean_message_says_how_to_write_a_duration() -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_duration(True)
    assert "'30s'" in str(excinfo.value)


def test_plain_digits_are_seconds() -> None:
    assert parse_duration("90") == 90.0
    assert parse_duration(" 1.5 ") == 1.5
