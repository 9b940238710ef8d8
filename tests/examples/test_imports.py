"""The examples import their heavy libraries inside the tasks that use them, so reading a
pipeline (`cadenza show`, `plan`, the UI) and a fully cached run never load them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEAVY = ("pandas", "numpy", "pyarrow", "sklearn", "scipy", "matplotlib", "fastapi")
# Runs the cadenza CLI in this interpreter, then prints which heavy libraries it loaded.
PROBE = f"""
import atexit, sys
atexit.register(lambda: print("loaded:", [m for m in {HEAVY!r} if m in sys.modules]))
from cadenza.cli import main
sys.argv = ["cadenza", *sys.argv[1:]]
main()
"""


def cadenza(*args: str, cwd: Path) -> str:
    """Run the CLI in a fresh process with its store in ``cwd``; its output, which ends with
    the probe's line."""
    env = {**os.environ, "CADENZA_HOME": str(cwd / ".cadenza")}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("example", ["churn", "prices", "starter"])
def test_show_and_plan_load_no_heavy_library(example: str, tmp_path: Path) -> None:
    folder = str(EXAMPLES / example)
    assert cadenza("show", folder, cwd=tmp_path).splitlines()[-1] == "loaded: []"
    assert cadenza("plan", folder, cwd=tmp_path).splitlines()[-1] == "loaded: []"


def test_a_fully_cached_churn_run_loads_no_heavy_library(tmp_path: Path) -> None:
    args = ("run", str(EXAMPLES / "churn"), "--approve", "promote_gate", "-q",
            "--param", "rows=300", "--param", "cv_folds=2", "--param", "batch_date=2026-02-01")
    first = cadenza(*args, cwd=tmp_path)
    assert "success" in first and "'pandas'" in first.splitlines()[-1]
    again = cadenza(*args, cwd=tmp_path)
    assert "success" in again
    assert again.splitlines()[-1] == "loaded: []"
