"""The starter example: standard library only, it fits a trend that beats the mean."""

from __future__ import annotations

import json
from pathlib import Path

from cadenza._loader import load_pipeline

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "starter"


def test_the_starter_fits_a_trend_and_writes_its_report(tmp_path: Path) -> None:
    result = load_pipeline(str(EXAMPLE)).run(home=tmp_path / ".cadenza")
    assert result.ok, result
    report = json.loads((tmp_path / "reports" / "starter.json").read_text())
    assert report["beats_baseline"] and report["mae"] < report["baseline_mae"]
    assert report["rows_test"] == 20 and report["slope"] > 0
