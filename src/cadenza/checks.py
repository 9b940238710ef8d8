"""Data quality checks: ``CheckResult``, ``run_check`` and the built-in DataFrame checks."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cadenza._durations import parse_duration
from cadenza.exceptions import InvalidOptionError


@dataclass
class CheckResult:
    """What one check concluded about one task output."""

    passed: bool
    """True when the data is acceptable."""
    description: str = ""
    """One human sentence: what failed, with numbers and a few offending examples."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON-able facts recorded with the result (counts, PSI values, a schema hash)."""


Check = Callable[[Any], CheckResult]

_EXAMPLES = 3  # offending rows or values quoted in a description
_EPSILON = 1e-4  # stands in for an empty bin's share, so PSI's log stays finite


def run_check(check: Callable[[Any], bool | CheckResult], value: Any) -> CheckResult:
    """Call ``check(value)`` and return its answer as a ``CheckResult``.

    A bool (numpy's too) becomes ``CheckResult(passed)``. Anything else raises ``TypeError``;
    so do metadata that JSON cannot store. An exception raised by the check propagates.
    """
    result = check(value)
    name = getattr(check, "__name__", repr(check))
    if _is_bool(result):
        return CheckResult(passed=bool(result))
    if not isinstance(result, CheckResult):
        raise TypeError(
            f"Check {name!r} returned {result!r} of type {type(result).__name__}. A check must "
            f"return True, False or CheckResult(passed, description, metadata)."
        )
    if not _is_bool(result.passed):
        raise TypeError(
            f"Check {name!r} returned CheckResult(passed={result.passed!r}); "
            f"passed must be True or False."
        )
    try:
        json.dumps(result.metadata)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"Check {name!r} returned metadata JSON cannot store ({exc}). Use only dicts, "
            f"lists, strings, numbers, booleans and None, e.g. float(x) for numpy numbers."
        ) from None
    return CheckResult(bool(result.passed), result.description, result.metadata)


def not_null(columns: str | Sequence[str]) -> Check:
    """Pass when no row has a null in any of ``columns``."""
    names = _column_names("not_null", columns)

    def check(value: Any) -> CheckResult:
        if problem := _frame_problem(value, names):
            return problem
        counts: dict[str, int] = {}
        parts: list[str] = []
        for name in names:
            nulls = value[name].isna()
            counts[name] = int(nulls.sum())
            if counts[name]:
                parts.append(
                    f"{counts[name]:,} of {len(value):,} rows {_have(counts[name])} null {name} "
                    f"({_rows(value.index[nulls.to_numpy()], counts[name])})"
                )
        return CheckResult(not parts, "; ".join(parts), {"null_counts": counts})

    return _named(check, f"not_null({', '.join(names)})")


def unique(columns: str | Sequence[str]) -> Check:
    """Pass when no two rows share the same combination of values in ``columns``."""
    names = _column_names("unique", columns)
    label = names[0] if len(names) == 1 else f"({', '.join(names)})"
    key = names[0] if len(names) == 1 else names  # a one-name list would give 1-tuple keys

    def check(value: Any) -> CheckResult:
        if problem := _frame_problem(value, names):
            return problem
        repeated = value[value.duplicated(subset=names, keep=False)]
        groups = repeated.groupby(key, dropna=False, sort=False).indices if len(repeated) else {}
        meta = {"duplicate_rows": len(repeated), "duplicate_values": len(groups)}
        if not groups:
            return CheckResult(True, "", meta)
        examples = [
            f"{_show(key)} at {_rows(repeated.index[positions], len(positions))}"
            for key, positions in list(groups.items())[:_EXAMPLES]
        ]
        more = ", …" if len(groups) > _EXAMPLES else ""
        return CheckResult(
            False,
            f"{len(repeated):,} of {len(value):,} rows have a duplicate {label} "
            f"({len(groups):,} repeated): {'; '.join(examples)}{more}",
            meta,
        )

    return _named(check, f"unique({', '.join(names)})")


def in_range(column: str, lo: Any = None, hi: Any = None) -> Check:
    """Pass when every non-null value of ``column`` lies in ``[lo, hi]``; either may be None."""
    (name,) = _column_names("in_range", [column])
    _check_bounds(f"in_range({column!r})", "lo", lo, "hi", hi)
    bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"

    def check(value: Any) -> CheckResult:
        if problem := _frame_problem(value, [name]):
            return problem
        series = value[name]
        try:
            low = series < lo if lo is not None else False
            high = series > hi if hi is not None else False
            outside = (low | high) & series.notna()
        except TypeError:
            return CheckResult(
                False,
                f"column {name} has dtype {series.dtype}; it cannot be compared with {bounds}",
            )
        bad = series[outside]
        meta = {"outside": len(bad), "min": _jsonable(series.min()), "max": _jsonable(series.max())}
        if bad.empty:
            return CheckResult(True, "", meta)
        shown = ", ".join(f"{_show(i)}: {_show(v)}" for i, v in bad.head(_EXAMPLES).items())
        more = ", …" if len(bad) > _EXAMPLES else ""
        return CheckResult(
            False,
            f"{len(bad):,} of {len(value):,} rows {_have(len(bad))} {name} outside {bounds} "
            f"(row{'s' * (len(bad) > 1)} {shown}{more})",
            meta,
        )

    return _named(check, f"in_range({name}, {_keywords(lo=lo, hi=hi)})")


