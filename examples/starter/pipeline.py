"""The starter pipeline: ingest -> clean -> train_or_score -> report.

A price series with a trend and noise is generated (no network needed), cleaned, fitted with
an ordinary least-squares line, scored on a held-out tail, and written up as a JSON report.
Standard library only, so it runs on a bare `pip install cadenza`.
"""

from __future__ import annotations

import json
import math
import random
import statistics

from cadenza import Pipeline, Retry, ctx

pipe = Pipeline(
    "starter",
    params={"days": 120, "seed": 7, "holdout": 20},
    defaults={"retries": Retry(2, backoff=0.5)},
    description="Generate a daily price series, clean it, fit a trend line, report the error.",
)


@pipe.task(cache=False)
def ingest(days: int, seed: int) -> list[dict[str, float | None]]:
    """Generate `days` daily prices: a trend, a weekly season, noise and a few gaps."""
    rng = random.Random(seed)
    rows: list[dict[str, float | None]] = []
    for day in range(days):
        price = 100 + 0.4 * day + 3 * math.sin(2 * math.pi * day / 7) + rng.gauss(0, 1.5)
        rows.append({"day": day, "price": None if rng.random() < 0.05 else round(price, 2)})
    ctx.log.info("generated %d rows", len(rows))
    return rows


@pipe.task
def clean(ingest: list[dict[str, float | None]]) -> list[dict[str, float]]:
    """Drop rows without a price and prices outside 4 standard deviations."""
    prices = [r["price"] for r in ingest if r["price"] is not None]
    mean, sd = statistics.fmean(prices), statistics.stdev(prices)
    kept = [
        {"day": float(r["day"]), "price": float(r["price"])}  # type: ignore[arg-type]
        for r in ingest
        if r["price"] is not None and abs(r["price"] - mean) <= 4 * sd
    ]
    print(f"kept {len(kept)} of {len(ingest)} rows")
    return kept


@pipe.task
def train_or_score(clean: list[dict[str, float]], holdout: int) -> dict[str, float]:
    """Fit price = a + b * day on all but the last `holdout` rows; score the rest."""
    train, test = clean[:-holdout], clean[-holdout:]
    fit = statistics.linear_regression([r["day"] for r in train], [r["price"] for r in train])
    errors = [abs(r["price"] - (fit.intercept + fit.slope * r["day"])) for r in test]
    baseline = statistics.fmean(r["price"] for r in train)
    baseline_mae = statistics.fmean(abs(r["price"] - baseline) for r in test)
    return {
        "intercept": fit.intercept, "slope": fit.slope, "mae": statistics.fmean(errors),
        "baseline_mae": baseline_mae, "rows_train": len(train), "rows_test": len(test),
    }


@pipe.task(outputs={"report": "reports/starter.json"})
def report(train_or_score: dict[str, float]) -> str:
    """Write the model and its error beside the naive baseline's to reports/starter.json."""
    better = train_or_score["mae"] < train_or_score["baseline_mae"]
    summary = {**train_or_score, "beats_baseline": better}
    ctx.outputs["report"].write_text(json.dumps(summary, indent=2))
    return str(ctx.outputs["report"])
