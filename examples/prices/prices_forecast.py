"""Features and forecasts for the prices example, shared by the pipeline and the server.

The model predicts the next *change* in price from the recent past, with every feature taken
relative to the last price. Working on changes rather than levels lets tree models (which
cannot extrapolate) follow a trending series, and keeps a linear model well conditioned.

A trained model is a plain dict (a scikit-learn estimator and metadata), so the server needs
only scikit-learn to unpickle it, not this pipeline's module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where it is used, so loading the pipeline stays fast
    import pandas as pd

LAGS = (1, 2, 3, 7, 14)
"""Past prices used: yesterday's is the anchor every other feature is measured from; the
others (two and three days, a week and two weeks before) become differences from it."""
WINDOWS = (7, 28)
"""Rolling windows (in days) for mean and standard deviation of the past prices."""
MIN_HISTORY = max(*LAGS, *WINDOWS)
"""How many past prices a forecast needs."""
MAX_HORIZON = 90


def make_features(prices: pd.Series) -> pd.DataFrame:
    """One row per price: what was known just before it, relative to the last known price.

    Rows without a full history (the first ``MIN_HISTORY``) hold NaNs.
    """
    import pandas as pd

    s = prices.astype("float64").reset_index(drop=True)
    last = s.shift(1)
    columns: dict[str, pd.Series] = {}
    for k in LAGS[1:]:
        columns[f"lag_{k}"] = s.shift(k) - last
    for w in WINDOWS:
        columns[f"mean_{w}"] = last.rolling(w).mean() - last
        columns[f"std_{w}"] = last.rolling(w).std()
    columns["change_1"] = last - s.shift(2)
    frame = pd.DataFrame(columns)
    frame.index = prices.index
    return frame


def feature_names() -> list[str]:
    import pandas as pd

    return list(make_features(pd.Series([0.0] * (MIN_HISTORY + 1))).columns)


def check_history(prices: Sequence[float]) -> list[float]:
    """The prices as floats; ValueError when there are too few or one is not finite."""
    values = [float(p) for p in prices]
    if len(values) < MIN_HISTORY:
        raise ValueError(
            f"a forecast needs at least {MIN_HISTORY} recent prices, got {len(values)}"
        )
    bad = [p for p in values if not math.isfinite(p)]
    if bad:
        raise ValueError(f"prices must be finite numbers, got {bad[0]!r}")
    return values


def predict_next(model: dict[str, Any], history: Sequence[float]) -> float:
    """The next price after ``history`` (at least ``MIN_HISTORY`` prices, oldest first)."""
    import pandas as pd

    window = pd.Series([*history[-(MIN_HISTORY + 1):], math.nan])
    row = make_features(window).iloc[[-1]][model["features"]]
    value = float(model["estimator"].predict(row.to_numpy())[0])
    # most models predict the change from the last price; a "level" model the price itself
    return value if model.get("target") == "level" else float(history[-1]) + value


def forecast(model: dict[str, Any], history: Sequence[float], horizon: int) -> list[float]:
    """``horizon`` prices after ``history``, each step fed the ones predicted before it."""
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"horizon must be between 1 and {MAX_HORIZON}, got {horizon}")
    known = check_history(history)
    out: list[float] = []
    for _ in range(horizon):
        nxt = predict_next(model, known)
        out.append(round(nxt, 4))
        known.append(nxt)
    return out
