"""benchmarks/postgres.py and benchmarks/claims.py run (smoke tests, small; no timing is
asserted), and the claims check fails when the guard is removed."""

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


CLAIMS = Path(__file__).parents[2] / "benchmarks" / "claims.py"


def _claims(server: PostgresServer, *flags: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, str(CLAIMS), "--dsn", server.dsn, "--runs", "150", "--processes",
         "3", "--json", *flags],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_the_claims_benchmark_claims_each_run_once(postgres_server: PostgresServer) -> None:
    for flags in ((), ("--contended",)):
        code, report = _claims(postgres_server, *flags)
        assert code == 0 and report["once_each"] is True, report
        assert report["claimed_twice"] == report["never_claimed"] == []
        assert sum(report["won"]) == 150  # type: ignore[arg-type]


def test_the_claims_benchmark_finds_duplicates_without_the_guard(
    postgres_server: PostgresServer
) -> None:
    """The check can fail: claims made as a read then a write, with no lock between them,
    claim runs twice, and the benchmark says so (exit code 1)."""
    code, report = _claims(postgres_server, "--unguarded")
    assert code == 1 and report["once_each"] is False
    assert report["claimed_twice"] and report["epoch_not_1"]


WEB = Path(__file__).parents[2] / "benchmarks" / "web_postgres.py"


def test_the_web_benchmark_times_every_path_on_both_stores(postgres_server: PostgresServer,
                                                           tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(WEB), "--dsn", postgres_server.dsn, "--dir", str(tmp_path),
         "--runs", "40", "--tasks", "8", "--reps", "1", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["copied"]["runs"] == 41 and report["copied"]["task_instances"] > 0
    paths = [row["path"] for row in report["rows"]]
    assert paths[0] == paths[-1] == "/health" and "/pipelines/orders/plan" in paths
    assert all(row["postgres_ms"] > 0 and row["sqlite_ms"] > 0 for row in report["rows"])
    with postgres_server.connect() as db:  # its database is gone
        names = db.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench_%'")
        assert names.fetchall() == []
