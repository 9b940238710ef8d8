"""FsspecArtifactStore beyond the contract: S3 going away, exclusive creates on the wire, the
local cache behind path(), and artifact_store(url) choosing the store."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cadenza.artifacts.fsspec import ArtifactStoreError, FsspecArtifactStore
from cadenza.artifacts.local import LocalArtifactStore
from cadenza.artifacts.open import artifact_store
from cadenza.exceptions import CadenzaError, DamagedArtifactError
from cadenza.testing.artifacts import MotoS3, moto_s3, sha


@pytest.fixture
def s3() -> Iterator[MotoS3]:
    """A server of this test's own, which it may stop."""
    pytest.importorskip("s3fs", reason="S3 needs cadenza[s3]")
    pytest.importorskip("moto.server", reason="the local S3 server needs moto[server]")
    with moto_s3() as server:
        yield server


def _store(s3: MotoS3, bucket: str, tmp_path: Path, **options: Any) -> FsspecArtifactStore:
    return FsspecArtifactStore(f"s3://{bucket}/team", cache=tmp_path / "cache",
                               **s3.options, **options)


def _port(s3: MotoS3) -> int:
    return int(s3.endpoint_url.rsplit(":", 1)[1])


def test_s3_unavailable_is_one_clear_error_and_leaves_nothing(s3: MotoS3,
                                                              tmp_path: Path) -> None:
    bucket = s3.bucket()
    store = _store(s3, bucket, tmp_path)
    store.put(sha(b"before"), b"before")
    s3.server.stop()
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights" * 1000)
    for attempt in (lambda: store.put(sha(b"after"), b"after"),
                    lambda: store.put_file(sha(source.read_bytes()), source),
                    lambda: store.get(sha(b"before")),
                    lambda: store.exists(sha(b"after"))):
        with pytest.raises(ArtifactStoreError) as caught:
            attempt()
        message = str(caught.value)
        assert isinstance(caught.value, CadenzaError)
        assert "\n" not in message
        assert f"s3://{bucket}/team" in message and "EndpointConnectionError" in message
        assert caught.value.url == f"s3://{bucket}/team"
    with moto_s3(_port(s3)) as again:  # the same server back, with what it held
        store = _store(again, bucket, tmp_path)
        assert store.get(sha(b"before")) == b"before"
        assert not store.exists(sha(b"after"))
        assert not store.exists(sha(source.read_bytes()))


def test_writes_are_exclusive_creates_on_the_wire(s3: MotoS3, tmp_path: Path) -> None:
    store = _store(s3, s3.bucket(), tmp_path)
    store.pipe_limit = 0  # put_file through fs.put_file, as a large file goes
    sent: list[tuple[str, Any]] = []
    store.fs.connect()
    store.fs.s3.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **kw: sent.append((request.url, request.headers.get("If-None-Match"))),
    )
    source = tmp_path / "out.csv"
    source.write_bytes(b"a,b\n1,2\n")
    store.put(sha(b"value"), b"value")
    store.put_file(sha(source.read_bytes()), source)
    assert [match for _, match in sent] == [b"*", b"*"]
    # An object already at the key (other bytes, to tell them apart) is never replaced:
    # the PUT goes out, the server refuses it (412), and that counts as stored already.
    store.fs.pipe_file(store.key(sha(b"raced")), b"another writer's bytes")
    sent.clear()
    store.put(sha(b"raced"), b"raced")
    assert len(sent) == 1
    assert store.fs.cat_file(store.key(sha(b"raced"))) == b"another writer's bytes"


def test_non_exclusive_mode_for_servers_without_if_none_match(s3: MotoS3,
                                                              tmp_path: Path) -> None:
    store = _store(s3, s3.bucket(), tmp_path, exclusive=False)
    store.put(sha(b"v"), b"v")
    store.put(sha(b"v"), b"other")
    assert store.get(sha(b"v")) == b"v"


