"""The benchmark script runs (a smoke test of --quick; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "run.py"


def test_quick_benchmark_runs_every_shape() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shapes = {row["shape"] for row in json.loads(done.stdout)["rows"]}
    # --quick runs each shape small (fan100 for fan1000, sleep8 for sleep32, ...)
    assert {row["shape"][:3] for row in json.loads(done.stdout)["rows"]} >= {"cha", "fan", "sle"}
    assert len(shapes) >= 4


CLI = Path(__file__).parents[1] / "benchmarks" / "cli.py"


def test_quick_cli_benchmark_times_every_command_beside_its_baselines() -> None:
    done = subprocess.run([sys.executable, str(CLI), "--quick", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {row["name"]: row for row in report["rows"]}
    assert set(rows) == {"pass", "graphlib", "help", "one", "fan", "fan-q", "churn"}
    assert report["fan"] == 20
    for row in rows.values():
        assert row["reps"] == 1 and len(row["all_s"]) == 1 and row["median_s"] > 0
        assert row["vs_pass"] > 0 and row["vs_graphlib"] > 0
    assert rows["one"]["fresh"] and not rows["churn"]["fresh"]
    # quick runs judge nothing, but every cadenza row names its target
    assert {t["verdict"] for row in rows.values() for t in row["targets"]} == {"-"}
    assert {name for name, row in rows.items() if row["targets"]} == {"help", "one", "fan",
                                                                      "churn"}


VERIFY = Path(__file__).parents[1] / "benchmarks" / "verify.py"


def test_verification_benchmark_times_a_cached_run_checked_and_not() -> None:
    done = subprocess.run([sys.executable, str(VERIFY), "--repeat", "1", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tasks"] == 1002 and report["repeat"] == 1
    assert report["cached_run_verified_s"] > 0 and report["cached_run_unverified_s"] > 0
    assert report["target_us"] == 5.0


ON_DASK = Path(__file__).parents[1] / "benchmarks" / "on_dask.py"


def test_quick_dask_benchmark_runs_every_shape_beside_its_baseline() -> None:
    import pytest

    pytest.importorskip("distributed", reason="the dask benchmark needs cadenza[dask]")
    done = subprocess.run([sys.executable, str(ON_DASK), "--shape", "all", "--quick", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["shape"]: row for row in json.loads(done.stdout)["rows"]}
    # --quick: fan20, sleep8 (8 x 0.05 s on 4 threads), map200, and fan20 on a scheduler and
    # workers in processes of their own
    assert set(rows) == {"fan20", "sleep8", "map200", "cpu-fan20"}
    assert rows["fan20"]["ratio"] > 0 and rows["fan20"]["ratio_limited"] > 0
    assert rows["sleep8"]["ideal_s"] == 0.1 and rows["sleep8"]["ratio_ideal"] > 0
    assert rows["map200"]["tasks"] == 203 and rows["map200"]["inline_s"] > 0
    assert rows["cpu-fan20"]["runner_cpu_ms_per_task"] > 0
