"""Which store is used: --home and $CADENZA_HOME win; the walk upward stops at another user's
store and at the project root; a read-only open creates and writes nothing."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from cadenza.exceptions import CadenzaError
from cadenza.workspace import PROJECT_MARKERS, NoStoreError, Workspace, locate

AS_ROOT = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="giving a folder to another user needs root (chown)",
)
OTHER_UID = 65534  # nobody


@pytest.fixture(autouse=True)
def no_env_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CADENZA_HOME", raising=False)


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


def test_a_readonly_open_completes_a_schema_an_older_version_made(tmp_path: Path) -> None:
    home = tmp_path / ".cadenza"
    Workspace.open(home).close()
    with sqlite3.connect(home / "cadenza.db") as db:
        db.execute("DROP TABLE approvals")
    ws = Workspace.open(home, readonly=True)
    try:
        assert ws.store.approvals("no-such-run") == []
    finally:
        ws.close()


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
