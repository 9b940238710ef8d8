"""Customer churn prediction in 8 steps, every 10 minutes.

    ingest -> store_raw -> validate -> prepare -> transform -> feature_store -> train
           -> evaluate -> promote_gate -> promote

1 land, ingest: generate a batch (a CSV export and a JSON API dump) into a folder of its own
  under landing/, then read it
2 store_raw: append it to the parquet lake, lake/raw/date=YYYY-MM-DD/
3 validate: type the text; hard rules fail the run with a report, soft issues warn
4 prepare: dedupe, fix types, impute by rule
5 transform: feature engineering (the fitted part, a ColumnTransformer, lives in the model)
6 feature_store: versioned parquet keyed by customer_id and as_of; get_features() reads it
7 data versioning: every output above is a cadenza artifact with a content hash and lineage
8 train, evaluate (HTML report), a gate, and promote: the new model becomes `active` only if
  it beats the active one on this batch's held-out customers

Run it:  cadenza run examples/churn --approve promote_gate
Paths (landing/, lake/, features/, reports/) are relative to the project directory, the
folder holding .cadenza/. Each batch lands in, and reports to, a folder named after it (BATCH
below), so runs of different batches, even at the same time, never read each other's files.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The helper modules import pandas, scikit-learn and matplotlib inside the functions that use
# them, so `cadenza show`, `plan` and a fully cached run never load those libraries.
import churn_features as features
import churn_generate as sources
import churn_model as model
import churn_quality as quality
import churn_report as report

from cadenza import Param, Pipeline, Retry, checks, ctx
from cadenza.alerts import LogNotifier
from cadenza.artifacts import active, load, versions
from cadenza.artifacts import promote as set_active
from cadenza.checks import CheckResult

if TYPE_CHECKING:
    import pandas as pd

PIPELINE = "churn"
LANDING = Path("landing")
LAKE = Path("lake") / "raw"
# A batch's folder, from the run's fields (docs/caching.md): its data interval's start
# (2026-01-01T0010), or "manual" for a manual run, then the batch_date param if one is given:
# landing/2026-01-01T0010/, landing/manual/, landing/manual/2026-01-09/.
BATCH = "{interval_start:%Y-%m-%dT%H%M}/{params[batch_date]}"
SOURCES = {"csv": f"{LANDING}/{BATCH}/{sources.CSV_FILE}",
           "json": f"{LANDING}/{BATCH}/{sources.JSON_FILE}"}
REPORT = f"reports/{BATCH}/churn.html"
FRESHNESS = "26h"  # a manual run covers yesterday, up to today 00:00 UTC: a day and slack

pipe = Pipeline(
    PIPELINE,
    schedule="*/10 * * * *",
    timezone="UTC",
    catchup=False,
    max_active_runs=1,
    description="Customer churn: ingest two sources, validate, build features, train, promote.",
    params={
        "rows": Param(1000, min=200, max=200_000, description="customers per generated batch"),
        "seed": Param(7, description="generator seed, mixed with the batch date"),
        "batch_date": Param("", description="YYYY-MM-DD to generate; default the run's "
                            "interval, or yesterday (UTC) for a manual run"),
        "generate": Param(True, description="generate this batch's source files; false "
                          "reads the CSV and JSON files you put in landing/ instead"),
        "shift": Param(False, description="generate a drifted population (drift demo)"),
        "corrupt": Param(False, description="generate a broken CSV export (validation demo)"),
        "cv_folds": Param(5, min=2, max=10, description="cross-validation folds"),
    },
    defaults={"retries": Retry(2, backoff=0.5)},
    alerts=[LogNotifier()],
)


def batch_window(batch_date: str, interval: tuple[str | None, str | None]) -> tuple[datetime,
                                                                                  datetime]:
    """The [start, end) the batch covers: the given day, the run's data interval, or
    yesterday (UTC) for a manual run, so a rerun on the same day is the same batch."""
    if batch_date:
        start = datetime.fromisoformat(batch_date).replace(tzinfo=UTC)
        return start, start + timedelta(days=1)
    if interval[0] and interval[1]:
        return datetime.fromisoformat(interval[0]), datetime.fromisoformat(interval[1])
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=1), end


# ---- 1. ingestion ----------------------------------------------------------------------------


@pipe.task(cache="interval", outputs=SOURCES)  # one batch per interval, kept
def land(ctx: Any, rows: int, seed: int, batch_date: str, generate: bool, shift: bool,
         corrupt: bool) -> dict[str, Any]:
    """Write this batch's source files, a CSV export and a JSON API dump, into its own folder
    under landing/ (BATCH), empty with generate=false. A manual run without batch_date
    generates yesterday's batch the first time and keeps it; pass --param
    batch_date=YYYY-MM-DD for another day."""
    start, end = batch_window(batch_date, (ctx.interval_start, ctx.interval_end))
    csv, dump = ctx.outputs["csv"], ctx.outputs["json"]
    if generate:
        mixed = int(hashlib.sha256(f"{seed}:{start.isoformat()}".encode()).hexdigest()[:8], 16)
        sources.write_batch(csv, dump, rows, mixed, start, end, shift, corrupt)
    else:  # the batch is what the user put in landing/ itself: ingest reads that
        sources.write_empty(csv, dump, end)
    folder = csv.parent.relative_to(ctx.root)
    ctx.log.info("%s %s for [%s, %s)", "generated" if generate else "no batch generated in",
                 folder, start, end)
    return {"batch": str(folder), "start": start.isoformat(), "end": end.isoformat(),
            "files": [str(p.relative_to(ctx.root)) for p in (csv, dump)]}


# Dropped files are part of ingest's key: it re-runs when one appears, changes or goes.
@pipe.task(inputs=[f"{LANDING}/*.csv", f"{LANDING}/*.json"])
def ingest(land: dict[str, Any], generate: bool, ctx: Any) -> pd.DataFrame:
    """Read this batch: the files land wrote in this run's folder, or with generate=false
    the CSV and JSON files put in landing/ itself."""
    files = [ctx.root / name for name in land["files"]]
    if not generate:
        files = sources.dropped(ctx.root / LANDING)
        if not files:
            raise FileNotFoundError(
                f"No *.csv or *.json file in {str(ctx.root / LANDING)!r} to read with "
                "generate=false. Put an export there, or run with --param generate=true."
            )
    raw = sources.load_files(files)
    ctx.log.info("read %d rows from %s", len(raw), [str(f.relative_to(ctx.root)) for f in files])
    return raw


# ---- 2. raw storage --------------------------------------------------------------------------


@pipe.task  # writes outside cadenza, idempotently: a lost file comes back with --force
def store_raw(ingest: pd.DataFrame, land: dict[str, Any], ctx: Any) -> pd.DataFrame:
    """Append the batch to lake/raw/date=YYYY-MM-DD/ (the day its window starts) as a file
    named by its content, never rewriting one; return the batch as read back from the lake."""
    import pandas as pd

    start = datetime.fromisoformat(land["start"])
    data = ingest.to_parquet(index=False)
    folder = ctx.root / LAKE / f"date={start:%Y-%m-%d}"
    path = folder / f"part-{hashlib.sha256(data).hexdigest()[:16]}.parquet"
    if path.exists():
        ctx.log.info("%s already holds this batch", path.relative_to(ctx.root))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a file
        ctx.log.info("appended %d rows to %s", len(ingest), path.relative_to(ctx.root))
    return pd.read_parquet(path)


# ---- 3. validation ---------------------------------------------------------------------------


@pipe.task
def validate(store_raw: pd.DataFrame) -> pd.DataFrame:
    """Type the raw text; the checks on this task decide whether the batch goes on."""
    return quality.parse(store_raw)


# Hard rules: a batch breaking one fails here, with the check's report as the task's error.
pipe.check("validate", checks.schema(quality.TYPED_SCHEMA))
pipe.check("validate", checks.not_null(["customer_id", "churned", "updated_at"]))
pipe.check("validate", quality.all_values_parse, name="all_values_parse")
pipe.check("validate", checks.row_count(min=100))
# Soft issues: recorded with the attempt and alerted; preparation handles them.
pipe.check("validate", checks.unique("customer_id"), severity="warn")
pipe.check("validate", checks.in_range("monthly_charges", 0, 500), severity="warn")
pipe.check("validate", checks.in_range("tenure_months", 0, 120), severity="warn")
pipe.check("validate", quality.known_categories, name="known_categories", severity="warn")
pipe.check("validate", quality.null_rate, name="null_rate", severity="warn")
pipe.check("validate", checks.freshness("updated_at", FRESHNESS), severity="warn")


# ---- 4. preparation, 5. transformation ------------------------------------------------------


@pipe.task
def prepare(validate: pd.DataFrame) -> pd.DataFrame:
    """Dedupe (same record from both sources, then the latest per customer), fix types,
    turn out-of-range values into missing ones, impute by rule."""
    return features.prepare(validate)


@pipe.task
def transform(prepare: pd.DataFrame) -> pd.DataFrame:
    """Engineer features per customer, stamped as_of its update, with a stable train/test
    split by customer id."""
    return features.engineer(prepare)


@pipe.check("transform", severity="warn", name="psi_drift_vs_active_model")
def drift_vs_active(batch: pd.DataFrame) -> CheckResult:
    """PSI per feature between the active model's training rows and this batch (> 0.2 warns).
    The reference moves with each promotion, so the check is built when it runs."""
    if active(PIPELINE, "train", home=ctx.home) is None:
        return CheckResult(True, "no active model yet: nothing to compare", {"psi": {}})
    reference = load(PIPELINE, "train", home=ctx.home)["reference"]
    return checks.psi_drift(reference, features.FEATURES, threshold=0.2)(batch)


# ---- 6. feature store ------------------------------------------------------------------------


@pipe.task  # writes outside cadenza, idempotently, like store_raw
def feature_store(transform: pd.DataFrame, ctx: Any) -> dict[str, Any]:
    """Append the batch's features to features/customers/; read them with
    churn_features.get_features(ids, as_of)."""
    path = features.write_features(transform, ctx.root)
    ctx.log.info("feature store: %s", path)
    return {"path": str(path), "rows": len(transform),
            "as_of_max": transform["as_of"].max().isoformat()}


# ---- 8. model building (7, versioning, is every return value above) ------------------------


@pipe.task
def train(transform: pd.DataFrame, feature_store: dict[str, Any], cv_folds: int, ctx: Any
          ) -> dict[str, Any]:
    """Cross-validate logistic regression and gradient boosting on the training customers;
    keep the better one, scored on the held-out ones. Its scores are logged as metrics: the
    UI shows them on the task's page and on the model's."""
    bundle = model.train(transform, cv_folds)
    ctx.log_metric("cv_roc_auc", bundle["cv"][bundle["model_name"]]["roc_auc"])
    for name in ("roc_auc", "precision", "recall", "f1", "accuracy", "brier"):
        ctx.log_metric(f"holdout_{name}", bundle["holdout"][name])
    bundle["features"] = feature_store
    bundle["updated"] = [transform["as_of"].min().isoformat(),  # what the report says
                         transform["as_of"].max().isoformat()]
    return bundle


@pipe.task(outputs={"report": REPORT})
def evaluate(train: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Write the batch's report, reports/BATCH/churn.html (ROC, importance, confusion
    matrix, metric history), and return the metrics."""
    batch = ctx.outputs["report"].parent.relative_to(ctx.root / "reports").as_posix()
    metrics = {
        "run_id": ctx.run_id, "batch": batch, "updated": train["updated"],
        "model": train["model_name"], "holdout": train["holdout"],
        "cv": train["cv"], "rows": train["rows"],
        "cv_roc_auc": train["cv"][train["model_name"]]["roc_auc"],
    }
    history = [_point(load(PIPELINE, "evaluate", alias=None, version=v.hash, home=ctx.home))
               for v in reversed(versions(PIPELINE, "evaluate", home=ctx.home)[:19])]
    history.append(_point(metrics))
    text = report.render(metrics, train, model.importances(train["model"]), history)
    ctx.outputs["report"].write_text(text)
    print(f"report: {ctx.outputs['report']}")
    return metrics


