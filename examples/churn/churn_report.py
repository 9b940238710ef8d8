"""The churn evaluation report: one self-contained HTML file with its plots embedded as PNG.

Figures are drawn with matplotlib's object API on the Agg canvas, never pyplot, so no global
figure state is shared between tasks running on threads.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib, numpy, pandas and scikit-learn are imported where they are used
    import pandas as pd
    from matplotlib.figure import Figure


def _png(fig: Figure) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def roc_plot(holdout: pd.DataFrame, auc: float) -> str:
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(holdout["churned"], holdout["probability"])
    fig = Figure(figsize=(4.5, 4))
    ax = fig.subplots()
    ax.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held-out")
    ax.legend(loc="lower right")
    return _png(fig)


def importance_plot(importance: pd.Series, top: int = 12) -> str:
    from matplotlib.figure import Figure

    shown = importance.head(top)[::-1]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    ax.barh([name.split("__", 1)[-1] for name in shown.index], shown.to_numpy())
    ax.set(title="feature importance", xlabel="importance")
    return _png(fig)


def confusion_plot(holdout: pd.DataFrame) -> str:
    import numpy as np
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(holdout["churned"], holdout["probability"] >= 0.5, labels=[0, 1])
    fig = Figure(figsize=(4, 3.6))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["stays", "churns"],
           yticklabels=["stays", "churns"], xlabel="predicted", ylabel="actual",
           title="confusion matrix (threshold 0.5)")
    return _png(fig)


def history_plot(history: list[dict[str, Any]]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    steps = range(1, len(history) + 1)
    for key, label in (("roc_auc", "held-out ROC AUC"), ("cv_roc_auc", "CV ROC AUC"),
                       ("brier", "Brier score")):
        ax.plot(steps, [h[key] for h in history], marker="o", label=label)
    ax.set(xlabel="evaluation (oldest first)", title="metrics over runs", ylim=(0, 1))
    ax.set_xticks(list(steps))
    ax.legend(loc="lower left")
    return _png(fig)


def render(metrics: dict[str, Any], bundle: dict[str, Any], importance: pd.Series,
           history: list[dict[str, Any]]) -> str:
    holdout = bundle["holdout_rows"]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>"
        for k, v in metrics["holdout"].items()
    )
    cv_rows = "".join(
        f"<tr><td>{html.escape(name)}{' (chosen)' * (name == metrics['model'])}</td>"
        + "".join(f"<td>{s[m]:.3f}</td>" for m in ("roc_auc", "precision", "recall", "brier"))
        + "</tr>"
        for name, s in metrics["cv"].items()
    )
    plots = [
        roc_plot(holdout, metrics["holdout"]["roc_auc"]), importance_plot(importance),
        confusion_plot(holdout), history_plot(history),
    ]
    images = "".join(f'<img alt="plot" src="data:image/png;base64,{p}">' for p in plots)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>churn model evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
td,th{{padding:2px 10px;text-align:left}} img{{margin:6px;border:1px solid #ddd}}</style>
</head><body>
<h1>Churn model: {html.escape(metrics['model'])}</h1>
<p>Batch {html.escape(metrics['batch'])}: customers updated from
{html.escape(metrics['updated'][0])} to {html.escape(metrics['updated'][1])}.</p>
<p>Run {html.escape(metrics['run_id'])}; trained on {metrics['rows']['train']:,} customers,
scored on {metrics['rows']['test']:,} held-out customers. The majority-class baseline is
{metrics['holdout']['baseline_accuracy']:.3f} accurate on the same rows.</p>
<h2>Held-out metrics</h2><table>{rows}</table>
<h2>Cross-validation ({len(next(iter(metrics['cv'].values()))['roc_auc_folds'])} folds,
training rows only)</h2>
<table><tr><th>model</th><th>ROC AUC</th><th>precision</th><th>recall</th><th>Brier</th></tr>
{cv_rows}</table>
<h2>Plots</h2>{images}
</body></html>
"""