# Dtype names every supported pandas accepts: schema() takes them without importing pandas,
# so loading a pipeline (cadenza show, plan, a cached run) does not pay for it.
_COMMON_DTYPES = frozenset({
    "object", "bool", "boolean", "category", "string", "float32", "float64", "Float64",
    "int8", "int16", "int32", "int64", "Int64", "uint8", "uint16", "uint32", "uint64",
    "datetime64[ns]", "datetime64[ns, UTC]", "timedelta64[ns]",
})


def schema(expected: dict[str, str]) -> Check:
    """Pass when the DataFrame has exactly these columns with these dtypes (as pandas prints
    them: 'int64', 'float64', 'object', 'datetime64[ns]', 'bool', ...). Always records
    ``metadata["schema_hash"]``, a sha256 of the actual column names and dtypes in order.
    """
    if not isinstance(expected, dict) or not expected:
        raise InvalidOptionError(
            f"schema() needs a non-empty dict of column name to dtype, got {expected!r}. "
            f"Write it like schema({{'customer_id': 'int64', 'name': 'object'}}).",
            option="expected",
            value=expected,
        )
    for name, dtype in expected.items():
        try:
            if not isinstance(name, str) or not isinstance(dtype, str):
                raise TypeError
            if dtype not in _COMMON_DTYPES:  # only an unusual name costs a pandas import
                from pandas.api.types import pandas_dtype  # type: ignore[import-untyped]

                pandas_dtype(dtype)
        except TypeError:
            raise InvalidOptionError(
                f"schema() entry {name!r}: {dtype!r} is not a column name and a dtype pandas "
                f"knows. Write dtypes as pandas prints them: 'int64', 'float64', 'object', "
                f"'datetime64[ns]', 'bool'.",
                option="expected",
                value=expected,
            ) from None
    expected = dict(expected)  # a later change to the caller's dict must not move the check

    def check(value: Any) -> CheckResult:
        if problem := _frame_problem(value, []):
            problem.metadata["schema_hash"] = None
            return problem
        pairs = [(str(c), str(t)) for c, t in value.dtypes.items()]
        actual = dict(pairs)
        missing = [c for c in expected if c not in actual]
        extra = [c for c in actual if c not in expected]
        changed = [c for c in expected if c in actual and not _same_dtype(expected[c], actual[c])]
        parts = (
            [f"missing {c} ({expected[c]})" for c in missing]
            + [f"extra {c} ({actual[c]})" for c in extra]
            + [f"{c} is {actual[c]}, expected {expected[c]}" for c in changed]
        )
        digest = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()
        meta = {
            "schema_hash": digest,
            "columns": actual,
            "missing": missing,
            "extra": extra,
            "mismatched": changed,
        }
        return CheckResult(not parts, "schema differs: " + "; ".join(parts) if parts else "", meta)

    shown = ", ".join(list(expected)[:3]) + (f", +{len(expected) - 3} more" * (len(expected) > 3))
    return _named(check, f"schema({shown})")


def row_count(min: int | None = None, max: int | None = None) -> Check:
    """Pass when the DataFrame has at least ``min`` and at most ``max`` rows."""
    for option, bound in (("min", min), ("max", max)):
        if bound is not None and (type(bound) is not int or bound < 0):
            raise InvalidOptionError(
                f"row_count() {option}={bound!r} is not a row count; pass a whole number "
                f"that is 0 or more.",
                option=option,
                value=bound,
            )
    _check_bounds("row_count()", "min", min, "max", max)

    def check(value: Any) -> CheckResult:
        if problem := _frame_problem(value, []):
            return problem
        rows, meta = len(value), {"rows": len(value), "min": min, "max": max}
        if min is not None and rows < min:
            return CheckResult(False, f"{rows:,} rows; expected at least {min:,}", meta)
        if max is not None and rows > max:
            return CheckResult(False, f"{rows:,} rows; expected at most {max:,}", meta)
        return CheckResult(True, "", meta)

    return _named(check, f"row_count({_keywords(min=min, max=max)})")


