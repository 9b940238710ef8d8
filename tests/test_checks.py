"""cadenza.checks: run_check and every built-in check, passing and failing on real DataFrames."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from cadenza.checks import (
    CheckResult,
    freshness,
    in_range,
    not_null,
    psi_drift,
    row_count,
    run_check,
    schema,
    unique,
)
from cadenza.exceptions import InvalidOptionError


@pytest.fixture
def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5, 6],
            "line": [1, 1, 1, 2, 1, 1],
            "customer_id": [10.0, None, 12.0, None, 14.0, None],
            "amount": [5.0, 0.0, 100.0, None, 42.5, 7.0],
        }
    )


def checked(check: object, value: object) -> CheckResult:
    """run_check, plus the promise that metadata is JSON-able."""
    result = run_check(check, value)  # type: ignore[arg-type]
    json.dumps(result.metadata, allow_nan=False)
    return result


# ---- run_check ---------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [True, False, np.bool_(True), np.bool_(False)])
def test_run_check_turns_bools_into_results(answer: object) -> None:
    result = run_check(lambda df: answer, None)
    assert result == CheckResult(passed=bool(answer))
    assert type(result.passed) is bool


def test_run_check_passes_results_through_with_plain_bool() -> None:
    given = CheckResult(np.bool_(False), "bad", {"n": 1})  # type: ignore[arg-type]
    result = run_check(lambda df: given, None)
    assert result == CheckResult(False, "bad", {"n": 1})
    assert type(result.passed) is bool


def test_run_check_rejects_other_answers() -> None:
    def count_rows(df: object) -> int:
        return 3

    with pytest.raises(TypeError, match=r"'count_rows' returned 3 of type int\. A check must "):
        run_check(count_rows, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="passed must be True or False"):
        run_check(lambda df: CheckResult("yes"), None)  # type: ignore[arg-type]


def test_run_check_rejects_metadata_json_cannot_store() -> None:
    with pytest.raises(TypeError, match="metadata JSON cannot store"):
        run_check(lambda df: CheckResult(True, "", {"when": datetime(2024, 1, 1)}), None)


def test_run_check_lets_the_check_s_exception_through() -> None:
    def broken(df: object) -> bool:
        raise KeyError("oops")

    with pytest.raises(KeyError, match="oops"):
        run_check(broken, None)


# ---- not_null / unique -------------------------------------------------------------------


def test_not_null(orders: pd.DataFrame) -> None:
    check = not_null("customer_id")
    assert check.__name__ == "not_null(customer_id)"
    result = checked(check, orders)
    assert not result.passed
    assert result.description == "3 of 6 rows have null customer_id (rows 1, 3, 5)"
    assert result.metadata == {"null_counts": {"customer_id": 3}}
    assert checked(not_null(["order_id", "line"]), orders).passed


def test_not_null_reports_each_column_and_elides_long_lists() -> None:
    df = pd.DataFrame({"a": [None] * 1000, "b": [1.0] * 999 + [None]}, index=range(5, 1005))
    result = checked(not_null(["a", "b"]), df)
    assert result.description == (
        "1,000 of 1,000 rows have null a (rows 5, 6, 7, …); 1 of 1,000 rows has null b (row 1004)"
    )
    assert result.metadata == {"null_counts": {"a": 1000, "b": 1}}


def test_unique(orders: pd.DataFrame) -> None:
    assert checked(unique("order_id"), orders).passed
    result = checked(unique("line"), orders)
    assert not result.passed
    assert (
        result.description == "5 of 6 rows have a duplicate line (1 repeated): 1 at rows 0, 1, 2, …"
    )
    assert result.metadata == {"duplicate_rows": 5, "duplicate_values": 1}


def test_unique_quotes_a_few_repeated_values() -> None:
    df = pd.DataFrame({"sku": ["a", "b", "c", "d", "a", "b", "c", "d", "e"]})
    result = checked(unique("sku"), df)
    assert result.description == (
        "8 of 9 rows have a duplicate sku (4 repeated): "
        "'a' at rows 0, 4; 'b' at rows 1, 5; 'c' at rows 2, 6, …"
    )
    assert result.metadata == {"duplicate_rows": 8, "duplicate_values": 4}


def test_unique_checks_the_combination_of_columns() -> None:
    df = pd.DataFrame({"order": [1, 1, 2, 2, 3], "line": [1, 2, 1, 1, 1]})
    check = unique(["order", "line"])
    assert check.__name__ == "unique(order, line)"
    result = checked(check, df)
    assert (
        result.description
        == "2 of 5 rows have a duplicate (order, line) (1 repeated): (2, 1) at rows 2, 3"
    )
    assert checked(unique(["order", "line"]), df.drop(index=3)).passed


# ---- in_range ----------------------------------------------------------------------------


def test_in_range_is_inclusive_and_ignores_nulls(orders: pd.DataFrame) -> None:
    check = in_range("amount", lo=0, hi=100)
    assert check.__name__ == "in_range(amount, lo=0, hi=100)"
    result = checked(check, orders)
    assert result.passed
    assert result.metadata == {"outside": 0, "min": 0.0, "max": 100.0}


def test_in_range_fails_with_the_offending_values(orders: pd.DataFrame) -> None:
    result = checked(in_range("amount", lo=1, hi=50), orders)
    assert not result.passed
    assert result.description == "2 of 6 rows have amount outside [1, 50] (rows 1: 0.0, 2: 100.0)"
    assert result.metadata["outside"] == 2
    assert checked(in_range("amount", hi=99), orders).description.endswith("(row 2: 100.0)")
    assert checked(in_range("amount", lo=0.5), orders).description.endswith("(row 1: 0.0)")


def test_in_range_on_timestamps() -> None:
    df = pd.DataFrame({"at": pd.to_datetime(["2023-12-31", "2024-01-02", None])})
    result = checked(in_range("at", lo=pd.Timestamp("2024-01-01")), df)
    assert result.description == (
        "1 of 3 rows has at outside [2024-01-01 00:00:00, inf] (row 0: 2023-12-31 00:00:00)"
    )
    assert result.metadata["min"] == "2023-12-31T00:00:00"


def test_in_range_on_a_column_it_cannot_compare() -> None:
    result = checked(in_range("name", lo=0), pd.DataFrame({"name": ["a", "b"]}))
    assert not result.passed
    assert "column name has dtype" in result.description
    assert "cannot be compared with [0, inf]" in result.description


# ---- schema ------------------------------------------------------------------------------


def typed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.array([1, 2], dtype="int64"),
            "score": [0.5, 1.5],
            "name": ["a", "b"],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "ok": [True, False],
        }
    )


def test_schema_passes_written_as_pandas_prints_dtypes() -> None:
    # 'object' and 'datetime64[ns]' also match pandas 3's 'str' and 'datetime64[us]'.
    expected = {
        "id": "int64",
        "score": "float64",
        "name": "object",
        "at": "datetime64[ns]",
        "ok": "bool",
    }
    check = schema(expected)
    assert check.__name__ == "schema(id, score, name, +2 more)"
    result = checked(check, typed_frame())
    assert result.passed, result.description
    assert set(result.metadata["columns"]) == set(expected)
    assert result.metadata["missing"] == result.metadata["extra"] == []


def test_schema_reports_a_readable_diff() -> None:
    df = typed_frame().drop(columns=["ok"])
    result = checked(schema({"id": "float64", "score": "float64", "flag": "bool"}), df)
    assert not result.passed
    assert result.description.startswith("schema differs: missing flag (bool); extra name (")
    assert "; extra at (datetime64[" in result.description
    assert result.description.endswith("; id is int64, expected float64")
    assert result.metadata["missing"] == ["flag"]
    assert result.metadata["extra"] == ["name", "at"]
    assert result.metadata["mismatched"] == ["id"]


def test_schema_hash_is_stable_and_follows_dtypes() -> None:
    df = pd.DataFrame({"id": np.array([1, 2], dtype="int64"), "score": [0.5, 1.5]})
    check = schema({"id": "int64", "score": "float64"})
    first = checked(check, df).metadata["schema_hash"]
    # Pinned: the same columns and dtypes hash alike in every process and every run.
    assert first == "78d9449be9c135b02fc722ca5c17e3f5a86ed3992724f88536c577c9948e8d06"
    assert first == hashlib.sha256(b'[["id", "int64"], ["score", "float64"]]').hexdigest()
    assert checked(schema({"other": "int64"}), df.copy()).metadata["schema_hash"] == first
    changed = checked(check, df.astype({"id": "float64"}))
    assert not changed.passed
    assert changed.metadata["schema_hash"] != first
    assert checked(check, "not a frame").metadata["schema_hash"] is None


# ---- row_count ---------------------------------------------------------------------------


def test_row_count(orders: pd.DataFrame) -> None:
    assert checked(row_count(min=6, max=6), orders).passed
    low = checked(row_count(min=1000), orders)
    assert (low.passed, low.description) == (False, "6 rows; expected at least 1,000")
    assert low.metadata == {"rows": 6, "min": 1000, "max": None}
    high = checked(row_count(max=5), orders)
    assert (high.passed, high.description) == (False, "6 rows; expected at most 5")
    assert row_count(min=1, max=10).__name__ == "row_count(min=1, max=10)"


# ---- freshness ---------------------------------------------------------------------------

NOON = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def stamped(*times: str | None) -> pd.DataFrame:
    return pd.DataFrame({"updated_at": pd.to_datetime(list(times))})


@pytest.mark.parametrize("max_age", ["2h", 7200, 7200.0, timedelta(hours=2)])
def test_freshness_accepts_every_duration_form(max_age: object) -> None:
    check = freshness("updated_at", max_age, now=NOON)  # type: ignore[arg-type]
    assert check.__name__ == "freshness(updated_at, 2h)"
    assert checked(check, stamped("2024-01-01 10:00", None, "2024-01-01 09:00")).passed
    assert not checked(check, stamped("2024-01-01 09:59:59")).passed


def test_freshness_says_how_old_the_newest_row_is() -> None:
    result = checked(freshness("updated_at", "30m", now=NOON), stamped("2024-01-01 08:55"))
    assert not result.passed
    assert result.description == (
        "newest updated_at is 2024-01-01T08:55:00+00:00, 3h5m old at "
        "2024-01-01T12:00:00+00:00; allowed 30m"
    )
    assert result.metadata == {
        "newest": "2024-01-01T08:55:00+00:00",
        "age_seconds": 11100.0,
        "max_age_seconds": 1800.0,
    }


def test_freshness_handles_naive_and_aware_times() -> None:
    aware = stamped("2024-01-01 13:30").assign(
        updated_at=lambda d: d.updated_at.dt.tz_localize(timezone(timedelta(hours=2)))
    )  # 11:30 UTC
    naive_now = datetime(2024, 1, 1, 12, 0)
    assert checked(freshness("updated_at", "1h", now=naive_now), aware).passed
    assert checked(freshness("updated_at", "1h", now=naive_now), stamped("2024-01-01 11:30")).passed
    assert not checked(freshness("updated_at", "1h", now=NOON), stamped("2024-01-01 10:59")).passed


def test_freshness_defaults_to_the_current_time() -> None:
    now = pd.Timestamp.now(tz="UTC")
    df = pd.DataFrame({"updated_at": [now - pd.Timedelta(minutes=5)]})
    assert checked(freshness("updated_at", "10m"), df).passed
    assert not checked(freshness("updated_at", "1m"), df).passed


def test_freshness_needs_timestamps() -> None:
    text = checked(freshness("updated_at", "1h"), pd.DataFrame({"updated_at": ["2024-01-01"]}))
    assert not text.passed
    assert "not datetime64; convert it with pandas.to_datetime" in text.description
    empty = checked(freshness("updated_at", "1h"), stamped(None, None))
    assert (empty.passed, empty.description) == (False, "column updated_at has no timestamps")


# ---- psi_drift ---------------------------------------------------------------------------


def normal(mean: float, seed: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.random.default_rng(seed).normal(mean, 1.0, 5000)})


def test_psi_drift_fires_on_a_shifted_sample() -> None:
    check = psi_drift(normal(0, seed=1), "x")
    assert check.__name__ == "psi_drift(x)"
    result = checked(check, normal(1, seed=2))
    assert not result.passed
    assert result.metadata["psi"]["x"] > 0.5
    assert result.metadata["threshold"] == 0.2
    assert result.description.startswith("PSI above 0.2 for x (PSI: x 0.")


def test_psi_drift_stays_quiet_on_an_unshifted_sample() -> None:
    result = checked(psi_drift(normal(0, seed=1), ["x"]), normal(0, seed=3))
    assert result.passed, result.description
    assert 0 <= result.metadata["psi"]["x"] < 0.05


def test_psi_drift_counts_values_beyond_the_reference() -> None:
    reference = pd.DataFrame({"x": np.arange(100.0)})
    far = pd.DataFrame({"x": np.full(100, 1e6)})
    assert not checked(psi_drift(reference, "x"), far).passed


def categories(shares: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"plan": [k for k, n in shares.items() for _ in range(n)]})


@pytest.mark.parametrize("dtype", ["object", "category"])
def test_psi_drift_compares_category_frequencies(dtype: str) -> None:
    reference = categories({"free": 600, "pro": 300, "team": 100}).astype(dtype)
    check = psi_drift(reference, "plan")
    assert checked(check, categories({"free": 590, "pro": 310, "team": 100})).passed
    moved = checked(check, categories({"free": 200, "pro": 300, "team": 500}).astype(dtype))
    assert not moved.passed
    assert moved.metadata["psi"]["plan"] > 0.2
    brand_new = checked(check, categories({"free": 600, "pro": 300, "enterprise": 100}))
    assert not brand_new.passed  # a category the reference never saw is drift


def test_psi_drift_names_only_the_drifted_columns() -> None:
    reference = normal(0, seed=1).assign(plan=categories({"a": 2500, "b": 2500}).plan)
    batch = normal(1, seed=2).assign(plan=categories({"a": 2500, "b": 2500}).plan)
    result = checked(psi_drift(reference, ["x", "plan"], threshold=0.25), batch)
    assert result.description.startswith("PSI above 0.25 for x (PSI: x ")
    assert result.metadata["psi"]["plan"] == 0.0


def test_psi_drift_on_a_column_that_stopped_being_numeric() -> None:
    check = psi_drift(normal(0, seed=1), "x")
    result = checked(check, pd.DataFrame({"x": ["a", "b"]}))
    assert not result.passed
    assert "but it is numeric in the reference" in result.description
    empty = checked(check, pd.DataFrame({"x": [np.nan]}))
    assert empty.description == "column x has no values to compare"


# ---- bad arguments and bad values --------------------------------------------------------

REF = pd.DataFrame({"x": [1.0, 2.0, 3.0], "at": pd.to_datetime(["2024-01-01"] * 3)})


@pytest.mark.parametrize(
    ("make", "option", "words"),
    [
        (lambda: not_null([]), "columns", "needs one or more distinct column names"),
        (lambda: not_null(["a", "a"]), "columns", "distinct"),
        (lambda: unique([1]), "columns", "as strings, got [1]"),
        (lambda: unique(""), "columns", "got ''"),
        (lambda: in_range("x"), "lo", "neither lo nor hi"),
        (lambda: in_range("x", lo=5, hi=1), "lo", "lo=5 above hi=1"),
        (lambda: schema({}), "expected", "non-empty dict"),
        (lambda: schema({"a": "int46"}), "expected", "'int46' is not"),
        (lambda: schema({"a": int}), "expected", "dtypes as pandas prints them"),
        (lambda: row_count(), "min", "neither min nor max"),
        (lambda: row_count(min=-1), "min", "min=-1 is not a row count"),
        (lambda: row_count(max=2.5), "max", "whole number"),
        (lambda: row_count(min=10, max=1), "min", "min=10 above max=1"),
        (lambda: freshness("at", -5), "max_age", "positive"),
        (lambda: freshness("at", timedelta(hours=-1)), "max_age", "positive"),
        (lambda: freshness("at", "soon"), "max_age", "'soon' is not a duration"),
        (lambda: freshness("at", 0), "max_age", "Pass a positive duration such as '2h'"),
        (lambda: psi_drift([1, 2], "x"), "reference", "must be a pandas DataFrame, got list"),
        (lambda: psi_drift(REF, "x", threshold=0), "threshold", "threshold=0 must be"),
        (lambda: psi_drift(REF, "x", threshold=-0.1), "threshold", "above 0"),
        (lambda: psi_drift(REF, "x", threshold="high"), "threshold", "'high' must be"),
        (lambda: psi_drift(REF, "x", threshold=True), "threshold", "True must be"),
        (lambda: psi_drift(REF, "x", bins=1), "bins", "bins=1 must be"),
        (lambda: psi_drift(REF, "x", bins=2.5), "bins", "whole number"),
        (lambda: in_range("x", lo="a", hi=1), "lo", "cannot compare lo='a' with hi=1"),
        (lambda: psi_drift(REF, "y"), "columns", "column 'y' is not in the DataFrame"),
        (lambda: psi_drift(REF, "at"), "columns", "cannot compare column 'at'"),
        (lambda: psi_drift(REF.assign(x=np.nan), "x"), "columns", "has no values"),
    ],
)
def test_bad_arguments_raise_at_call_time(make: object, option: str, words: str) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        make()  # type: ignore[operator]
    assert caught.value.option == option
    assert words in str(caught.value)


ALL_CHECKS = [
    not_null("x"),
    unique("x"),
    in_range("x", lo=0),
    schema({"x": "float64"}),
    row_count(min=1),
    freshness("x", "1h"),
    psi_drift(REF, "x"),
]


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", [None, [1.0, 2.0], pd.Series([1.0, 2.0], name="x")])
def test_a_value_that_is_not_a_dataframe_fails(check: object, value: object) -> None:
    result = checked(check, value)
    assert not result.passed
    assert result.description == f"expected a pandas DataFrame, got {type(value).__name__}"


@pytest.mark.parametrize(
    "check",
    [c for c in ALL_CHECKS if c.__name__.split("(")[0] not in ("schema", "row_count")],
    ids=lambda c: c.__name__,
)
def test_a_missing_column_fails_and_suggests_a_name(check: object) -> None:
    result = checked(check, pd.DataFrame({"xx": [1.0], "other": [2.0]}))
    assert not result.passed
    assert result.description == (
        "column 'x' is not in the DataFrame (columns: xx, other); did you mean 'xx'?"
    )
