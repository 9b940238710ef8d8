"""The prices pipeline: the 7-task orchestration plan, from a price series to a served model.

    generate -> validate -> clean_transform -> feature_engineer -> train_or_score
             -> evaluate_report  (promotes the model to `active` unless it is >10% worse
                                  than a naive baseline)
    serve.py: a FastAPI app answering /predict from the `active` model version

Prices are generated (trend, weekly and yearly seasonality, autocorrelated noise, a few gaps
and spikes), or fetched over HTTP when the `source_url` param is set. See README.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import urllib.request
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prices_forecast import MIN_HISTORY, feature_names, forecast, make_features

from cadenza import Param, Pipeline, Retry, checks
from cadenza.artifacts import active, load, promote, versions
from cadenza.urls import check_url

if TYPE_CHECKING:  # numpy and pandas are imported in the tasks that use them: loading the
    import numpy as np  # pipeline (cadenza show, plan, a cached run) stays fast
    import pandas as pd

PIPELINE, MODEL_TASK = "prices", "train_or_score"
ANCHOR = "2025-01-01"
"""The last day of a generated series when a run has no data interval (a manual run)."""
SCHEMA = {"date": "datetime64[ns]", "price": "float64"}


def source_hosts() -> tuple[str, ...]:
    """The only hosts `source_url` may name (over http or https): a param is input from
    whoever triggers a run, and must not make the pipeline read local files or internal
    services. Set PRICES_SOURCE_HOSTS=prices.example.com,... where the pipeline runs."""
    return tuple(h for h in os.environ.get("PRICES_SOURCE_HOSTS", "").split(",") if h)
MODELS = ("ridge", "gbr", "mean")

pipe = Pipeline(
    PIPELINE,
    every="1h",
    params={
        "seed": Param(7, description="Seed of the generated series (and of the model)."),
        "days": Param(365, min=120, max=5000, description="Days of prices to generate."),
        "noise": Param(1.5, min=0.0, description="Standard deviation of the daily noise."),
        "source_url": Param("", description="Fetch prices (CSV or JSON with date and price "
                            "columns) from this URL instead of generating them."),
        "model": Param("ridge", choices=MODELS, description="ridge or gbr forecast the next "
                       "change; mean always says the training mean (a deliberately poor "
                       "model, for trying the promotion rule)."),
        "holdout": Param(60, min=14, max=365, description="Last days held out to evaluate."),
        "max_degradation": Param(0.10, min=0.0, description="Promote only a model whose MAE "
                                 "is at most this much worse than the naive baseline's."),
    },
    defaults={"retries": Retry(2, backoff=0.5)},
    description="Generate or fetch daily prices, validate, clean, build features, train a "
                "forecaster, evaluate it against a naive baseline and promote it.",
)


# -- 1. ingest / generate ------------------------------------------------------------------


def synthetic_prices(seed: int, days: int, noise: float, end: str = ANCHOR) -> pd.DataFrame:
    """A daily price series: trend + weekly and yearly seasonality + AR(1) noise, with about
    2% of prices missing and two spikes, as a real export would have."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.arange(days, dtype=float)
    slope = rng.uniform(0.03, 0.12)
    weekly = rng.uniform(2.0, 5.0) * np.sin(2 * math.pi * t / 7 + rng.uniform(0, 2 * math.pi))
    yearly = rng.uniform(3.0, 8.0) * np.sin(2 * math.pi * t / 365.25)
    shocks = rng.normal(0.0, noise, days)
    ar = np.zeros(days)
    for i in range(1, days):
        ar[i] = 0.6 * ar[i - 1] + shocks[i]
    price = 100.0 + slope * t + weekly + yearly + ar
    price[rng.choice(days, size=2, replace=False)] *= 1.6  # data-entry spikes
    price[rng.random(days) < 0.02] = np.nan  # missing quotes
    dates = pd.date_range(end=pd.Timestamp(end).normalize(), periods=days, freq="D")
    return pd.DataFrame({"date": dates.astype("datetime64[ns]"), "price": price.round(2)})


