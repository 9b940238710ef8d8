"""The contract every ArtifactStore keeps, as a pytest suite, and a local S3 server for it.

Subclass ``ArtifactStoreContract`` in a ``Test*`` class with a ``store`` fixture and a
``damage`` method; pytest then runs every contract test against that store::

    class TestMyStore(ArtifactStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyArtifactStore(tmp_path / "artifacts")

        def damage(self, store, hash, data):
            (store.root / hash).write_bytes(data)   # behind the store's back

``moto_s3()`` starts moto's S3 server in this process on 127.0.0.1 (about 0.3 s) and gives
the storage options that point s3fs at it over real HTTP: nothing contacts the internet.
Needs pytest (``cadenza[testing]``), and ``moto[server]`` for ``moto_s3``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import pytest
except ImportError as error:  # pragma: no cover - pytest is there wherever the suites run
    raise ImportError(
        "cadenza.testing.artifacts is a pytest suite and pytest is not installed. Install it "
        "with: pip install 'cadenza[testing]'"
    ) from error

from cadenza.artifacts.base import ArtifactStore
from cadenza.exceptions import CadenzaError, DamagedArtifactError

HOSTILE = [
    "", "..", "../" + "a" * 61, "a" * 63 + "/", "/" + "a" * 63, "A" * 64, "g" * 64,
    "ab/../../" + "a" * 55, "a" * 63 + "\n", "a" * 63 + "\x00", "a" * 63 + " ",
]
"""Strings that are not SHA-256 hashes in hex, several of them paths out of the store."""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStoreContract:
    """What every artifact store must do. Subclasses give a ``store`` fixture and
    ``damage``."""

    def damage(self, store: Any, hash: str, data: bytes) -> None:
        """Replace the stored bytes of ``hash`` with ``data`` behind the store's back, as a
        bad disk or a hand edit would."""
        raise NotImplementedError

    # put / get / exists / delete

    def test_put_then_get_gives_the_bytes_back(self, store: ArtifactStore) -> None:
        data = b"the churn model, version 1"
        uri = store.put(sha(data), data)
        assert isinstance(uri, str) and uri
        assert store.get(sha(data)) == data

    def test_empty_bytes_are_an_artifact_too(self, store: ArtifactStore) -> None:
        store.put(sha(b""), b"")
        assert store.exists(sha(b""))
        assert store.get(sha(b"")) == b""

    def test_exists_only_after_put_and_until_delete(self, store: ArtifactStore) -> None:
        data = b"x" * 1000
        assert not store.exists(sha(data))
        store.put(sha(data), data)
        assert store.exists(sha(data))
        store.delete(sha(data))
        assert not store.exists(sha(data))
        assert store.path(sha(data)) is None

    def test_delete_of_a_missing_hash_is_a_noop(self, store: ArtifactStore) -> None:
        store.delete(sha(b"never stored"))

    def test_get_of_a_missing_hash_raises(self, store: ArtifactStore) -> None:
        with pytest.raises((FileNotFoundError, KeyError)):
            store.get(sha(b"never stored"))

    def test_path_of_a_missing_hash_is_none(self, store: ArtifactStore) -> None:
        assert store.path(sha(b"never stored")) is None

    # immutability

    def test_a_second_put_of_a_hash_is_a_noop(self, store: ArtifactStore) -> None:
        data = b"once"
        first = store.put(sha(data), data)
        assert store.put(sha(data), data) == first
        assert store.get(sha(data)) == data

    def test_a_second_put_with_other_bytes_changes_nothing(self, store: ArtifactStore) -> None:
        data = b"the first bytes"
        store.put(sha(data), data)
        store.put(sha(data), b"other bytes under the same hash")
        assert store.get(sha(data)) == data

    def test_put_file_keeps_a_copy_not_the_source(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        source = tmp_path / "report.csv"
        data = b"id,score\n" + b"1,0.5\n" * 10_000
        source.write_bytes(data)
        store.put_file(sha(data), source)
        source.write_bytes(b"rewritten after it was stored")
        assert store.get(sha(data)) == data
        local = store.path(sha(data))
        assert local is None or local.read_bytes() == data

    def test_put_file_of_a_stored_hash_is_a_noop(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        data = b"a file"
        store.put(sha(data), data)
        source = tmp_path / "same.bin"
        source.write_bytes(data)
        store.put_file(sha(data), source)
        assert store.get(sha(data)) == data

    # damaged bytes

    def test_damaged_bytes_are_refused_on_get_and_a_new_put_repairs(
        self, store: ArtifactStore
    ) -> None:
        data = b"a good value"
        store.put(sha(data), data)
        self.damage(store, sha(data), b"a bad value!")
        with pytest.raises(DamagedArtifactError) as caught:
            store.get(sha(data))
        assert caught.value.hash == sha(data)
        assert caught.value.found == sha(b"a bad value!")
        store.put(sha(data), data)  # the task ran again: the good copy is stored anew
        assert store.get(sha(data)) == data

    def test_damaged_bytes_are_refused_by_path(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        data = b"an input file for a shell task"
        store.put(sha(data), data)
        self.damage(store, sha(data), b"truncated")
        try:
            local = store.path(sha(data))
        except DamagedArtifactError:
            return
        assert local is None  # a store that keeps no files on disk hands out none

    # hostile hashes

    @pytest.mark.parametrize("bad", HOSTILE)
    def test_hostile_hashes_are_refused(
        self, store: ArtifactStore, tmp_path: Path, bad: str
    ) -> None:
        source = tmp_path / "f"
        source.write_bytes(b"x")
        calls: list[Callable[[], object]] = [
            lambda: store.put(bad, b"x"), lambda: store.put_file(bad, source),
            lambda: store.get(bad), lambda: store.exists(bad), lambda: store.path(bad),
            lambda: store.delete(bad),
        ]
        for call in calls:
            with pytest.raises(ValueError, match="not an artifact hash"):
                call()

    # failed writes

    def test_a_source_that_fails_to_read_stores_nothing(self, store: ArtifactStore) -> None:
        # /proc/self/mem opens, then its first read fails with EIO (address 0 is unmapped):
        # a real I/O error inside put_file.
        source = Path("/proc/self/mem")
        if not source.exists():
            pytest.skip("needs Linux's /proc/self/mem for a source whose read fails")
        digest = sha(b"what the file should have held")
        with pytest.raises(OSError):
            store.put_file(digest, source)
        assert not store.exists(digest)
        store.put(digest, b"what the file should have held")
        assert store.get(digest) == b"what the file should have held"

    def test_a_source_cut_short_mid_read_stores_nothing(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        # A FIFO whose writer (the task that made the file, say) dies halfway: the store
        # reads half the bytes, then end of file.
        data = os.urandom(3 << 20)
        fifo = tmp_path / "output.bin"
        os.mkfifo(fifo)
        writer = threading.Thread(target=_write_half, args=(fifo, data), daemon=True)
        writer.start()
        with contextlib.suppress(CadenzaError):  # refused: what it read has another hash
            store.put_file(sha(data), fifo)
        writer.join(timeout=30)
        assert not store.exists(sha(data))

    # concurrency

    def test_two_threads_putting_one_hash(self, store: ArtifactStore, tmp_path: Path) -> None:
        for n in range(10):
            data = f"round {n} ".encode() * 5000
            source = tmp_path / f"round{n}.bin"
            source.write_bytes(data)
            start = threading.Barrier(2)
            errors: list[BaseException] = []

            def put(use_file: bool, data: bytes = data, source: Path = source,
                    start: threading.Barrier = start, errors: list[BaseException] = errors
                    ) -> None:
                try:
                    start.wait(timeout=30)
                    if use_file:
                        store.put_file(sha(data), source)
                    else:
                        store.put(sha(data), data)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=put, args=(n % 2 == 0 and i == 0,))
                       for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            assert store.get(sha(data)) == data
            local = store.path(sha(data))
            assert local is None or local.read_bytes() == data


def _write_half(fifo: Path, data: bytes) -> None:
    """Open ``fifo`` for writing once a reader has it open (giving up after 30 s if none
    comes), write the first half of ``data`` and close it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:  # ENXIO: no reader yet
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                return
            time.sleep(0.005)
    os.set_blocking(fd, True)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data[: len(data) // 2])
    except BrokenPipeError:
        pass  # the reader gave up first


@dataclass
class MotoS3:
    """A moto S3 server on 127.0.0.1 and the storage options that reach it."""

    endpoint_url: str
    server: Any
    region: str = "eu-west-1"

    @property
    def options(self) -> dict[str, Any]:
        """s3fs options for this server: dummy credentials, one quick attempt per request
        (a stopped server is an error in about a second, not after minutes of retries)."""
        return {
            "endpoint_url": self.endpoint_url, "key": "testing", "secret": "testing",
            "client_kwargs": {"region_name": self.region},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2,
                              "read_timeout": 10},
            "skip_instance_cache": True,
        }

    def bucket(self, name: str | None = None) -> str:
        """Make a new bucket; return its name."""
        import s3fs  # type: ignore[import-untyped]

        name = name or f"cadenza-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(**self.options).mkdir(name)
        return name


@contextmanager
def moto_s3(port: int = 0) -> Iterator[MotoS3]:
    """moto's S3 server in this process on 127.0.0.1 (on a free port unless ``port``), for
    the time of the ``with`` block."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    try:
        yield MotoS3(f"http://{host}:{bound}", server)
    finally:
        server.stop()


__all__ = ["HOSTILE", "ArtifactStoreContract", "MotoS3", "moto_s3", "sha"]
