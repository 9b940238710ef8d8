"""The churn example as a team runs it beyond one machine: two project folders (two hosts)
sharing one PostgreSQL store and one S3 bucket, through the real CLI (README, "Beyond one
machine"). The second host finds every step done by the first, and the report it needs is
fetched from the bucket into its own folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cadenza.testing.artifacts import MotoS3
from cadenza.testing.postgres import PostgresServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn"


def cadenza(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadenza", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_two_hosts_share_one_database_and_one_bucket(
        tmp_path: Path, postgres_server: PostgresServer, s3_server: MotoS3) -> None:
    dsn = postgres_server.new_database("churn_shared")
    bucket = s3_server.bucket()
    env = {**os.environ, "CADENZA_DB": dsn, "CADENZA_ARTIFACTS": f"s3://{bucket}/team",
           "CADENZA_ARTIFACTS_OPTIONS": json.dumps(s3_server.options), "NO_COLOR": "1"}
    env.pop("CADENZA_HOME", None)
    hosts = {}
    for name in ("a", "b"):
        project = tmp_path / name
        shutil.copytree(EXAMPLE, project / "churn", ignore=shutil.ignore_patterns("__pycache__"))
        (project / "pyproject.toml").write_text("")  # the project root
        hosts[name] = project
    first = cadenza("run", "churn", "--approve", "promote_gate", cwd=hosts["a"], env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "from $CADENZA_DB" in first.stderr and "from $CADENZA_ARTIFACTS" in first.stderr
    second = cadenza("run", "churn", "--approve", "promote_gate", cwd=hosts["b"], env=env)
    assert second.returncode == 0, second.stdout + second.stderr

    report = Path("reports") / "manual" / "churn.html"
    assert str(hosts["b"] / report) in second.stdout
    assert (hosts["b"] / report).read_bytes() == (hosts["a"] / report).read_bytes()
    for project in hosts.values():  # nothing of the store on either host
        assert not (project / ".cadenza" / "cadenza.db").exists()
        assert not (project / ".cadenza" / "artifacts").exists()

    from cadenza.store.postgres import PostgresStore  # the fixtures skip without the extras

    store = PostgresStore(dsn, readonly=True)
    try:
        runs = store.list_runs("churn", 10)
        assert [run.state for run in runs] == ["success", "success"]
        newest = runs[0].run_id
        assert {ti.state for ti in store.task_instances(newest)} == {"cached"}
    finally:
        store.close()
    listed = cadenza("runs", "--json", cwd=hosts["b"], env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 2


def test_churn_on_dask_with_the_shared_database_and_bucket(
        tmp_path: Path, postgres_server: PostgresServer, s3_server: MotoS3) -> None:
    pytest.importorskip("distributed", reason="the dask executor needs cadenza[dask]")
    dsn = postgres_server.new_database("churn_dask")
    bucket = s3_server.bucket()
    env = {**os.environ, "CADENZA_DB": dsn, "CADENZA_ARTIFACTS": f"s3://{bucket}/team",
           "CADENZA_ARTIFACTS_OPTIONS": json.dumps(s3_server.options), "NO_COLOR": "1"}
    env.pop("CADENZA_HOME", None)
    shutil.copytree(EXAMPLE, tmp_path / "churn", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pyproject.toml").write_text("")
    done = cadenza("run", "churn", "-e", "dask", "--workers", "2", "--approve", "promote_gate",
                   cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "reports" / "manual" / "churn.html").stat().st_size > 0
    from cadenza.store.postgres import PostgresStore  # the fixtures skip without the extras

    store = PostgresStore(dsn, readonly=True)
    try:
        [run] = store.list_runs("churn", 10)
        states = {ti.task: ti.state for ti in store.task_instances(run.run_id)}
        assert run.state == "success" and set(states.values()) == {"success"}, states
    finally:
        store.close()
    import s3fs  # type: ignore[import-untyped]

    stored = s3fs.S3FileSystem(**s3_server.options).find(f"{bucket}/team")
    assert stored  # the run's large values and files are objects in the bucket