def fetch_prices(url: str, timeout: float = 10.0) -> pd.DataFrame:
    """Prices from ``url``: CSV, or JSON as a list of rows, {"prices": [rows]} or columns.

    Column types are left as the source gave them (numbers as float), so validation sees
    what really arrived."""
    import pandas as pd

    check_url(url, hosts=source_hosts())  # before anything is fetched
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
        kind = response.headers.get_content_type()
    if kind == "application/json" or url.split("?")[0].endswith(".json"):
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("prices"), list):
            data = data["prices"]
        frame = pd.DataFrame(data)
    else:
        frame = pd.read_csv(io.BytesIO(body))
    if "date" in frame.columns:
        frame["date"] = pd.to_datetime(frame["date"], errors="coerce").astype("datetime64[ns]")
    if "price" in frame.columns and pd.api.types.is_numeric_dtype(frame["price"]):
        frame["price"] = frame["price"].astype("float64")
    return frame


@pipe.task(cache=False, retries=Retry(3, backoff=0.5, factor=2, retry_on=(OSError,)))
def generate(ctx: Any, seed: int, days: int, noise: float, source_url: str) -> pd.DataFrame:
    """Fetch prices from `source_url` (network errors retried after 0.5, 1 and 2 s), or
    generate `days` of them ending at the run's data interval (or 2025-01-01)."""
    if source_url:
        ctx.log.info("fetching %s (attempt %d)", source_url, ctx.attempt)
        frame = fetch_prices(source_url)
        ctx.log.info("fetched %d rows, columns %s", len(frame), list(frame.columns))
        return frame
    end = ctx.interval_end[:10] if ctx.interval_end else ANCHOR
    frame = synthetic_prices(seed, days, noise, end)
    ctx.log.info("generated %d days ending %s (seed %d)", len(frame), end, seed)
    return frame


# -- 2. validate -----------------------------------------------------------------------------


@pipe.task
def validate(ctx: Any, generate: pd.DataFrame) -> pd.DataFrame:
    """Pass the raw batch on unchanged; the error checks on this task stop a bad batch here,
    with a schema diff, before anything is computed from it."""
    schema = {str(c): str(t) for c, t in generate.dtypes.items()}
    ctx.log.info("batch of %d rows, schema %s", len(generate), schema)
    diff = SCHEMA_CHECK(generate)
    if not diff.passed:  # the same check fails the task below; the log keeps the whole diff
        ctx.log.error("%s; expected %s", diff.description, SCHEMA)
    return generate


SCHEMA_CHECK = checks.schema(SCHEMA)
pipe.check("validate", SCHEMA_CHECK)
pipe.check("validate", checks.not_null("date"))
pipe.check("validate", checks.unique("date"))
pipe.check("validate", checks.in_range("price", lo=0))
pipe.check("validate", checks.row_count(min=120))
pipe.check("validate", checks.not_null("price"), severity="warn", name="price_gaps")


# -- 3. clean & transform --------------------------------------------------------------------


@pipe.task
def clean_transform(ctx: Any, validate: pd.DataFrame) -> pd.DataFrame:
    """One row per calendar day, sorted; spikes (more than 5 robust standard deviations from
    the 7-day rolling median) and gaps filled by time interpolation."""
    import numpy as np
    import pandas as pd

    series = validate.sort_values("date").set_index("date")["price"].asfreq("D")
    missing_days = int(series.isna().sum())
    median = series.rolling(7, center=True, min_periods=3).median()
    deviation = (series - median).abs()
    mad = deviation.rolling(15, center=True, min_periods=5).median() * 1.4826
    spikes = deviation > 5 * mad.clip(lower=1e-9)
    series[spikes] = np.nan
    series = series.interpolate("time").ffill().bfill()
    ctx.log.info("%d rows in, %d days out: filled %d gaps, replaced %d spikes",
                 len(validate), len(series), missing_days, int(spikes.sum()))
    return pd.DataFrame({"date": series.index, "price": series.to_numpy()})


# -- 4. feature engineering ----------------------------------------------------------------


@pipe.task
def feature_engineer(ctx: Any, clean_transform: pd.DataFrame) -> pd.DataFrame:
    """Lags and rolling statistics of the past prices (relative to the last one), the previous
    price, and the target: the change to this day's price."""
    import pandas as pd

    prices = clean_transform["price"]
    frame = pd.concat([clean_transform[["date", "price"]], make_features(prices)], axis=1)
    frame["prev_price"] = prices.shift(1)
    frame["target"] = prices - frame["prev_price"]
    frame = frame.dropna().reset_index(drop=True)
    ctx.log.info("%d rows of %d features", len(frame), len(feature_names()))
    return frame