def _point(metrics: dict[str, Any]) -> dict[str, float]:
    return {"roc_auc": metrics["holdout"]["roc_auc"], "cv_roc_auc": metrics["cv_roc_auc"],
            "brier": metrics["holdout"]["brier"]}


pipe.gate("promote_gate", after=["evaluate"], message="Promote this churn model?")


@pipe.task(after=["promote_gate"])  # once per model: a rollback sticks
def promote(train: dict[str, Any], evaluate: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Make this run's model `active` if it beats the active one on this batch's held-out
    customers (the first model always wins); log the decision."""
    mine = _output_hash(ctx, "train")
    champion = active(PIPELINE, "train", home=ctx.home)
    challenger_auc = evaluate["holdout"]["roc_auc"]
    decision: dict[str, Any] = {"version": mine, "challenger_auc": challenger_auc,
                                "champion": champion, "champion_auc": None}
    if champion == mine:
        decision |= {"promoted": False, "reason": "this model is already active"}
    elif champion is None:
        set_active(PIPELINE, "train", mine, by=f"run {ctx.run_id}", home=ctx.home)
        decision |= {"promoted": True, "reason": "first model"}
    else:
        old = load(PIPELINE, "train", home=ctx.home)["model"]
        decision["champion_auc"] = model.auc_on(old, train["holdout_rows"])
        better = challenger_auc > decision["champion_auc"]
        if better:
            set_active(PIPELINE, "train", mine, by=f"run {ctx.run_id}", home=ctx.home)
        decision |= {"promoted": better, "reason": (
            f"held-out ROC AUC {challenger_auc:.4f} vs active {decision['champion_auc']:.4f}")}
    ctx.log.info("%s %s: %s", "promoted" if decision["promoted"] else "kept the active model;",
                 mine[:12], decision["reason"])
    return decision


def _output_hash(ctx: Any, task: str) -> str:
    """The content hash of ``task``'s output in this run. cadenza hands a task its inputs'
    values but not their hashes, so ask the store."""
    from cadenza.workspace import Workspace

    ws = Workspace.open(ctx.home)
    try:
        found = [ti.output for ti in ws.store.task_instances(ctx.run_id) if ti.task == task]
    finally:
        ws.close()
    if not found or found[0] is None:
        raise RuntimeError(f"run {ctx.run_id} has no output of {task!r} to promote")
    return found[0]
