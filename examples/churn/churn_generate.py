"""Source files for the churn example: a deterministic generator, and the loader that reads them.

No machine here reaches the internet, so ``write_batch`` plays the part of two upstream
systems: a CRM that exports a CSV and a billing API whose JSON dump nests its fields. Both
carry the dirt real exports carry (nulls, duplicates, out-of-range values, a category nobody
told us about). ``load_files`` does not know the generator exists: it reads any CSV and JSON
export, so a user can drop in one of their own (``dropped`` lists those).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and pandas are imported where they are used: loading stays fast
    import pandas as pd

CSV_FILE = "crm_export.csv"
JSON_FILE = "billing_api_dump.json"
COLUMNS = [
    "customer_id", "tenure_months", "contract", "payment_method", "monthly_charges",
    "support_calls", "updated_at", "churned",
]
CONTRACTS = ["month-to-month", "one-year", "two-year"]
PAYMENTS = ["electronic-check", "mailed-check", "bank-transfer", "credit-card"]
JSON_FIELDS = {  # the API's nested names -> ours
    "id": "customer_id", "tenure": "tenure_months", "plan.contract": "contract",
    "plan.payment_method": "payment_method", "plan.monthly_charges": "monthly_charges",
    "support.calls_90d": "support_calls", "updated_at": "updated_at", "churned": "churned",
}


def customers(rows: int, seed: int, start: datetime, end: datetime,
              shift: bool = False) -> pd.DataFrame:
    """``rows`` clean customer records updated in [start, end), with a learnable churn label.

    ``shift`` moves the population (newer, pricier customers who call support more), the way a
    pricing change or a new acquisition channel would: the drift monitor should notice.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(100_000, 100_000 + rows * 3), size=rows, replace=False)
    tenure = np.clip(rng.gamma(1.6, 14.0, rows), 0, 72).round()
    contract = rng.choice(CONTRACTS, rows, p=[0.55, 0.25, 0.20])
    payment = rng.choice(PAYMENTS, rows, p=[0.35, 0.2, 0.2, 0.25])
    charges = np.clip(rng.normal(70, 25, rows), 18, 120).round(2)
    calls = rng.poisson(1.0 + 0.8 * (contract == "month-to-month"))
    if shift:
        tenure, charges, calls = (tenure // 3), (charges + 35).round(2), calls + 3
    logit = (
        -1.3 + 1.5 * (contract == "month-to-month") - 1.2 * (contract == "two-year")
        - 0.05 * tenure + 0.55 * calls + 0.025 * (charges - 70)
        + 0.6 * (payment == "electronic-check")
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    span = (end - start).total_seconds()
    updated = [start + pd.Timedelta(seconds=float(s)) for s in rng.uniform(0, span, rows)]
    return pd.DataFrame({
        "customer_id": [f"C{i}" for i in ids],
        "tenure_months": tenure.astype(int),
        "contract": contract,
        "payment_method": payment,
        "monthly_charges": charges,
        "support_calls": calls.astype(int),
        "updated_at": [t.isoformat() for t in updated],
        "churned": churned.astype(int),
    })


def write_batch(csv_path: Path, json_path: Path, rows: int, seed: int, start: datetime,
                end: datetime, shift: bool = False, corrupt: bool = False) -> None:
    """Write one batch's CSV export and JSON dump at the paths given.

    Each batch has files of its own (pipeline.py names a folder per batch), so two batches
    landing at once never share one. ``corrupt`` writes the CSV the way a broken export job
    would: a renamed column with currency-formatted text, and blank customer ids.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + 1)
    frame = customers(rows, seed, start, end, shift).astype(object)
    n = len(frame)
    for column, share in (("monthly_charges", 0.02), ("tenure_months", 0.015),
                          ("support_calls", 0.01), ("payment_method", 0.01)):
        frame.loc[rng.random(n) < share, column] = None
    frame.loc[rng.random(n) < 0.005, "monthly_charges"] = -10.0
    frame.loc[rng.random(n) < 0.005, "monthly_charges"] = 9999.0
    frame.loc[rng.random(n) < 0.005, "tenure_months"] = 999
    in_api = rng.random(n) < 0.35
    csv, api = frame[~in_api], frame[in_api]
    overlap = frame[~in_api].sample(frac=0.02, random_state=seed)  # exported by both systems
    csv = pd.concat([csv, csv.sample(frac=0.01, random_state=seed + 2)])  # a doubled page
    api = pd.concat([api, overlap]).copy()
    odd = rng.random(len(api)) < 0.02
    api.loc[odd, "contract"] = "Three Year"  # a plan the CRM has never heard of
    api.loc[~odd & (rng.random(len(api)) < 0.3), "contract"] = (
        api["contract"].str.replace("-", " ").str.title()  # the API spells plans its own way
    )

    if corrupt:
        csv = csv.rename(columns={"monthly_charges": "MonthlyCharges"})
        csv["MonthlyCharges"] = [None if v is None else f"${v:,.2f}" for v in csv.MonthlyCharges]
        csv.loc[rng.random(len(csv)) < 0.05, "customer_id"] = None
    csv.to_csv(csv_path, index=False)
    records = [
        {
            "id": r.customer_id, "tenure": r.tenure_months, "updated_at": r.updated_at,
            "plan": {"contract": r.contract, "payment_method": r.payment_method,
                     "monthly_charges": r.monthly_charges},
            "support": {"calls_90d": r.support_calls}, "churned": bool(r.churned),
        }
        for r in api.itertuples()
    ]
    dump = {"exported_at": end.isoformat(), "source": "billing-api", "customers": records}
    json_path.write_text(json.dumps(dump, default=_plain, indent=1))


def write_empty(csv_path: Path, json_path: Path, end: datetime) -> None:
    """Write a batch in which neither source sent a record: the CSV's header, an empty dump."""
    csv_path.write_text(",".join(COLUMNS) + "\n")
    dump = {"exported_at": end.isoformat(), "source": "billing-api", "customers": []}
    json_path.write_text(json.dumps(dump, indent=1))


def _plain(value: object) -> object:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {value!r} to JSON")


def dropped(landing: Path) -> list[Path]:
    """The exports a user put in ``landing`` itself: its ``*.csv`` files, then its ``*.json``
    files, each sorted by name. The batch folders below it are not read."""
    return sorted(landing.glob("*.csv")) + sorted(landing.glob("*.json"))


def load_files(paths: list[Path]) -> pd.DataFrame:
    """The CSV and JSON exports at ``paths``, as text columns plus ``source`` (the file name).

    Values stay text here: the raw layer keeps what the sources sent, and typing them is
    validation's job, where a value that does not parse can be reported instead of guessed.
    """
    import pandas as pd

    frames = []
    for path in paths:
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=True)
        else:
            payload = json.loads(path.read_text())
            records = payload["customers"] if isinstance(payload, dict) else payload
            frame = pd.json_normalize(records).rename(columns=JSON_FIELDS)
        frame["source"] = path.name
        if len(frame):  # an empty export adds no rows (and pandas warns on concatenating it)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "source"], dtype=object)
    raw = pd.concat(frames, ignore_index=True)
    # Text with missing values left missing; object dtype holds on pandas 2 and 3 alike.
    return raw.astype(object).apply(lambda col: col.map(_text))


def _text(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)