# -- 5. train ------------------------------------------------------------------------------


def build_estimator(kind: str, seed: int) -> Any:
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "ridge":
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    if kind == "gbr":
        return GradientBoostingRegressor(n_estimators=150, max_depth=3, learning_rate=0.05,
                                         subsample=0.8, random_state=seed)
    return DummyRegressor(strategy="mean")


@pipe.task
def train_or_score(ctx: Any, feature_engineer: pd.DataFrame, clean_transform: pd.DataFrame,
                   model: str, holdout: int, seed: int) -> dict[str, Any]:
    """Fit the forecaster on all but the last `holdout` days; return it with its metadata.

    Every distinct model is kept as a version of this task's output (`cadenza artifacts ls
    --pipeline prices --task train_or_score`)."""
    import numpy as np
    import pandas as pd

    train = feature_engineer.iloc[:-holdout]
    if len(train) < 2 * MIN_HISTORY:
        raise ValueError(
            f"Only {len(train)} rows are left to train on after holding out {holdout} days; "
            f"give more days or a smaller holdout."
        )
    names = feature_names()
    # `mean` predicts price levels (the training mean); the others predict the next change.
    target = "level" if model == "mean" else "change"
    y = train["price"] if target == "level" else train["target"]
    estimator = build_estimator(model, seed).fit(train[names].to_numpy(), y.to_numpy())
    fitted = estimator.predict(train[names].to_numpy())
    train_mae = float(np.mean(np.abs(fitted - y.to_numpy())))
    fingerprint = hashlib.sha256(
        pd.util.hash_pandas_object(train, index=False).to_numpy().tobytes()
        + json.dumps([model, holdout, seed]).encode()
    ).hexdigest()
    ctx.log.info("trained %s on %d rows; train MAE %.3f", model, len(train), train_mae)
    return {
        "estimator": estimator,
        "kind": model,
        "target": target,
        "features": names,
        "fingerprint": fingerprint,
        "trained_rows": len(train),
        "train_start": str(train["date"].iloc[0].date()),
        "train_end": str(train["date"].iloc[-1].date()),
        "train_mae": train_mae,
        "history": [float(p) for p in clean_transform["price"].iloc[-2 * MIN_HISTORY:]],
        "history_end": str(clean_transform["date"].iloc[-1].date()),
        "trained_at": datetime.now().isoformat(timespec="seconds"),
        "run_id": ctx.run_id,
    }


# -- 6. evaluate, report, promote --------------------------------------------------------------


