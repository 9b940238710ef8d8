"""The web benchmark runs (a smoke test on a tiny store; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "web.py"


def bench(folder: Path) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dir", str(folder), "--runs", "40", "--tasks", "8",
         "--reps", "1", "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return found


def test_tiny_web_benchmark_times_every_page_and_reuses_its_store(tmp_path: Path) -> None:
    first = bench(tmp_path)
    store = first["store"]
    assert not store["reused"]
    assert store["counts"]["runs"] == 41  # 39 generated, and two real runs by the engine
    assert store["counts"]["task_instances"] > 39 * 8 * 0.9
    paths = [row["path"] for row in first["rows"]]
    assert paths[0] == paths[-1] == "/health"
    for page in ("/", "/pipelines/orders/plan", "/runs", "/artifacts", "/events"):
        assert page in paths and "/api/v1" + (page if page != "/" else "/pipelines") in paths
    assert any(path.endswith("/attempts/2/log") for path in paths)
    for page in ("/tasks/square", "/tasks/square/items/7", "/preview", "/download", "/open",
                 "/metrics", "/assets", "/gates"):
        assert any(path.endswith(page) for path in paths), page
    # reduced sizes are never judged
    assert {row["verdict"] for row in first["rows"]} == {"-"}
    assert bench(tmp_path)["store"]["reused"]
