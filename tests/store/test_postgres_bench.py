"""benchmarks/postgres.py runs (a smoke test on a small fan; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cadenza.testing.postgres import PostgresServer

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "postgres.py"


def test_the_postgres_benchmark_runs_beside_sqlite(postgres_server: PostgresServer) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dsn", postgres_server.dsn, "--tasks", "20",
         "--reps", "2", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["shape"], report["instances"]) == ("fan20", 22)
    for store in ("sqlite", "postgres"):
        assert len(report[store]["all_s"]) == 2 and report[store]["median_s"] > 0
    assert report["verdict"] in ("PASS", "MISS") and report["target_us"] == 100
    with postgres_server.connect() as db:  # the benchmark's databases are gone
        names = db.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench_%'")
        assert names.fetchall() == []