def one_step_predictions(model: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    raw = model["estimator"].predict(frame[model["features"]].to_numpy())
    return raw if model["target"] == "level" else frame["prev_price"].to_numpy() + raw


def version_of(model: dict[str, Any], home: Any) -> str:
    """The stored version (content hash) of ``model``, found by its fingerprint.

    A task is given its inputs' values, not their hashes, and the newest stored version is not
    necessarily this one (a cached or repeated model keeps its first record)."""
    for record in versions(PIPELINE, MODEL_TASK, home=home):
        stored = load(PIPELINE, MODEL_TASK, version=record.hash, home=home)
        if stored.get("fingerprint") == model["fingerprint"]:
            return record.hash
    raise LookupError(f"no stored version of {MODEL_TASK} has fingerprint "
                      f"{model['fingerprint'][:12]}")


@pipe.task(cache=False, outputs={"report": "reports/prices_report.txt",
                                 "plot": "reports/prices.png"})
def evaluate_report(ctx: Any, train_or_score: dict[str, Any], feature_engineer: pd.DataFrame,
                    holdout: int, max_degradation: float) -> dict[str, Any]:
    """Score the model on the held-out days against naive baselines (last value, and the value
    a week before), write a text report and a plot, and promote the model to `active` unless
    its MAE is more than `max_degradation` worse than the better baseline's."""
    import numpy as np

    model = train_or_score
    test = feature_engineer.iloc[-holdout:]
    actual = test["price"].to_numpy()
    predicted = one_step_predictions(model, test)
    seasonal = test["prev_price"].to_numpy() + test["lag_7"].to_numpy()
    mae = {
        "model": float(np.mean(np.abs(predicted - actual))),
        "last_value": float(np.mean(np.abs(test["prev_price"].to_numpy() - actual))),
        "seasonal_naive": float(np.mean(np.abs(seasonal - actual))),
    }
    baseline = min(("last_value", "seasonal_naive"), key=mae.__getitem__)
    limit = mae[baseline] * (1 + max_degradation)
    version = version_of(model, ctx.home)
    before = active(PIPELINE, MODEL_TASK, home=ctx.home)
    promoted = mae["model"] <= limit
    if promoted:
        if before != version:
            promote(PIPELINE, MODEL_TASK, version, home=ctx.home)
        decision = f"PROMOTED: {version[:12]} is the active model"
        ctx.log.info("model %s promoted (MAE %.3f <= %.3f)", version[:12], mae["model"], limit)
    else:
        decision = (f"NOT PROMOTED: MAE {mae['model']:.3f} is more than "
                    f"{max_degradation:.0%} worse than the {baseline} baseline "
                    f"({mae[baseline]:.3f}); active stays "
                    f"{before[:12] if before else 'unset'}")
        ctx.log.warning("model %s not promoted: %s; notify the model owner", version[:12],
                        decision)
    future = forecast(model, model["history"], 30)
    summary = {
        "version": version,
        "model": model["kind"],
        "mae": mae,
        "baseline": baseline,
        "limit": limit,
        "promoted": promoted,
        "active_before": before,
        "active": version if promoted else before,
        "holdout_days": len(test),
        "holdout_start": str(test["date"].iloc[0].date()),
        "holdout_end": str(test["date"].iloc[-1].date()),
    }
    ctx.outputs["report"].write_text(_report_text(summary, model, decision, future))
    _plot(ctx.outputs["plot"], feature_engineer, test, predicted, seasonal, model, future)
    return summary


def _report_text(summary: dict[str, Any], model: dict[str, Any], decision: str,
                 future: list[float]) -> str:
    mae = summary["mae"]
    lines = [
        f"prices model report, run {model['run_id']}",
        "",
        f"model        {summary['model']} (version {summary['version'][:12]}), trained on "
        f"{model['trained_rows']} days {model['train_start']} .. {model['train_end']}",
        f"held out     {summary['holdout_days']} days {summary['holdout_start']} .. "
        f"{summary['holdout_end']}, one-step-ahead MAE:",
        f"  model            {mae['model']:8.3f}",
        f"  last value       {mae['last_value']:8.3f}",
        f"  seasonal naive   {mae['seasonal_naive']:8.3f}   (the price 7 days before)",
        f"baseline     {summary['baseline']}; promotion limit {summary['limit']:.3f}",
        f"decision     {decision}",
        "",
        f"next 7 days after {model['history_end']}: "
        + ", ".join(f"{p:.2f}" for p in future[:7]),
    ]
    return "\n".join(lines) + "\n"


def _plot(path: Any, frame: pd.DataFrame, test: pd.DataFrame, predicted: np.ndarray,
          seasonal: np.ndarray, model: dict[str, Any], future: list[float]) -> None:
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recent = frame.iloc[-3 * len(test):]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(recent["date"], recent["price"], color="0.3", lw=1, label="price (cleaned)")
    ax.plot(test["date"], predicted, color="tab:blue", lw=1.2,
            label=f"{model['kind']} one step ahead")
    ax.plot(test["date"], seasonal, color="tab:orange", lw=0.8, ls=":",
            label="seasonal naive")
    days = pd.date_range(pd.Timestamp(model["history_end"]) + pd.Timedelta(days=1),
                         periods=len(future), freq="D")
    ax.plot(days, future, color="tab:green", lw=1.2, ls="--", label="30-day forecast")
    ax.axvspan(test["date"].iloc[0], test["date"].iloc[-1], color="0.9", label="held out")
    ax.set_ylabel("price")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@pipe.check("evaluate_report", severity="warn", name="promoted")
def _promoted(summary: dict[str, Any]) -> checks.CheckResult:
    """A model left unpromoted is recorded as a warning, which goes to the pipeline's alerts."""
    mae = summary["mae"]
    return checks.CheckResult(
        summary["promoted"],
        "" if summary["promoted"] else
        f"model {summary['version'][:12]} ({summary['model']}) was not promoted: MAE "
        f"{mae['model']:.3f} > limit {summary['limit']:.3f} ({summary['baseline']} "
        f"{mae[summary['baseline']]:.3f})",
        {"mae": mae, "version": summary["version"]},
    )
