"""LocalArtifactStore: content-addressed files, written atomically, never outside its folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cadenza.artifacts.local import LocalArtifactStore


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def _temp_files(store: LocalArtifactStore) -> list[Path]:
    return list((store.root / ".tmp").iterdir())


def test_creates_its_folders(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "deep" / "artifacts")
    assert (tmp_path / "deep" / "artifacts" / ".tmp").is_dir()
    assert repr(store) == f"LocalArtifactStore({str(tmp_path / 'deep' / 'artifacts')!r})"


def test_put_get_exists_path(store: LocalArtifactStore) -> None:
    data = b"hello artifacts"
    key = digest(data)
    assert not store.exists(key)
    assert store.path(key) is None

    uri = store.put(key, data)
    expected = store.root / key[:2] / key
    assert uri == str(expected)
    assert store.exists(key)
    assert store.get(key) == data
    assert store.path(key) == expected
    assert expected.read_bytes() == data


def test_put_empty_bytes(store: LocalArtifactStore) -> None:
    key = digest(b"")
    store.put(key, b"")
    assert store.exists(key)
    assert store.get(key) == b""


def test_put_is_idempotent(store: LocalArtifactStore) -> None:
    data = b"same bytes"
    key = digest(data)
    first = store.put(key, data)
    mtime = Path(first).stat().st_mtime_ns
    assert store.put(key, data) == first
    assert store.put(key, b"other bytes under the same hash") == first  # a no-op
    assert store.get(key) == data
    assert Path(first).stat().st_mtime_ns == mtime
    assert _temp_files(store) == []


def test_no_temp_file_remains_after_put(store: LocalArtifactStore) -> None:
    for i in range(5):
        data = f"value {i}".encode()
        store.put(digest(data), data)
    assert _temp_files(store) == []


def test_put_file(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.pkl"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one copy chunk
    source.write_bytes(data)
    key = digest(data)
    uri = store.put_file(key, source)
    assert Path(uri).read_bytes() == data
    assert store.get(key) == data
    assert source.exists()  # copied, not moved
    assert _temp_files(store) == []


def test_failed_write_leaves_no_temp_file(store: LocalArtifactStore, tmp_path: Path) -> None:
    key = "ab" * 32
    with pytest.raises(FileNotFoundError):
        store.put_file(key, tmp_path / "missing")
    assert not store.exists(key)
    assert _temp_files(store) == []


def test_delete(store: LocalArtifactStore) -> None:
    data = b"to delete"
    key = digest(data)
    store.put(key, data)
    store.delete(key)
    assert not store.exists(key)
    assert store.path(key) is None
    with pytest.raises(FileNotFoundError):
        store.get(key)
    store.delete(key)  # deleting twice is fine


def test_get_missing(store: LocalArtifactStore) -> None:
    with pytest.raises(FileNotFoundError):
        store.get("0" * 64)


@pytest.mark.parametrize(
    "bad",
    [
        "../etc/passwd",
        "../../" + "a" * 60,
        "/etc/passwd",
        "ab/cdef0123",
        "ABCDEF0123456789",  # uppercase
        "abc",  # too short
        "",
        "0123456789abcdeg",
        "0123456789abcdef\n",
        "0123456789abcdef ",
    ],
)
def test_invalid_hash_is_rejected(store: LocalArtifactStore, bad: str) -> None:
    for call in (
        lambda: store.put(bad, b"x"),
        lambda: store.get(bad),
        lambda: store.exists(bad),
        lambda: store.path(bad),
        lambda: store.delete(bad),
        lambda: store.put_file(bad, Path(__file__)),
    ):
        with pytest.raises(ValueError) as excinfo:
            call()
        assert repr(bad) in str(excinfo.value)
        assert "hex" in str(excinfo.value)
    outside = [p for p in store.root.parent.rglob("*") if not p.is_relative_to(store.root)]
    assert outside == []
    assert not (store.root / ".tmp").exists() or _temp_files(store) == []


def test_clean_temp_removes_leftovers(store: LocalArtifactStore) -> None:
    tmp = store.root / ".tmp"
    (tmp / "abcdef.123").write_bytes(b"half written")
    (tmp / "abcdef.456").write_bytes(b"")
    data = b"kept"
    store.put(digest(data), data)
    assert store.clean_temp() == 2
    assert _temp_files(store) == []
    assert store.get(digest(data)) == data  # real artifacts stay
    assert store.clean_temp() == 0


def test_reopening_finds_stored_artifacts(tmp_path: Path) -> None:
    data = b"durable"
    LocalArtifactStore(tmp_path / "a").put(digest(data), data)
    assert LocalArtifactStore(tmp_path / "a").get(digest(data)) == data


def test_clean_temp_spares_a_live_writers_file(store: LocalArtifactStore) -> None:
    import os

    tmp = store.root / ".tmp"
    (tmp / f"{os.getpid()}.abcdef.x1").write_bytes(b"being written by a run right now")
    (tmp / f"{2**22 + 13}.abcdef.x2").write_bytes(b"left by a killed writer")
    assert store.clean_temp() == 1
    assert [p.name for p in _temp_files(store)] == [f"{os.getpid()}.abcdef.x1"]
