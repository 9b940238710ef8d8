"""The tutorial's churn sequence, run for real through the CLI in a copy of the example: a
manual run, a parallel backfill of six 10-minute intervals, a run for another day. Each batch
lands in a folder of its own, so every lake partition holds only its own batch's rows and the
report path printed at the end is that run's own report (docs/tutorial.md, section 7)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"
DAY = datetime(2026, 1, 1, tzinfo=UTC)
INTERVALS = [(DAY + timedelta(minutes=m), DAY + timedelta(minutes=m + 10))
             for m in range(0, 60, 10)]


def cadenza(*args: str, cwd: Path, code: int = 0) -> str:
    """Run the CLI as a user would, in ``cwd`` with its store there; its output. A run left
    waiting at a gate is not a success: it exits 1."""
    env = {**os.environ, "CADENZA_HOME": str(cwd / ".cadenza"), "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "cadenza", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout


def printed_paths(output: str) -> dict[str, Path]:
    """The declared files a run printed at its end: {"evaluate.report": path, ...}."""
    return {m[1]: Path(m[2]) for m in re.finditer(r"^  (\w+\.\w+): (/.+)$", output, re.M)}


def reported(page: str) -> tuple[str, datetime, datetime]:
    """The batch a report names, and the first and last update of its customers."""
    found = re.search(r"Batch (\S+): customers updated from\n(\S+) to (\S+)\.", page)
    assert found, page[:1000]
    return found[1], datetime.fromisoformat(found[2]), datetime.fromisoformat(found[3])


def updated(part: Path) -> pd.Series:
    return pd.to_datetime(pd.read_parquet(part)["updated_at"], utc=True, format="ISO8601")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tutorial")
    shutil.copytree(EXAMPLE, root / "churn", ignore=shutil.ignore_patterns("__pycache__"))
    first = cadenza("run", "churn", "--approve", "promote_gate", cwd=root)
    backfill = cadenza("backfill", "churn", "--start", "2026-01-01T00:00", "--end",
                       "2026-01-01T01:00", "--parallel", "2", cwd=root, code=1)
    assert backfill.count("waiting") == len(INTERVALS)  # each stops at promote_gate
    last = cadenza("run", "churn", "-p", "batch_date=2026-01-09", "--no-wait", cwd=root,
                   code=1)
    return {"root": root, "first": first, "last": last}


def test_every_backfilled_interval_has_its_own_part_and_nothing_else(
        project: dict[str, Any]) -> None:
    partition = project["root"] / "lake" / "raw" / "date=2026-01-01"
    parts = sorted(partition.glob("*.parquet"))
    windows = []
    for part in parts:
        when = updated(part)
        found = [w for w in INTERVALS if w[0] <= when.min() and when.max() < w[1]]
        assert found, f"{part.name} holds rows from {when.min()} to {when.max()}: two batches"
        windows.append(found[0][0])
    assert sorted(windows) == [w[0] for w in INTERVALS]  # six parts, one per interval


def test_each_day_partition_holds_only_that_days_rows(project: dict[str, Any]) -> None:
    lake = project["root"] / "lake" / "raw"
    days = {p.name for p in lake.iterdir()}
    # the first run's batch is yesterday's, by the clock when it ran
    assert len(days) == 3 and {"date=2026-01-01", "date=2026-01-09"} <= days
    for folder in lake.iterdir():
        day = datetime.fromisoformat(folder.name.removeprefix("date=")).replace(tzinfo=UTC)
        parts = list(folder.glob("*.parquet"))
        assert parts
        for part in parts:
            when = updated(part)
            assert day <= when.min() and when.max() < day + timedelta(days=1), part


def test_the_report_printed_at_the_end_is_this_runs_own(project: dict[str, Any]) -> None:
    last = project["last"]
    run_id = re.search(r"^run (churn-\S+) waiting", last, re.M)
    assert run_id, last
    report = printed_paths(last)["evaluate.report"]
    assert report.is_file() and "2026-01-09" in report.parts
    page = report.read_text()
    batch, first_update, last_update = reported(page)
    day = datetime(2026, 1, 9, tzinfo=UTC)
    assert batch == "manual/2026-01-09"
    assert day <= first_update <= last_update < day + timedelta(days=1)
    assert f"Run {run_id[1]};" in page
    first = printed_paths(project["first"])["evaluate.report"]
    assert first != report and first.is_file()
    assert reported(first.read_text())[0] == "manual"


def test_each_batch_landed_in_a_folder_of_its_own(project: dict[str, Any]) -> None:
    root = project["root"]
    for start, end in INTERVALS:
        folder = root / "landing" / f"{start:%Y-%m-%dT%H%M}"
        rows = pd.read_csv(folder / "crm_export.csv", dtype=str)
        when = pd.to_datetime(rows["updated_at"], utc=True, format="ISO8601")
        assert start <= when.min() and when.max() < end
        report = (root / "reports" / folder.name / "churn.html").read_text()
        batch, first_update, last_update = reported(report)
        assert batch == folder.name and start <= first_update <= last_update < end
    assert not list((root / "landing").glob("*.csv"))  # nothing shared at the top
