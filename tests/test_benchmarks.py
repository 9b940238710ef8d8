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
    assert {"chain100", "fan1000", "fan100k", "sleep32"} <= shapes
