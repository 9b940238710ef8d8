"""`cadenza db upgrade` / `db current` and `--db`, through the real CLI in its own process:
SQLite files (new, made by an older cadenza, newer than this one) and a real PostgreSQL
database, where a whole run of a small pipeline is made and read back with the same --db."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cadenza.store.migrations import latest, migrations

GUARD = 120.0
"""Seconds a command may take before the test fails: a guard against hangs."""

PIPELINE = '''
from cadenza import Pipeline

pipe = Pipeline("tiny")


@pipe.task
def numbers() -> list[int]:
    return list(range(5))


@pipe.task
def total(numbers: list[int]) -> int:
    return sum(numbers)
'''


def cadenza(cwd: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """``python -m cadenza ARGS...`` in ``cwd``, with no CADENZA_* from the test's own
    environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    return subprocess.run([sys.executable, "-m", "cadenza", *args], cwd=cwd, text=True,
                          capture_output=True, env={**clean, **(env or {})}, timeout=GUARD,
                          check=False)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()  # a project root: no store above it is found
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    return tmp_path


def _version_1_file(db: Path) -> None:
    """A store as cadenza made it before schema versions were recorded: 0001's tables, a meta
    row saying version 1, and one run."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as old:
        for statement in migrations("sqlite")[0].statements():
            old.execute(statement)
        old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        old.execute("INSERT INTO runs (run_id, pipeline, state, params, created_at) "
                    "VALUES ('old-1', 'old', 'success', '{}', 1.0)")
    old.close()


# -- SQLite ------------------------------------------------------------------------------


def test_upgrade_makes_a_new_store_then_has_nothing_to_do(project: Path) -> None:
    first = cadenza(project, "db", "upgrade")
    assert first.returncode == 0, first
    applied = [f"applied {m.version:04d}_{m.name}" for m in migrations("sqlite")]
    assert first.stdout.splitlines()[:-1] == applied
    db = project / ".cadenza" / "cadenza.db"
    assert f"the store at {db} is at version {latest('sqlite')}, the latest" in first.stdout
    again = cadenza(project, "db", "upgrade")
    assert again.returncode == 0
    assert again.stdout.strip() == (f"the store at {db} is already at version "
                                    f"{latest('sqlite')}, the latest; nothing to do")
    current = cadenza(project, "db", "current", "--check")
    assert current.returncode == 0, current
    assert current.stdout.splitlines() == [
        f"store: {db} (sqlite)", f"version {latest('sqlite')} (the latest): up to date"]


def test_current_with_no_store_creates_none(project: Path) -> None:
    line = _one_error_line(cadenza(project, "db", "current"))
    assert "No cadenza store was found" in line
    assert not (project / ".cadenza").exists()


def test_an_older_file_is_reported_then_upgraded_in_place(project: Path) -> None:
    db = project / "state" / "meta.db"
    _version_1_file(db)
    current = cadenza(project, "--db", "state/meta.db", "db", "current")
    assert current.returncode == 0, current  # like `alembic current`: it read the version
    assert "version 1; this cadenza's latest is 3: 2 pending (0002_run_claims, " \
           "0003_pool_slots). Run `cadenza db upgrade`." in current.stdout
    assert cadenza(project, "--db", "state/meta.db", "db", "current", "--check"
                   ).returncode == 1
    as_json = json.loads(cadenza(project, "--db", str(db), "db", "current", "--json").stdout)
    assert as_json == {"store": str(db), "backend": "sqlite", "version": 1, "latest": 3,
                       "pending": ["0002_run_claims", "0003_pool_slots"]}
    readers = cadenza(project, "--db", f"sqlite:///{db.relative_to(project)}", "runs")
    assert "`cadenza db upgrade`" in _one_error_line(readers)
    upgraded = cadenza(project, "--db", str(db), "db", "upgrade")
    assert upgraded.stdout.splitlines()[0] == "applied 0002_run_claims", upgraded
    runs = cadenza(project, "--db", str(db), "runs", "--json")
    assert [r["run_id"] for r in json.loads(runs.stdout)] == ["old-1"]  # its rows kept
    assert not (project / ".cadenza" / "cadenza.db").exists()


def test_a_store_newer_than_this_cadenza_is_an_error(project: Path) -> None:
    assert cadenza(project, "db", "upgrade").returncode == 0
    with sqlite3.connect(project / ".cadenza" / "cadenza.db") as db:
        db.execute("INSERT INTO schema_migrations VALUES (99, 'from_the_future', 0)")
    db.close()
    line = _one_error_line(cadenza(project, "db", "current"))
    assert "schema version 99, newer than this cadenza knows" in line
    assert "pip install -U cadenza" in line


@pytest.mark.parametrize("location", ["mysql://me:hunter2@db/x", "sqlite:///"])
def test_a_bad_db_is_one_line_naming_the_accepted_forms(project: Path, location: str) -> None:
    for args in (("db", "current"), ("db", "upgrade"), ("run", "pipeline.py"), ("runs",)):
        line = _one_error_line(cadenza(project, "--db", location, *args))
        assert "postgresql://USER@HOST/DATABASE" in line and "hunter2" not in line
    assert not (project / ".cadenza").exists()


def test_config_and_environment_name_the_store(project: Path) -> None:
    (project / "cadenza.toml").write_text('db = "state/config.db"\n')
    run = cadenza(project, "run", "pipeline.py", "-q")
    assert run.returncode == 0, run
    assert f"using the store at {project / 'state/config.db'} (from " \
           f"{project / 'cadenza.toml'})" in run.stderr
    assert (project / "state/config.db").is_file()
    env = {"CADENZA_DB": str(project / "env.db")}
    assert cadenza(project, "db", "upgrade", env=env).returncode == 0
    assert (project / "env.db").is_file()
    assert json.loads(cadenza(project, "runs", "--json", env=env).stdout) == []
    flag = cadenza(project, "--db", "state/config.db", "runs", "--json", env=env)
    assert [r["pipeline"] for r in json.loads(flag.stdout)] == ["tiny"]


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_dsn: str) -> str:
    """A new database's DSN with a password in it, which no output may show (the
    ``postgres`` role is trusted, so the server ignores it)."""
    return postgres_dsn.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")


def test_db_upgrade_and_current_on_postgresql(project: Path, pg: str) -> None:
    shown = pg.replace(":hunter2", "")
    empty = cadenza(project, "--db", pg, "db", "current", "--check")
    assert empty.returncode == 1, empty
    assert f"store: {shown} (postgres)" in empty.stdout
    assert f"version 0; this cadenza's latest is {latest('postgres')}" in empty.stdout
    first = cadenza(project, "--db", pg, "db", "upgrade")
    assert first.returncode == 0, first
    assert first.stdout.splitlines()[:-1] == [
        f"applied {m.version:04d}_{m.name}" for m in migrations("postgres")]
    again = cadenza(project, "--db", pg, "db", "upgrade")
    assert f"is already at version {latest('postgres')}, the latest" in again.stdout
    current = cadenza(project, "--db", pg, "db", "current", "--check")
    assert current.returncode == 0, current
    assert "(the latest): up to date" in current.stdout
    for result in (empty, first, again, current):
        assert "hunter2" not in result.stdout + result.stderr
    assert not (project / ".cadenza").exists()  # nothing local was needed


def test_a_run_on_postgresql_read_back_from_another_folder(project: Path, pg: str,
                                                           tmp_path_factory: pytest.TempPathFactory
                                                           ) -> None:
    run = cadenza(project, "--db", pg, "run", "pipeline.py", "--json")
    assert run.returncode == 0, run
    result = json.loads(run.stdout)
    assert result["state"] == "success", result
    run_id = result["run_id"]
    assert not (project / ".cadenza" / "cadenza.db").exists()  # the runs are in PostgreSQL
    elsewhere = tmp_path_factory.mktemp("another-host")  # no store folder, no config
    runs = cadenza(elsewhere, "--db", pg, "runs", "--json")
    assert runs.returncode == 0, runs
    assert [(r["run_id"], r["state"]) for r in json.loads(runs.stdout)] == [(run_id, "success")]
    status = cadenza(elsewhere, "--db", pg, "status", "latest", "--json")
    assert status.returncode == 0, status
    tasks = {t["task"]: t["state"] for t in json.loads(status.stdout)["tasks"]}
    assert tasks == {"numbers": "success", "total": "success"}
    again = cadenza(project, "--db", pg, "run", "pipeline.py", "--json")
    assert json.loads(again.stdout)["state"] == "success"  # cached from the store's records
    for out in (run, runs, status, again):
        assert "hunter2" not in out.stdout + out.stderr
    assert not list(elsewhere.iterdir())
    missing = cadenza(elsewhere, "--db", pg, "status", "nope")
    assert "hunter2" not in _one_error_line(missing)
