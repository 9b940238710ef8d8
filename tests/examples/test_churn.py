"""The churn example end to end on small data: it learns, it caches, it refuses a broken
batch, it notices drift, its feature store reads point-in-time, and each batch keeps files of
its own."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cadenza._loader import load_pipeline
from cadenza.artifacts import active

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"
SMALL = {"rows": 600, "cv_folds": 3, "batch_date": "2026-01-05"}
UPSTREAM = ["land", "ingest", "store_raw", "validate", "prepare", "transform"]
SOURCES = ["billing_api_dump.json", "crm_export.csv"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One project folder, six runs in the order a user would make them."""
    pipe = load_pipeline(str(EXAMPLE))
    root = tmp_path_factory.mktemp("churn")
    home = root / ".cadenza"

    def run(**params: Any) -> Any:
        return pipe.run(home=home, params={**SMALL, **params}, approve=["promote_gate"])

    found: dict[str, Any] = {"root": root, "home": home}
    found["first"] = run()
    found["again"] = run()
    found["shifted"] = pipe.run(home=home, only=UPSTREAM,
                                params={**SMALL, "batch_date": "2026-01-06", "shift": True})
    found["next_day"] = run(batch_date="2026-01-07")
    found["corrupt"] = run(batch_date="2026-01-08", corrupt=True)
    # Another batch's export copied over this one's: the cached land puts its own back.
    mine = root / "landing" / "manual" / "2026-01-05" / "crm_export.csv"
    found["landed"] = mine.read_bytes()
    shutil.copy(root / "landing" / "manual" / "2026-01-07" / "crm_export.csv", mine)
    found["restored"] = run()
    return found


def check(result: Any, task: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in result.tasks[task].attempts[-1].checks if c["check"] == name]
    return found


def test_the_model_beats_the_majority_baseline(runs: dict[str, Any]) -> None:
    first = runs["first"]
    assert first.ok, first
    assert {t.state for t in first.tasks.values()} == {"success"}
    holdout = first.output("evaluate")["holdout"]
    assert holdout["roc_auc"] >= 0.75
    assert holdout["accuracy"] > holdout["baseline_accuracy"] + 0.05
    assert 0 < holdout["brier"] < 0.25
    bundle = first.output("train")
    assert set(bundle["cv"]) == {"logistic_regression", "gradient_boosting"}
    assert len(bundle["cv"]["gradient_boosting"]["roc_auc_folds"]) == 3


def test_the_first_model_is_promoted_and_later_ones_only_when_better(
        runs: dict[str, Any]) -> None:
    first = runs["first"].output("promote")
    assert first["promoted"] and first["reason"] == "first model"
    assert first["version"] == runs["first"].tasks["train"].output
    later = runs["next_day"].output("promote")
    assert later["champion"] == first["version"]
    assert later["promoted"] == (later["challenger_auc"] > later["champion_auc"])
    expected = later["version"] if later["promoted"] else first["version"]
    assert active("churn", "train", home=runs["home"]) == expected


