"""S3 goes away under a run (issue 14): a task whose result must go to the bucket fails in one
line naming the bucket, is retried as its policy says, and leaves no object behind; once the
bucket is back, a resume finishes the run with the one object."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cadenza import Pipeline, Retry
from cadenza.artifacts.fsspec import FsspecArtifactStore
from cadenza.store.sqlite import SqliteStore
from cadenza.testing.artifacts import MotoS3, moto_s3
from cadenza.workspace import Workspace

pytest.importorskip("s3fs", reason="S3 needs cadenza[s3]")
pytest.importorskip("moto.server", reason="the local S3 server needs moto[server]")

PAYLOAD = b"x" * (64 << 10)  # past what the database keeps: it must go to the bucket


@pytest.fixture
def s3() -> Iterator[MotoS3]:
    """A server of this test's own, which it stops."""
    with moto_s3() as server:
        yield server


def _pipeline(ran: Path) -> Pipeline:
    pipe = Pipeline("to_s3", defaults={"retries": Retry(1, backoff=0)})

    @pipe.task
    def make() -> bytes:
        with ran.open("a") as out:
            out.write("make\n")
        return PAYLOAD

    return pipe


def test_s3_away_fails_the_task_clearly_retries_it_and_stores_nothing(
        s3: MotoS3, tmp_path: Path) -> None:
    bucket = s3.bucket()
    home = tmp_path / ".cadenza"
    home.mkdir()
    url = f"s3://{bucket}/team"
    ws = Workspace(home, SqliteStore(home / "cadenza.db"),
                   FsspecArtifactStore(url, cache=tmp_path / "cache", **s3.options))
    ran = tmp_path / "ran.txt"
    pipe = _pipeline(ran)
    try:
        s3.server.stop()
        result = pipe.run(workspace=ws, executor="inline")
        assert result.state == "failed"
        make = result.tasks["make"]
        assert [a.state for a in make.attempts] == ["failed", "failed"]  # retried once
        error = make.attempts[-1].error or ""
        assert len(error.splitlines()) == 1 and bucket in error, error
        assert ran.read_text() == "make\nmake\n"
    finally:
        ws.close()
    with moto_s3(port=int(s3.endpoint_url.rsplit(":", 1)[1])) as again:  # the bucket is back
        import s3fs  # type: ignore[import-untyped]

        fs = s3fs.S3FileSystem(**again.options)  # moto keeps its buckets across a restart
        assert fs.find(f"{bucket}/team") == []  # nothing half-written was left
        ws = Workspace(home, SqliteStore(home / "cadenza.db"),
                       FsspecArtifactStore(url, cache=tmp_path / "cache", **again.options))
        try:
            resumed = pipe.run(workspace=ws, executor="inline", resume=result.run_id)
            assert resumed.ok and resumed.output("make") == PAYLOAD
            assert len(fs.find(f"{bucket}/team")) == 1
        finally:
            ws.close()
