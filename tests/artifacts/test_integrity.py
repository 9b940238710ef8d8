"""Stored bytes are checked against their hash when read; a damaged artifact is never used."""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
from pathlib import Path

import pytest

from cadenza import Pipeline
from cadenza.artifacts.integrity import check, check_file
from cadenza.artifacts.local import LocalArtifactStore
from cadenza.artifacts.memory import MemoryArtifactStore
from cadenza.engine.result import load_value
from cadenza.exceptions import CadenzaError, DamagedArtifactError
from cadenza.workspace import Workspace


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_check_passes_good_bytes_and_names_bad_ones(tmp_path: Path) -> None:
    good = b"forty thousand"
    assert check(digest(good), good) == good
    with pytest.raises(DamagedArtifactError) as caught:
        check(digest(good), b"five", "somewhere")
    assert isinstance(caught.value, CadenzaError)
    assert caught.value.hash == digest(good) and caught.value.found == digest(b"five")
    message = str(caught.value)
    assert digest(good)[:16] in message and "somewhere" in message
    assert "run the pipeline again" in message
    file = tmp_path / "f"
    file.write_bytes(good)
    assert check_file(digest(good), file) == file
    with pytest.raises(DamagedArtifactError):
        check_file(digest(b"other"), file)


def test_a_local_artifact_edited_on_disk_is_refused_and_set_aside(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    data = pickle.dumps(list(range(40000)))
    key = digest(data)
    path = Path(store.put(key, data))
    path.write_bytes(pickle.dumps(5))  # replaced by something that still unpickles
    with pytest.raises(DamagedArtifactError, match=key[:16]):
        store.get(key)
    assert not store.exists(key)  # so the task that made it runs again
    assert (tmp_path / "artifacts" / ".damaged" / key).read_bytes() == pickle.dumps(5)
    store.put(key, data)  # and the next put stores a good copy
    assert store.get(key) == data


def test_a_file_handed_to_a_shell_task_is_checked_once_and_again_when_changed(
        tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    data = b"a,b\n1,2\n"
    key = digest(data)
    store.put(key, data)
    file = store.path(key)
    assert file is not None and file.read_bytes() == data
    assert store.path(key) == file  # checked already: same size and mtime
    file.write_bytes(b"a,b\n9,9\n")  # same size, new content and mtime
    with pytest.raises(DamagedArtifactError):
        store.path(key)
    assert store.path(key) is None


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    data = bytes(range(256)) * 4096
    key = digest(data)
    path = Path(store.put(key, data))
    with open(path, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(DamagedArtifactError):
        store.get(key)


def test_the_memory_store_refuses_damaged_bytes_too() -> None:
    store = MemoryArtifactStore()
    data = b"value"
    key = digest(data)
    store.put(key, data)
    store._blobs[key] = b"other"  # nothing but a test reaches in: the bytes changed
    with pytest.raises(DamagedArtifactError):
        store.get(key)
    assert not store.exists(key)


def test_a_value_kept_in_the_metadata_store_is_checked_when_loaded(tmp_path: Path) -> None:
    pipe = Pipeline("inline_value")

    @pipe.task
    def small() -> int:
        return 40000

    home = tmp_path / ".cadenza"
    result = pipe.run(home=home)
    digest_ = result.tasks["small"].output
    assert digest_ is not None
    db = sqlite3.connect(home / "cadenza.db")
    db.execute("UPDATE artifacts SET data = ? WHERE hash = ?", (pickle.dumps(5), digest_))
    db.commit()
    db.close()
    ws = Workspace.open(home)
    try:
        with pytest.raises(DamagedArtifactError, match="metadata store"):
            load_value(ws, digest_)
    finally:
        ws.close()