def freshness(column: str, max_age: str | float | timedelta, now: datetime | None = None) -> Check:
    """Pass when the newest timestamp in ``column`` is at most ``max_age`` ('2h', seconds or a
    timedelta) older than ``now`` (default: the current time). Naive times are taken as UTC."""
    (name,) = _column_names("freshness", [column])
    try:
        limit = parse_duration(max_age)
    except ValueError as exc:
        raise InvalidOptionError(
            f"freshness({column!r}) max_age: {exc}. Pass a positive duration such as '2h', "
            f"'30m', 3600 (seconds) or a timedelta.",
            option="max_age",
            value=max_age,
        ) from None

    def check(value: Any) -> CheckResult:
        from pandas.api.types import is_datetime64_any_dtype

        if problem := _frame_problem(value, [name]):
            return problem
        series = value[name]
        if not is_datetime64_any_dtype(series.dtype):
            return CheckResult(
                False,
                f"column {name} has dtype {series.dtype}, not datetime64; "
                f"convert it with pandas.to_datetime",
            )
        newest = series.max()
        if newest is None or newest != newest:  # NaT: no timestamps at all
            return CheckResult(False, f"column {name} has no timestamps")
        if newest.tzinfo is None:
            newest = newest.tz_localize(UTC)
        at = now or datetime.now(UTC)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        age = (at - newest).total_seconds()
        meta = {"newest": newest.isoformat(), "age_seconds": age, "max_age_seconds": limit}
        if age <= limit:
            return CheckResult(True, "", meta)
        return CheckResult(
            False,
            f"newest {name} is {newest.isoformat()}, {_duration(age)} old at "
            f"{at.isoformat(timespec='seconds')}; allowed {_duration(limit)}",
            meta,
        )

    return _named(check, f"freshness({name}, {_duration(limit)})")


def psi_drift(
    reference: Any, columns: str | Sequence[str], threshold: float = 0.2, bins: int = 10
) -> Check:
    """Fail when the Population Stability Index of any of ``columns`` against ``reference``
    exceeds ``threshold``. Numeric columns use ``bins`` quantile bins of the reference;
    object, string, category and bool columns compare category frequencies."""
    import numpy as np

    names = _column_names("psi_drift", columns)
    if not _is_frame(reference):
        raise InvalidOptionError(
            f"psi_drift() reference must be a pandas DataFrame, got {type(reference).__name__}.",
            option="reference",
            value=type(reference).__name__,
        )
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or threshold <= 0:
        raise InvalidOptionError(
            f"psi_drift() threshold={threshold!r} must be a number above 0; 0.1 is a small "
            f"shift and 0.2 (the default) a significant one.",
            option="threshold",
            value=threshold,
        )
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise InvalidOptionError(
            f"psi_drift() bins={bins!r} must be a whole number of 2 or more, e.g. 10.",
            option="bins",
            value=bins,
        )
    if problem := _frame_problem(reference, names):
        raise InvalidOptionError(
            f"psi_drift() reference: {problem.description}.", option="columns", value=columns
        )
    threshold = float(threshold)
    # Bin the reference once, here, so the check does not keep the whole reference alive.
    baselines: dict[str, tuple[Any, Any]] = {}
    for name in names:
        ref = reference[name].dropna()
        if ref.empty:
            raise InvalidOptionError(
                f"psi_drift() reference column {name!r} has no values to compare against.",
                option="columns",
                value=columns,
            )
        if _is_numeric(ref.dtype):
            edges = np.unique(np.quantile(ref.to_numpy(dtype=float), np.linspace(0, 1, bins + 1)))
            inner = edges[1:-1]  # outer bins stay open, catching values beyond the reference
            baselines[name] = (inner, _shares(ref, inner))
        elif ref.dtype.kind in "mM":  # datetimes and timedeltas
            raise InvalidOptionError(
                f"psi_drift() cannot compare column {name!r} of dtype {ref.dtype}; "
                f"pass numeric or categorical columns.",
                option="columns",
                value=columns,
            )
        else:
            baselines[name] = (None, ref.value_counts(normalize=True).to_dict())

    def check(value: Any) -> CheckResult:
        if problem := _frame_problem(value, names):
            return problem
        psi: dict[str, float] = {}
        for name, (inner, expected) in baselines.items():
            now = value[name].dropna()
            if now.empty:
                return CheckResult(False, f"column {name} has no values to compare")
            if inner is not None:
                if not _is_numeric(now.dtype):
                    return CheckResult(
                        False,
                        f"column {name} has dtype {now.dtype}, but it is numeric in the reference",
                    )
                pairs = list(zip(_shares(now, inner), expected, strict=True))
            else:
                counts = now.value_counts(normalize=True).to_dict()
                pairs = [(counts.get(k, 0.0), expected.get(k, 0.0)) for k in {*counts, *expected}]
            psi[name] = round(sum(_psi_term(a, e) for a, e in pairs), 6)
        drifted = [n for n, v in psi.items() if v > threshold]
        every = ", ".join(f"{n} {v:.3f}" for n, v in psi.items())
        text = f"PSI above {threshold} for {', '.join(drifted)} (PSI: {every})" if drifted else ""
        return CheckResult(not drifted, text, {"psi": psi, "threshold": threshold})

    return _named(check, f"psi_drift({', '.join(names)})")


