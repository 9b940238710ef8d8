"""Validation for the churn example: typing raw text, and the checks cadenza's built-ins lack.

The built-ins (``schema``, ``not_null``, ``unique``, ``in_range``, ``row_count``,
``freshness``, ``psi_drift``) do most of the work in pipeline.py; the three checks here are
written the same way: a function of the task's output returning a ``CheckResult`` with one
readable sentence and JSON metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cadenza.checks import CheckResult

if TYPE_CHECKING:  # pandas is imported where it is used, so loading the pipeline stays fast
    import pandas as pd

NUMERIC = ["tenure_months", "monthly_charges", "support_calls"]
TYPED_SCHEMA = {
    "customer_id": "object", "tenure_months": "float64", "contract": "object",
    "payment_method": "object", "monthly_charges": "float64", "support_calls": "float64",
    "updated_at": "datetime64[ns, UTC]", "churned": "float64", "source": "object",
    "unparsed": "object",
}
KNOWN = {
    "contract": {"month-to-month", "one-year", "two-year"},
    "payment_method": {"electronic-check", "mailed-check", "bank-transfer", "credit-card"},
}
LABELS = {"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}
MAX_NULL_SHARE = 0.05


def parse(raw: pd.DataFrame) -> pd.DataFrame:
    """Type the known columns of a raw text batch. A value present in the source that does
    not parse becomes missing and is named in the row's ``unparsed`` column, so a check can
    quote it. Unknown columns pass through and missing ones stay missing: the schema check
    reports both."""
    import pandas as pd

    out = raw.copy()
    for column in NUMERIC:
        if column in out:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    if "updated_at" in out:
        out["updated_at"] = pd.to_datetime(
            out["updated_at"], utc=True, errors="coerce", format="ISO8601"
        )
    if "churned" in out:
        out["churned"] = out["churned"].map(
            lambda v: LABELS.get(str(v).strip().lower()) if v is not None else None
        ).astype("float64")
    for column in ("customer_id", "contract", "payment_method", "source"):
        if column in out:
            out[column] = out[column].astype(object)
    # Built in plain Python: pandas 3 reads text as its `str` dtype, which does not mix with
    # object columns in arithmetic, and the result must not depend on the pandas version.
    problems = [""] * len(out)
    for column in [*NUMERIC, "updated_at", "churned"]:
        if column in out:
            bad = (raw[column].notna() & out[column].isna()).tolist()
            for row, (failed, sent) in enumerate(zip(bad, raw[column].tolist(), strict=True)):
                if failed:
                    problems[row] += f"{column}={sent!r} "
    out["unparsed"] = pd.Series([p.strip() for p in problems], index=out.index, dtype=object)
    return out


def all_values_parse(frame: pd.DataFrame) -> CheckResult:
    """Fail when a value the source sent could not be read as its column's type."""
    bad = frame.loc[frame["unparsed"] != "", "unparsed"]
    shown = "; ".join(f"row {i}: {v}" for i, v in bad.head(3).items())
    if bad.empty:
        return CheckResult(True, "", {"rows_unparsed": 0})
    return CheckResult(
        False,
        f"{len(bad):,} of {len(frame):,} rows have values that do not parse ({shown})",
        {"rows_unparsed": len(bad)},
    )


def null_rate(frame: pd.DataFrame) -> CheckResult:
    """Warn when a column is missing in more than 5% of rows (the sources usually miss ~2%)."""
    rates = {str(c): round(float(frame[c].isna().mean()), 4) for c in frame.columns}
    high = {c: r for c, r in rates.items() if r > MAX_NULL_SHARE}
    text = ", ".join(f"{c} {r:.0%}" for c, r in high.items())
    if not high:
        return CheckResult(True, "", {"null_rate": rates})
    return CheckResult(
        False, f"null rate above {MAX_NULL_SHARE:.0%}: {text}", {"null_rate": rates}
    )


def known_categories(frame: pd.DataFrame) -> CheckResult:
    """Warn about category values nobody declared (they reach the model as 'unknown')."""
    found: dict[str, dict[str, int]] = {}
    for column, known in KNOWN.items():
        if column not in frame:
            continue  # the schema check reports it
        values = normalize(frame[column]).dropna()
        unseen = values[~values.isin(known)].value_counts()
        if len(unseen):
            found[column] = {str(k): int(v) for k, v in unseen.items()}
    text = "; ".join(f"{c}: {', '.join(f'{k!r} x{v}' for k, v in u.items())}"
                     for c, u in found.items())
    return CheckResult(not found, f"unseen categories ({text})", {"unseen": found})


def normalize(values: pd.Series) -> pd.Series:
    """'Month To Month', 'month_to_month ' -> 'month-to-month'."""
    return values.str.strip().str.lower().str.replace(r"[\s_]+", "-", regex=True)
