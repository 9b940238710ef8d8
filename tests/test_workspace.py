"""Which store is used: --home and $CADENZA_HOME win; the walk upward stops at another user's
store and at the project root; a read-only open creates and writes nothing."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cadenza.exceptions import CadenzaError, StoreError
from cadenza.store.migrations import migrations
from cadenza.workspace import PROJECT_MARKERS, NoStoreError, Workspace, locate

AS_ROOT = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="giving a folder to another user needs root (chown)",
)
OTHER_UID = 65534  # nobody


@pytest.fixture(autouse=True)
def no_env_home(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CADENZA_HOME", "CADENZA_DB", "CADENZA_ARTIFACTS",
                 "CADENZA_ARTIFACTS_OPTIONS"):
        monkeypatch.delenv(name, raising=False)


def tree(root: Path, *folders: str) -> None:
    for folder in folders:
        (root / folder).mkdir(parents=True)


def test_given_home_wins_then_the_environment(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tree(tmp_path, "p/.cadenza", "elsewhere")
    assert locate(tmp_path / "elsewhere", tmp_path / "p").source == "given"
    monkeypatch.setenv("CADENZA_HOME", str(tmp_path / "env"))
    found = locate(None, tmp_path / "p")
    assert (found.home, found.source) == (tmp_path / "env", "env")
    assert locate(tmp_path / "elsewhere", tmp_path / "p").home == tmp_path / "elsewhere"


def test_the_working_directory_then_the_nearest_folder_above(tmp_path: Path) -> None:
    tree(tmp_path, "p/.cadenza", "p/a/b")
    here = locate(None, tmp_path / "p")
    assert (here.home, here.source) == (tmp_path / "p/.cadenza", "here")
    above = locate(None, tmp_path / "p/a/b")
    assert (above.home, above.source) == (tmp_path / "p/.cadenza", "above")


@pytest.mark.parametrize("marker", PROJECT_MARKERS)
def test_the_walk_stops_at_the_project_root(tmp_path: Path, marker: str) -> None:
    tree(tmp_path, ".cadenza", "proj/src")
    (tmp_path / "proj" / marker).touch()
    found = locate(None, tmp_path / "proj/src")
    assert found.source == "none" and found.home == tmp_path / "proj/src/.cadenza"
    assert found.stop == tmp_path / "proj" and marker in found.why_stop
    assert f"up to {str(tmp_path / 'proj')!r}" in found.searched()
    (tmp_path / "proj/.cadenza").mkdir()  # the root's own store is still found
    assert locate(None, tmp_path / "proj/src").home == tmp_path / "proj/.cadenza"


@AS_ROOT
def test_the_walk_stops_at_a_store_another_user_owns(tmp_path: Path) -> None:
    tree(tmp_path, ".cadenza", "shared/.cadenza", "shared/me")
    os.chown(tmp_path / "shared/.cadenza", OTHER_UID, -1)
    found = locate(None, tmp_path / "shared/me")
    assert found.source == "none" and found.home == tmp_path / "shared/me/.cadenza"
    assert found.foreign == tmp_path / "shared/.cadenza"
    assert f"uid {OTHER_UID}" in found.owner
    with pytest.raises(NoStoreError, match=r"belongs to .*not to you, so it is not used"):
        Workspace.open(found, create=False)
    Workspace.open(found).close()  # a writer makes its own store, here
    assert (tmp_path / "shared/me/.cadenza/cadenza.db").is_file()
    # --home still wins
    assert locate(tmp_path / "shared/.cadenza", tmp_path / "shared/me").source == "given"


@AS_ROOT
def test_another_users_store_in_the_working_directory_is_never_written(tmp_path: Path) -> None:
    tree(tmp_path, ".cadenza")
    os.chown(tmp_path / ".cadenza", OTHER_UID, -1)
    with pytest.raises(CadenzaError, match="work in another folder"):
        Workspace.open(locate(None, tmp_path))
    assert list((tmp_path / ".cadenza").iterdir()) == []


def test_a_reader_finds_no_store_and_creates_none(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").touch()
    tree(tmp_path, "src")
    with pytest.raises(NoStoreError, match="No cadenza store was found from") as info:
        Workspace.open(locate(None, tmp_path / "src"), readonly=True)
    assert "cadenza init" in str(info.value) and "pyproject.toml" in str(info.value)
    with pytest.raises(NoStoreError, match=r"No cadenza store is at '.*nowhere.*' \(from "
                                          r"--home\)\. Fix the path, or make one there with"):
        Workspace.open(tmp_path / "nowhere" / ".cadenza", create=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["pyproject.toml", "src"]


def test_a_readonly_open_writes_nothing_and_refuses_writes(tmp_path: Path) -> None:
    home = tmp_path / ".cadenza"
    Workspace.open(home).close()
    db = home / "cadenza.db"
    before = {p: p.stat().st_mtime_ns for p in home.rglob("*")}
    ws = Workspace.open(home, readonly=True)
    try:
        assert ws.store.list_runs() == []
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ws.store.set_paused("p", True)
    finally:
        ws.close()
    assert {p: p.stat().st_mtime_ns for p in home.rglob("*")} == before
    assert db.stat().st_size > 0


def test_a_readonly_open_of_a_file_an_older_version_made_says_to_upgrade(
        tmp_path: Path) -> None:
    home = tmp_path / ".cadenza"
    home.mkdir()
    with sqlite3.connect(home / "cadenza.db") as old:  # version 1: no schema_migrations
        for statement in migrations("sqlite")[0].statements():
            old.execute(statement)
        old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old.close()
    with pytest.raises(StoreError, match=r"schema version 1, older .* `cadenza db upgrade`"):
        Workspace.open(home, readonly=True)
    with closing(Workspace.open(home)) as ws:  # a writer upgrades it in place
        assert ws.store.approvals("no-such-run") == []


def test_a_reader_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    home = tmp_path / ".cadenza"
    Workspace.open(home).close()
    writer = sqlite3.connect(home / "cadenza.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a run in the middle of a commit holds this
    try:
        ws = Workspace.open(home, readonly=True)
        try:
            assert ws.store.list_runs() == []
        finally:
            ws.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# -- where the metadata store and the artifacts are --------------------------------------


def test_db_and_artifacts_flag_then_env_then_config_then_the_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "p"
    tree(project, "src")
    (project / "pyproject.toml").write_text(
        '[tool.cadenza]\ndb = "state/from-config.db"\nartifacts = "s3://bucket/config"\n')
    src = project / "src"
    default = locate(None, tmp_path)
    assert (default.db, default.artifacts) == (None, None)  # the home's cadenza.db, artifacts/
    config = locate(None, src)  # the config's paths are relative to its folder
    assert config.db == str(project / "state/from-config.db")
    assert config.db_from == str(project / "pyproject.toml")
    assert config.artifacts == "s3://bucket/config"
    monkeypatch.setenv("CADENZA_DB", "env.db")  # relative to the working directory
    monkeypatch.setenv("CADENZA_ARTIFACTS", "env-artifacts")
    env = locate(None, src)
    assert (env.db, env.db_from) == (str(src / "env.db"), "$CADENZA_DB")
    assert (env.artifacts, env.artifacts_from) == (str(src / "env-artifacts"),
                                                   "$CADENZA_ARTIFACTS")
    flag = locate(None, src, db="postgresql://me:secret@db.internal/cadenza",
                  artifacts="file:///srv/artifacts")
    assert (flag.db_from, flag.artifacts_from) == ("--db", "--artifacts")
    assert flag.artifacts == "file:///srv/artifacts"
    assert flag.where == "postgresql://me@db.internal/cadenza"  # never the password


def test_cadenza_toml_is_read_before_pyproject(tmp_path: Path) -> None:
    (tmp_path / "cadenza.toml").write_text('db = "sqlite:///a.db"\n')
    (tmp_path / "pyproject.toml").write_text('[tool.cadenza]\ndb = "b.db"\n'
                                             'artifacts = "art"\n')
    found = locate(None, tmp_path)
    assert found.db == str(tmp_path / "a.db")  # sqlite:///relative, as SQLAlchemy reads it
    assert found.artifacts == str(tmp_path / "art")  # cadenza.toml does not set it


def test_the_store_and_artifacts_elsewhere_are_the_ones_opened(tmp_path: Path) -> None:
    found = locate(tmp_path / ".cadenza", db=tmp_path / "shared/meta.db",
                   artifacts=tmp_path / "shared/artifacts")
    with closing(Workspace.open(found)) as ws:
        ws.store.set_paused("p", True)
        ws.artifacts.put("ab" * 32, b"x")  # not a real hash: the folder is what is checked
        assert ws.where == str(tmp_path / "shared/meta.db")
    assert (tmp_path / "shared/meta.db").is_file()
    assert not (tmp_path / ".cadenza/cadenza.db").exists()
    assert any((tmp_path / "shared/artifacts").rglob("ab" * 32))
    with closing(Workspace.open(found, readonly=True)) as ws:
        assert ws.store.paused() == {"p"}
    missing = locate(tmp_path / ".cadenza", db=tmp_path / "nope.db")
    with pytest.raises(NoStoreError, match=r"No cadenza store is at '.*nope\.db' \(from --db\)"):
        Workspace.open(missing, readonly=True)


@pytest.mark.parametrize(("setting", "message"), [
    ({"CADENZA_DB": "mysql://u:pw@h/db"},
     r"^The store location 'mysql://u@h/db' is not one cadenza can open; give a file path"),
    ({"CADENZA_ARTIFACTS_OPTIONS": "{endpoint"},
     r"^CADENZA_ARTIFACTS_OPTIONS='\{endpoint' is not a JSON object"),
    ({"CADENZA_ARTIFACTS_OPTIONS": "[1]"}, r"is not a JSON object \(\[1\]\)"),
])
def test_a_bad_location_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    setting: dict[str, str], message: str) -> None:
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CadenzaError, match=message) as info:
        locate(None, tmp_path)
    assert "\n" not in str(info.value) and "pw" not in str(info.value)


@pytest.mark.parametrize(("text", "message"), [
    ("db = 3", r"pyproject\.toml': db must be a path or URL in quotes, got 3"),
    ("artifacts_options = 'x'", r"artifacts_options must be a table, .* got 'x'"),
    ("db = [", r"pyproject\.toml' is not valid TOML"),
])
def test_a_bad_config_value_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.cadenza]\n{text}\n")
    with pytest.raises(CadenzaError, match=message):
        locate(None, tmp_path)


def test_storage_options_without_an_fsspec_url_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENZA_ARTIFACTS_OPTIONS", '{"endpoint_url": "http://127.0.0.1:9"}')
    with pytest.raises(CadenzaError, match=r"Storage options \['endpoint_url'\] were given "
                                          r"for the local artifact folder"):
        Workspace.open(tmp_path / ".cadenza")


def test_artifacts_on_s3_from_the_environment(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("s3fs", reason="S3 needs cadenza[s3]")
    pytest.importorskip("moto.server", reason="the local S3 server needs moto[server]")
    from cadenza import Pipeline
    from cadenza.artifacts.fsspec import FsspecArtifactStore
    from cadenza.testing.artifacts import moto_s3

    pipe = Pipeline("big")
    payload = os.urandom(64 << 10)  # past what the store keeps inline

    @pipe.task
    def make() -> bytes:
        return payload

    with moto_s3() as s3:
        bucket = s3.bucket()
        monkeypatch.setenv("CADENZA_ARTIFACTS", f"s3://{bucket}/team")
        monkeypatch.setenv("CADENZA_ARTIFACTS_OPTIONS", json.dumps(s3.options))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        result = pipe.run(home=tmp_path / ".cadenza", executor="inline")
        assert result.ok
        with closing(Workspace.open(tmp_path / ".cadenza", readonly=True)) as ws:
            assert isinstance(ws.artifacts, FsspecArtifactStore)
            digest = ws.store.task_instances(result.run_id)[0].output
            assert digest is not None and ws.artifacts.exists(digest)
            assert ws.holds(digest)
        assert result.output("make") == payload  # read back from S3
        assert not (tmp_path / ".cadenza/artifacts").exists() or not any(
            p.is_file() for p in (tmp_path / ".cadenza/artifacts").rglob("*"))


def test_pipeline_run_takes_db_and_artifacts(tmp_path: Path) -> None:
    from cadenza import Pipeline

    pipe = Pipeline("placed")
    payload = os.urandom(64 << 10)  # past what the store keeps inline: a file in artifacts/

    @pipe.task
    def make() -> bytes:
        return payload

    result = pipe.run(home=tmp_path / ".cadenza", db=tmp_path / "meta.db",
                      artifacts=tmp_path / "blobs", executor="inline")
    assert result.ok and result.output("make") == payload
    assert not (tmp_path / ".cadenza/cadenza.db").exists()
    with closing(Workspace.open(locate(tmp_path / ".cadenza", db=tmp_path / "meta.db"),
                                readonly=True)) as ws:
        assert [r.run_id for r in ws.store.list_runs("placed")] == [result.run_id]
    assert sum(1 for p in (tmp_path / "blobs").rglob("*") if p.is_file()) == 1


def test_the_schedulers_runs_use_the_store_it_was_given(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from cadenza import Pipeline
    from cadenza.schedule.scheduler import Entry, Scheduler

    start = datetime(2026, 11, 1, tzinfo=UTC)
    pipe = Pipeline("hourly", every="1h", start=start, catchup=True)

    @pipe.task
    def stamp() -> int:
        return 1

    found = locate(tmp_path / ".cadenza", db=tmp_path / "meta.db")
    sched = Scheduler([Entry(pipe, "x")], found, clock=lambda: start.timestamp() + 2.5 * 3600)
    try:
        assert len(sched.tick()) == 2
        while sched.launch():  # each run in its own thread, opening its own workspace
            for _, thread in list(sched.active.values()):
                thread.join(30)
    finally:
        sched.close()
    with closing(Workspace.open(found, readonly=True)) as ws:
        assert [r.state for r in ws.store.list_runs("hourly")] == ["success", "success"]
    assert not (tmp_path / ".cadenza/cadenza.db").exists()
