"""The artifact contract (cadenza.testing.artifacts) against every artifact store: local
folder, memory, fsspec on memory://, and fsspec on S3 through a real moto server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cadenza.artifacts.fsspec import FsspecArtifactStore
from cadenza.artifacts.local import LocalArtifactStore
from cadenza.artifacts.memory import MemoryArtifactStore
from cadenza.testing.artifacts import ArtifactStoreContract, MotoS3


class TestLocalArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalArtifactStore:
        return LocalArtifactStore(tmp_path / "artifacts")

    def damage(self, store: Any, hash: str, data: bytes) -> None:
        (store.root / hash[:2] / hash).write_bytes(data)


class TestMemoryArtifactStore(ArtifactStoreContract):
    @pytest.fixture
    def store(self) -> MemoryArtifactStore:
        return MemoryArtifactStore()

    def damage(self, store: Any, hash: str, data: bytes) -> None:
        store._blobs[hash] = data


class TestFsspecMemory(ArtifactStoreContract):
    """fsspec's in-memory filesystem: a process-wide dict, one folder per test."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FsspecArtifactStore]:
        pytest.importorskip("fsspec", reason="the fsspec stores need cadenza[s3]")
        store = FsspecArtifactStore(f"memory://cadenza-{uuid.uuid4().hex}",
                                    cache=tmp_path / "cache")
        yield store
        if store.fs.exists(store.url):
            store.fs.rm(store.url, recursive=True)

    def damage(self, store: Any, hash: str, data: bytes) -> None:
        store.fs.pipe_file(store.key(hash), data)


class TestFsspecMemoryStreamed(TestFsspecMemory):
    """Every file sent from a hashed copy in the cache folder, as files over pipe_limit are."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FsspecArtifactStore]:
        pytest.importorskip("fsspec", reason="the fsspec stores need cadenza[s3]")
        store = FsspecArtifactStore(f"memory://cadenza-{uuid.uuid4().hex}",
                                    cache=tmp_path / "cache")
        store.pipe_limit = -1
        yield store
        if store.fs.exists(store.url):
            store.fs.rm(store.url, recursive=True)
        temp = tmp_path / "cache" / ".tmp"
        assert not temp.exists() or list(temp.iterdir()) == []  # no copy left behind


@pytest.fixture(scope="session")
def bucket(s3_server: MotoS3) -> str:
    return s3_server.bucket()


class TestFsspecS3(ArtifactStoreContract):
    """S3 through s3fs over real HTTP to moto on 127.0.0.1: one prefix per test."""

    @pytest.fixture
    def store(self, s3_server: MotoS3, bucket: str, tmp_path: Path) -> FsspecArtifactStore:
        return FsspecArtifactStore(f"s3://{bucket}/{uuid.uuid4().hex[:12]}",
                                   cache=tmp_path / "cache", **s3_server.options)

    def damage(self, store: Any, hash: str, data: bytes) -> None:
        store.fs.pipe_file(store.key(hash), data)