def test_the_report_embeds_its_plots(runs: dict[str, Any]) -> None:
    page = (runs["root"] / "reports" / "manual" / "2026-01-05" / "churn.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert "gradient_boosting" in page and "logistic_regression" in page
    assert "Batch manual/2026-01-05: customers updated from\n2026-01-05" in page


def test_each_batch_reports_to_a_file_of_its_own(runs: dict[str, Any]) -> None:
    reports = runs["root"] / "reports" / "manual"
    assert sorted(p.name for p in reports.iterdir()) == ["2026-01-05", "2026-01-07"]
    page = (reports / "2026-01-07" / "churn.html").read_text()
    assert "Batch manual/2026-01-07: customers updated from\n2026-01-07" in page


def test_raw_batches_land_in_an_append_only_date_partition(runs: dict[str, Any]) -> None:
    lake = runs["root"] / "lake" / "raw"
    assert len(list((lake / "date=2026-01-05").glob("*.parquet"))) == 1  # run twice, one file
    assert sorted(p.name for p in lake.iterdir()) == [
        f"date=2026-01-0{d}" for d in (5, 6, 7, 8)  # the corrupt batch is kept too
    ]
    landing = runs["root"] / "landing"
    assert [p.name for p in landing.iterdir()] == ["manual"]  # nothing shared at the top
    batches = sorted((landing / "manual").iterdir())
    assert [p.name for p in batches] == [f"2026-01-0{d}" for d in (5, 6, 7, 8)]
    assert all(sorted(p.name for p in batch.iterdir()) == SOURCES for batch in batches)


def test_a_cached_land_puts_its_own_batch_back_before_ingest_reads_it(
        runs: dict[str, Any]) -> None:
    restored = runs["restored"]
    assert restored.ok
    assert {t.state for t in restored.tasks.values()} == {"cached"}
    mine = runs["root"] / "landing" / "manual" / "2026-01-05" / "crm_export.csv"
    assert mine.read_bytes() == runs["landed"]
    assert restored.output("ingest").equals(runs["first"].output("ingest"))


def test_a_second_run_reuses_every_deterministic_step(runs: dict[str, Any]) -> None:
    again = runs["again"]
    assert again.ok
    states = {name: t.state for name, t in again.tasks.items()}
    # Every step is cached: landing/ is hashed as the input of ingest, the lake and feature
    # store writes are idempotent, promotion happens once per model, and the gate's approval
    # of this very model stands.
    assert set(states.values()) == {"cached"}
    assert again.output("promote") == runs["first"].output("promote")


def test_a_corrupt_batch_fails_validation_with_its_report(runs: dict[str, Any]) -> None:
    corrupt = runs["corrupt"]
    assert corrupt.state == "failed"
    validate = corrupt.tasks["validate"]
    assert validate.state == "failed"
    assert "schema differs: extra MonthlyCharges" in validate.error
    assert "have null customer_id" in validate.error
    assert len(validate.attempts) == 1  # a check failure is not retried
    assert corrupt.tasks["prepare"].state == "upstream_failed"
    assert corrupt.tasks["train"].state == "upstream_failed"


def test_soft_issues_warn_without_failing(runs: dict[str, Any]) -> None:
    first = runs["first"]
    assert check(first, "validate", "known_categories")["passed"] is False
    assert "three-year" in check(first, "validate", "known_categories")["description"]
    assert check(first, "validate", "unique(customer_id)")["severity"] == "warn"
    assert check(first, "validate", "null_rate")["passed"] is True


def test_drift_warns_on_a_shifted_batch_and_not_on_a_normal_one(runs: dict[str, Any]) -> None:
    first = check(runs["first"], "transform", "psi_drift_vs_active_model")
    assert first["passed"] and "no active model" in first["description"]
    shifted = check(runs["shifted"], "transform", "psi_drift_vs_active_model")
    assert runs["shifted"].ok and not shifted["passed"]
    assert shifted["metadata"]["psi"]["monthly_charges"] > 0.2
    normal = check(runs["next_day"], "transform", "psi_drift_vs_active_model")
    assert normal["passed"], normal["description"]
    assert max(normal["metadata"]["psi"].values()) < 0.2


def test_get_features_reads_point_in_time(tmp_path: Path) -> None:
    load_pipeline(str(EXAMPLE))  # puts the example's folder on sys.path
    assert str(EXAMPLE) in sys.path
    from churn_features import FEATURES, get_features, write_features

    def batch(when: str, charges: float) -> pd.DataFrame:
        frame = pd.DataFrame({"customer_id": ["C1", "C2"],
                              "as_of": pd.to_datetime([when, when], utc=True)})
        for name in FEATURES:
            frame[name] = "month-to-month" if name in ("contract", "payment_method") else 1.0
        frame["monthly_charges"] = charges
        return frame

    write_features(batch("2026-01-01T00:00", 50.0), tmp_path)
    write_features(batch("2026-01-03T00:00", 80.0), tmp_path)
    write_features(batch("2026-01-03T00:00", 80.0), tmp_path)  # the same batch again: no-op
    assert len(list((tmp_path / "features" / "customers").iterdir())) == 2

    def charges(as_of: str, ids: list[str]) -> dict[str, float]:
        found = get_features(ids, as_of, root=tmp_path)
        return dict(zip(found.customer_id, found.monthly_charges, strict=True))

    assert charges("2025-12-31", ["C1"]) == {}
    assert charges("2026-01-01", ["C1", "C2"]) == {"C1": 50.0, "C2": 50.0}
    assert charges("2026-01-02T23:59", ["C1"]) == {"C1": 50.0}  # not the later value
    assert charges("2026-01-05", ["C2", "C9"]) == {"C2": 80.0}


def test_the_pipelines_feature_store_serves_its_batch(runs: dict[str, Any]) -> None:
    from churn_features import get_features

    transform = runs["first"].output("transform")
    found = get_features(transform.customer_id, "2026-01-06", root=runs["root"])
    assert len(found) == len(transform)
    assert found["as_of"].max() < pd.Timestamp("2026-01-06", tz="UTC")


def test_a_dropped_export_broken_by_hand_fails_validation_until_fixed(tmp_path: Path) -> None:
    """The tutorial's story: copy a batch into landing/, break it, run with generate=false."""
    pipe = load_pipeline(str(EXAMPLE))
    home = tmp_path / ".cadenza"

    def run(**params: Any) -> Any:
        return pipe.run(home=home, params={**SMALL, **params}, approve=["promote_gate"])

    nothing = pipe.run(home=home, params={**SMALL, "generate": False}, only=["land", "ingest"])
    assert "No *.csv or *.json file in" in (nothing.tasks["ingest"].error or "")
    first = run()
    landing = tmp_path / "landing"
    for name in SOURCES:
        shutil.copy(landing / "manual" / "2026-01-05" / name, landing / name)
    export = landing / "crm_export.csv"
    good = export.read_text()
    export.write_text(good.replace("monthly_charges", "MonthlyCharges", 1))  # the header
    broken = run(generate=False)
    assert broken.tasks["validate"].state == "failed"
    assert "schema differs: extra MonthlyCharges" in (broken.tasks["validate"].error or "")
    export.write_text(good)
    fixed = run(generate=False)
    assert fixed.ok
    assert fixed.tasks["land"].state == "cached" and fixed.tasks["ingest"].state == "success"
    # the same rows as the generated batch: the lake has its part, the rest is reused
    assert fixed.output("store_raw").equals(first.output("store_raw"))
    assert len(list((tmp_path / "lake" / "raw" / "date=2026-01-05").iterdir())) == 2  # +broken
    assert {fixed.tasks[t].state for t in ("validate", "train", "evaluate")} == {"cached"}


def test_train_logs_its_scores_as_metrics(runs: dict[str, Any]) -> None:
    from cadenza.workspace import Workspace

    result = runs["first"]
    ws = Workspace.open(runs["home"])
    try:
        [event] = [e for e in ws.store.events(result.run_id)
                   if e.kind == "metrics_logged" and e.task == "train"]
    finally:
        ws.close()
    logged = event.data["metrics"]
    holdout = result.output("train")["holdout"]
    assert logged["holdout_roc_auc"] == holdout["roc_auc"] and 0.5 < logged["cv_roc_auc"] <= 1