# ---- helpers -----------------------------------------------------------------------------


def _is_bool(value: Any) -> bool:
    kind = type(value)
    return kind is bool or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def _is_frame(value: Any) -> bool:
    kind = type(value)
    return kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas")


def _is_numeric(dtype: Any) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return bool(is_numeric_dtype(dtype) and not is_bool_dtype(dtype))


def _frame_problem(value: Any, names: Sequence[str]) -> CheckResult | None:
    """A failed result when ``value`` is not a DataFrame or lacks one of ``names``."""
    if not _is_frame(value):
        return CheckResult(False, f"expected a pandas DataFrame, got {type(value).__name__}")
    present = [str(c) for c in value.columns]
    for name in names:
        if name not in value.columns:
            close = difflib.get_close_matches(name, present, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listed = ", ".join(present[:10]) + (", …" if len(present) > 10 else "")
            return CheckResult(
                False, f"column {name!r} is not in the DataFrame (columns: {listed}){hint}"
            )
    return None


def _column_names(check: str, columns: Any) -> list[str]:
    names = [columns] if isinstance(columns, str) else columns
    if (
        not isinstance(names, Sequence)
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        raise InvalidOptionError(
            f"{check}() needs one or more distinct column names as strings, got {columns!r}. "
            f"Pass a name like {check}('customer_id') or a list of names.",
            option="columns",
            value=columns,
        )
    return list(names)


def _check_bounds(call: str, lo_name: str, lo: Any, hi_name: str, hi: Any) -> None:
    if lo is None and hi is None:
        raise InvalidOptionError(
            f"{call} was given neither {lo_name} nor {hi_name}, so it checks nothing. "
            f"Pass at least one, e.g. {lo_name}=0.",
            option=lo_name,
            value=None,
        )
    try:
        inverted = lo is not None and hi is not None and lo > hi
    except TypeError:
        raise InvalidOptionError(
            f"{call} cannot compare {lo_name}={lo!r} with {hi_name}={hi!r}. Give bounds of "
            f"one type, e.g. two numbers.",
            option=lo_name,
            value=lo,
        ) from None
    if inverted:
        raise InvalidOptionError(
            f"{call} has {lo_name}={lo!r} above {hi_name}={hi!r}, so nothing can pass. Swap them.",
            option=lo_name,
            value=lo,
        )


def _keywords(**values: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items() if v is not None)


def _named(check: Check, name: str) -> Check:
    check.__name__ = check.__qualname__ = name
    return check


def _rows(labels: Any, total: int) -> str:
    shown = ", ".join(_show(label) for label in list(labels[:_EXAMPLES]))
    return f"row{'s' * (total > 1)} {shown}{', …' * (total > _EXAMPLES)}"


def _have(count: int) -> str:
    return "has" if count == 1 else "have"


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return f"({', '.join(_show(v) for v in value)})"
    return repr(value) if isinstance(value, str) else str(value)


def _jsonable(value: Any) -> Any:
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return _jsonable(value.item())  # np.float64 is a float, but keep the plain type
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _same_dtype(expected: str, actual: str) -> bool:
    # pandas 3 prints text columns as 'str' where pandas 2 printed 'object', and parses
    # datetimes to 'us' where pandas 2 used 'ns'; a schema should hold across both.
    def family(dtype: str) -> str:
        dtype = "object" if dtype == "str" else dtype
        return re.sub(r"^(datetime64|timedelta64)\[[a-z]+", r"\1[", dtype)

    return family(expected) == family(actual)


def _shares(values: Any, inner: Any) -> list[float]:
    """The share of ``values`` in each bin; ``inner`` are the edges between bins."""
    import numpy as np

    bin_of = np.searchsorted(inner, values.to_numpy(dtype=float), side="right")
    counts = np.bincount(bin_of, minlength=len(inner) + 1)
    return [float(c) for c in counts / counts.sum()]


def _psi_term(actual: float, expected: float) -> float:
    actual, expected = max(actual, _EPSILON), max(expected, _EPSILON)
    return (actual - expected) * math.log(actual / expected)


def _duration(seconds: float) -> str:
    """'3h5m', '45s', '2d': whole units, largest first."""
    whole, parts = round(seconds), list[str]()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size or (unit == "s" and not parts):
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)