def test_bytes_that_are_not_their_hash_are_refused(tmp_path: Path) -> None:
    store = FsspecArtifactStore(f"memory://t-{uuid.uuid4().hex}", cache=tmp_path)
    with pytest.raises(ArtifactStoreError, match="hash to"):
        store.put(sha(b"right"), b"wrong")
    assert not store.exists(sha(b"right"))


def test_a_damaged_object_is_set_aside_for_a_look(tmp_path: Path) -> None:
    store = FsspecArtifactStore(f"memory://t-{uuid.uuid4().hex}", cache=tmp_path)
    digest = sha(b"good")
    store.put(digest, b"good")
    store.fs.pipe_file(store.key(digest), b"bad!")
    with pytest.raises(DamagedArtifactError):
        store.get(digest)
    assert not store.exists(digest)
    assert store.fs.cat_file(f"{store.url}/.damaged/{digest}") == b"bad!"


def test_path_downloads_once_into_the_cache_and_works_offline(s3: MotoS3,
                                                              tmp_path: Path) -> None:
    bucket = s3.bucket()
    store = _store(s3, bucket, tmp_path)
    data = b"an input for a shell task" * 100
    store.put(sha(data), data)
    local = store.path(sha(data))
    assert local == tmp_path / "cache" / sha(data)[:2] / sha(data)
    assert local.read_bytes() == data
    s3.server.stop()
    again = _store(s3, bucket, tmp_path)  # another process on this host: same cache
    assert again.path(sha(data)) == local


def test_a_changed_cached_copy_is_fetched_again(tmp_path: Path) -> None:
    store = FsspecArtifactStore(f"memory://t-{uuid.uuid4().hex}", cache=tmp_path)
    store.put(sha(b"original"), b"original")
    local = store.path(sha(b"original"))
    assert local is not None
    local.write_bytes(b"a shell task wrote to its input")
    assert store.path(sha(b"original")) == local
    assert local.read_bytes() == b"original"


def test_unknown_url_is_one_clear_error() -> None:
    with pytest.raises(ArtifactStoreError, match="'nosuch://x' cannot be opened"):
        FsspecArtifactStore("nosuch://x")


def test_a_password_in_the_url_is_never_shown() -> None:
    with pytest.raises(ArtifactStoreError) as caught:
        FsspecArtifactStore("nosuch://user:hunter2@host/x")
    assert "hunter2" not in str(caught.value) and "user:***@host" in str(caught.value)


# artifact_store(url)

def test_a_path_or_file_url_keeps_the_local_store(tmp_path: Path) -> None:
    plain = artifact_store(tmp_path / "a")
    assert isinstance(plain, LocalArtifactStore) and plain.root == tmp_path / "a"
    url = artifact_store(f"file://{tmp_path}/b%20c")
    assert isinstance(url, LocalArtifactStore) and url.root == tmp_path / "b c"


def test_other_urls_give_an_fsspec_store(tmp_path: Path) -> None:
    store = artifact_store(f"memory://t-{uuid.uuid4().hex}", cache=tmp_path)
    assert isinstance(store, FsspecArtifactStore)
    store.put(sha(b"x"), b"x")
    assert store.get(sha(b"x")) == b"x"


@pytest.mark.parametrize("url", ["file://server/share", "file://relative/path"])
def test_a_file_url_for_another_host_is_refused(url: str) -> None:
    with pytest.raises(CadenzaError, match="three slashes"):
        artifact_store(url)


def test_storage_options_for_a_local_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CadenzaError, match="fsspec URLs"):
        artifact_store(tmp_path, endpoint_url="http://127.0.0.1:1")


def test_local_runs_do_not_load_fsspec(tmp_path: Path) -> None:
    code = (
        "import sys; import cadenza.cli, cadenza.artifacts.fsspec; "
        "from cadenza.artifacts.open import artifact_store; "
        f"artifact_store({str(tmp_path)!r}); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('fsspec', 's3fs')); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
