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
