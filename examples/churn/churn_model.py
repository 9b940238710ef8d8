"""Model building for the churn example: two candidates, cross-validated, the better one kept.

Every candidate is ``Pipeline([preprocessor, classifier])``, so cross-validation refits the
imputer, scaler and encoder inside each fold and the held-out rows never shape them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from churn_features import FEATURES, make_preprocessor

if TYPE_CHECKING:  # numpy, pandas and scikit-learn are imported where they are used
    import pandas as pd
    from sklearn.pipeline import Pipeline as SkPipeline

MODELS = ("logistic_regression", "gradient_boosting")
REFERENCE_ROWS = 2000  # training rows kept with the model, for the drift monitor


def candidate(name: str) -> Any:
    """A fresh, unfitted classifier of the named kind."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if name == "logistic_regression":
        return LogisticRegression(max_iter=1000, solver="lbfgs")
    if name == "gradient_boosting":
        return GradientBoostingClassifier(
            n_estimators=100, max_depth=2, learning_rate=0.1, random_state=0
        )
    raise ValueError(f"No candidate model is named {name!r}; choose one of {MODELS}.")


def scoring() -> dict[str, Any]:
    """What cross-validation measures, by name (Brier is negated: scikit-learn maximises)."""
    from sklearn.metrics import make_scorer, precision_score, recall_score

    return {
        "roc_auc": "roc_auc",
        "precision": make_scorer(precision_score, zero_division=0),
        "recall": make_scorer(recall_score, zero_division=0),
        "brier": "neg_brier_score",
    }


def train(features: pd.DataFrame, folds: int) -> dict[str, Any]:
    """Cross-validate each candidate on the training rows, refit the best by ROC AUC on all of
    them, and score it on the held-out rows. Returns the model with everything needed to judge
    it later: CV scores, held-out metrics and predictions, and a reference sample."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_validate

    train_rows = features[features["split"] == "train"]
    test_rows = features[features["split"] == "test"]
    x, y = train_rows[FEATURES], train_rows["churned"].to_numpy()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    scores: dict[str, dict[str, Any]] = {}
    metrics = scoring()
    for name in MODELS:
        found = cross_validate(pipeline(candidate(name)), x, y, cv=cv, scoring=metrics)
        scores[name] = {
            metric: float(np.mean(found[f"test_{metric}"])) * (-1 if metric == "brier" else 1)
            for metric in metrics
        } | {"roc_auc_folds": [float(v) for v in found["test_roc_auc"]]}
    best = max(scores, key=lambda n: scores[n]["roc_auc"])
    model = pipeline(candidate(best)).fit(x, y)
    majority = round(float(y.mean()))
    holdout = test_rows[["customer_id", *FEATURES, "churned"]].copy()
    holdout["probability"] = model.predict_proba(holdout[FEATURES])[:, 1]
    return {
        "model": model,
        "model_name": best,
        "cv": scores,
        "holdout": holdout_metrics(holdout["churned"], holdout["probability"], majority),
        "holdout_rows": holdout,
        "reference": x.sample(min(len(x), REFERENCE_ROWS), random_state=0),
        "rows": {"train": len(train_rows), "test": len(test_rows)},
    }


def pipeline(classifier: Any) -> SkPipeline:
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline as SkPipeline

    return SkPipeline([("prep", make_preprocessor()), ("model", clone(classifier))])


def holdout_metrics(y: pd.Series, probability: pd.Series, majority: int) -> dict[str, float]:
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    predicted = (probability >= 0.5).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, probability)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(y, predicted)),
        "brier": float(brier_score_loss(y, probability)),
        "baseline_accuracy": float(accuracy_score(y, np.full(len(y), majority))),
        "churn_rate": float(np.mean(y)),
    }


def auc_on(model: Any, holdout: pd.DataFrame) -> float:
    """ROC AUC of any stored model on these held-out rows: champion and challenger are
    compared on the same data, not on the different batches they were each scored on."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(holdout["churned"], model.predict_proba(holdout[FEATURES])[:, 1]))


def importances(model: SkPipeline) -> pd.Series:
    """Feature importance by transformed feature: impurity importance for boosting, absolute
    coefficients (on scaled inputs) for logistic regression."""
    import numpy as np
    import pandas as pd

    names = model.named_steps["prep"].get_feature_names_out()
    last = model.named_steps["model"]
    values = getattr(last, "feature_importances_", None)
    if values is None:
        values = np.abs(last.coef_[0])
    return pd.Series(values, index=names).sort_values(ascending=False)
