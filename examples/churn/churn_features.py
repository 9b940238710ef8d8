"""Preparation, feature engineering and the feature store of the churn example.

What needs no fitting happens here, row by row, in pandas. What learns from data (median
imputation, scaling, the one-hot vocabulary) is ``make_preprocessor()``: a scikit-learn
ColumnTransformer that churn_model.py fits on training rows only, inside every cross-validation
fold too, and that ships inside the model so serving transforms exactly as training did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from churn_quality import KNOWN, normalize

if TYPE_CHECKING:  # pandas and scikit-learn are imported where they are used
    import pandas as pd
    from sklearn.compose import ColumnTransformer

NUMERIC = [
    "tenure_months", "monthly_charges", "support_calls", "total_charges", "calls_per_year",
    "is_new_customer",
]
CATEGORICAL = ["contract", "payment_method"]
FEATURES = NUMERIC + CATEGORICAL
VALID = {"tenure_months": (0, 120), "monthly_charges": (0, 500), "support_calls": (0, 50)}
TEST_SHARE = 25  # percent of customers held out, chosen by a hash of their id
STORE = Path("features") / "customers"


def prepare(batch: pd.DataFrame) -> pd.DataFrame:
    """Dedupe, fix types and impute what a rule can impute; leave the rest to the fitted
    imputer. Out-of-range values become missing: a 9,999 monthly charge is a typo, not a fact.
    """
    frame = batch.drop(columns=["unparsed"]).copy()
    for column in CATEGORICAL:
        frame[column] = normalize(frame[column].astype(object)).fillna("unknown")
    for column, (lo, hi) in VALID.items():
        frame[column] = frame[column].where(frame[column].between(lo, hi))
    frame["support_calls"] = frame["support_calls"].fillna(0.0)  # no call logged: none made
    # The same record sent by both systems, then the latest version of each customer.
    frame = frame.drop_duplicates(subset=[c for c in frame.columns if c != "source"])
    frame = frame.sort_values(["customer_id", "updated_at"], kind="stable")
    frame = frame.drop_duplicates("customer_id", keep="last")
    frame["churned"] = frame["churned"].astype("int64")
    return frame.reset_index(drop=True)


def engineer(clean: pd.DataFrame) -> pd.DataFrame:
    """One row per customer: its features as of its ``updated_at``, label and split."""
    import pandas as pd

    tenure = clean["tenure_months"]
    out = pd.DataFrame({
        "customer_id": clean["customer_id"].astype(object),
        "as_of": clean["updated_at"],
        "tenure_months": tenure,
        "monthly_charges": clean["monthly_charges"],
        "support_calls": clean["support_calls"],
        "total_charges": tenure * clean["monthly_charges"],
        "calls_per_year": clean["support_calls"] * 12 / tenure.clip(lower=1),
        "is_new_customer": (tenure < 6).astype("float64").where(tenure.notna()),
        "contract": clean["contract"],
        "payment_method": clean["payment_method"],
        "churned": clean["churned"],
    })
    out["split"] = [("test" if _bucket(c) < TEST_SHARE else "train") for c in out.customer_id]
    return out


def _bucket(customer_id: str) -> int:
    """0-99, fixed per customer: a customer stays on one side of the split in every batch."""
    return int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16) % 100


def make_preprocessor() -> ColumnTransformer:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = SkPipeline([
        ("impute", SimpleImputer(strategy="median", add_indicator=True)),
        ("scale", StandardScaler()),
    ])
    categories = [sorted(KNOWN[c] | {"unknown"}) for c in CATEGORICAL]
    return ColumnTransformer([
        ("num", numeric, NUMERIC),
        ("cat", OneHotEncoder(categories=categories, handle_unknown="ignore"), CATEGORICAL),
    ])


# ---- the feature store ---------------------------------------------------------------------


def write_features(features: pd.DataFrame, root: Path) -> Path:
    """Append a batch of features to the store: one parquet file named after its content,
    never rewritten. Returns its path relative to ``root``."""
    table = features[["customer_id", "as_of", *FEATURES]].reset_index(drop=True)
    # Fixed dtypes, so a batch fresh from pandas and the same batch read back from cadenza's
    # parquet artifact give the same bytes, and so the same file name.
    table = table.astype({"customer_id": str, "contract": str, "payment_method": str,
                          "as_of": "datetime64[us, UTC]"})
    table = table.astype({c: "float64" for c in NUMERIC})
    data = table.to_parquet(index=False)
    newest = table["as_of"].max().strftime("%Y%m%dT%H%M%S")
    relative = STORE / f"asof={newest}-{hashlib.sha256(data).hexdigest()[:12]}.parquet"
    path = root / relative
    if not path.exists():  # same content, same name: a re-run adds nothing
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return relative


def get_features(ids: Iterable[str], as_of: datetime | str, root: str | Path = ".",
                 ) -> pd.DataFrame:
    """Each customer's features as they were known at ``as_of``: the newest row stamped at or
    before it, never a later one. Customers with no row by then are left out."""
    import pandas as pd

    cutoff = pd.Timestamp(as_of)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    wanted = pd.Index(list(ids), dtype=object)
    files = sorted((Path(root) / STORE).glob("*.parquet"))
    frames = [pd.read_parquet(f, filters=[("as_of", "<=", cutoff)]) for f in files]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["customer_id", "as_of", *FEATURES])
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["customer_id"].isin(wanted)]
    rows = rows.sort_values(["customer_id", "as_of"], kind="stable")
    return rows.drop_duplicates("customer_id", keep="last").reset_index(drop=True)
