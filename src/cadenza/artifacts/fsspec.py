"""Artifacts on S3, GCS, ``memory://`` or any fsspec filesystem: ``<url>/ab/abcdef...``.

Objects are content-addressed and immutable. Each is published by one request that either
stores the whole object or nothing: bytes by one ``pipe_file`` (one PUT), files by
``put_file`` (one PUT, or a multipart upload that S3 shows only once completed and aborts on
error), never through ``fs.open(..., "wb")``, whose ``with`` block publishes what it wrote so
far when it raises (fsspec/s3fs#154). The content is hashed before it is sent, so an object
never holds bytes other than its name says; and it is created exclusively (``IfNoneMatch="*"``
on S3): a second writer of the same hash leaves the first object alone.

Every read is checked against the hash. ``path()`` downloads to a local cache folder (default
``$XDG_CACHE_HOME/cadenza/artifacts``, else ``~/.cache/cadenza/artifacts``), shared by every
store URL since a file there is named by, and checked against, its content's hash.

fsspec (and s3fs, gcsfs, ...) are imported when a store is made, never by ``cadenza run`` on
a local project: ``pip install 'cadenza[s3]'``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from cadenza.artifacts.integrity import (
    ArtifactStoreError,
    check,
    check_file,
    same_source,
    valid_hash,
)
from cadenza.exceptions import DamagedArtifactError

T = TypeVar("T")
_CHUNK = 1 << 20



def _shown(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cadenza" / "artifacts"


class FsspecArtifactStore:
    remote = True
    """Other hosts read it (a bucket, or a filesystem they reach): attempts copy their logs in."""

    pipe_limit = 64 << 20
    """Files up to this size are read whole, hashed and sent with one PUT; larger ones are
    copied (and hashed) into the cache folder's ``.tmp`` first and sent from that copy."""

    def __init__(self, url: str, *, cache: str | Path | None = None, exclusive: bool = True,
                 **storage_options: Any) -> None:
        """``url`` as fsspec takes it (``s3://bucket/prefix``, ``gs://...``, ``memory://x``);
        ``storage_options`` go to its filesystem (``endpoint_url=``, ``key=``, ...).
        ``exclusive=False`` for an S3-compatible server that refuses ``If-None-Match`` on
        PUT: a write then looks first and sends only if the object is not there."""
        self.url = url.rstrip("/")
        self._shown = _shown(self.url)
        try:
            import fsspec  # type: ignore[import-untyped]

            self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise ArtifactStoreError(
                f"The artifact store URL {self._shown!r} cannot be opened: "
                f"{_line(exc)}. Install what it names (pip install 'cadenza[s3]' for s3://), "
                "or give a local folder.", url=self._shown,
            ) from exc
        self._root = str(root).rstrip("/")
        self.cache = Path(cache) if cache is not None else default_cache()
        self.exclusive = exclusive
        self._checked: set[tuple[str, int, int]] = set()
        """Cached files whose content was checked, by (hash, size, mtime)."""

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self._shown!r})"

    def key(self, hash: str) -> str:
        """Where ``hash`` lives in the filesystem (refusing anything but a SHA-256 in hex)."""
        return f"{self._root}/{valid_hash(hash)[:2]}/{hash}"

    def _uri(self, key: str) -> str:
        return str(self.fs.unstrip_protocol(key))

    def _call(self, action: str, hash: str, request: Callable[[], T]) -> T:
        """Run one request; a failure other than "not there" / "there already" becomes one
        ArtifactStoreError naming the store."""
        try:
            return request()
        except (FileNotFoundError, FileExistsError):
            raise
        except Exception as exc:
            written = " Nothing was stored." if action.startswith("store") else ""
            raise ArtifactStoreError(
                f"The artifact store {self._shown!r} could not {action} artifact {hash[:16]}: "
                f"{type(exc).__name__}: {_line(exc)}.{written} Check that it is reachable and "
                "that its credentials allow this, then run again.", url=self._shown,
            ) from exc

    def _create(self, hash: str, send: Callable[[str], object]) -> str:
        """Publish ``hash`` by ``send(mode)``, exclusively; an object there already is kept."""
        key = self.key(hash)
        if not self.exclusive and self.exists(hash):
            return self._uri(key)
        with contextlib.suppress(FileExistsError):  # a writer of the same bytes came first
            self._call("store", hash, lambda: send("create" if self.exclusive else "overwrite"))
        return self._uri(key)

    def put(self, hash: str, data: bytes) -> str:
        key = self.key(hash)
        if hashlib.sha256(data).hexdigest() != hash:
            if self.exists(hash):  # stored already: a put never changes an object
                return self._uri(key)
            raise ArtifactStoreError(
                f"The bytes given for artifact {hash[:16]} hash to "
                f"{hashlib.sha256(data).hexdigest()[:16]}; nothing was stored in "
                f"{self._shown!r}. Store bytes under their own SHA-256.", url=self._shown,
            )
        return self._create(hash, lambda mode: self.fs.pipe_file(key, data, mode=mode))

    def put_file(self, hash: str, source: Path) -> str:
        key = self.key(hash)
        if self.exists(hash):  # a large file is not sent again
            return self._uri(key)
        source = Path(source)
        if source.stat().st_size <= self.pipe_limit:
            data = source.read_bytes()
            same_source(hash, hashlib.sha256(data).hexdigest(), source, self._shown)
            return self._create(hash, lambda mode: self.fs.pipe_file(key, data, mode=mode))
        with self._snapshot(hash, source) as copy:
            return self._create(
                hash, lambda mode: self.fs.put_file(str(copy), key, mode=mode)
            )

    @contextlib.contextmanager
    def _snapshot(self, hash: str, source: Path) -> Iterator[Path]:
        """A private copy of ``source``, hashed as it is made: what is sent cannot change."""
        with self._temp(hash) as tmp:
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            same_source(hash, digest.hexdigest(), source, self._shown)
            yield tmp

    @contextlib.contextmanager
    def _temp(self, hash: str) -> Iterator[Path]:
        """A temp file in the cache's ``.tmp``, removed at the end unless renamed away. The
        writer's pid leads its name, as in LocalArtifactStore, so ``clean_temp`` there can
        tell a live writer's file from one a killed writer left."""
        folder = self.cache / ".tmp"
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=f"{os.getpid()}.{hash[:16]}.")
        os.close(fd)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def get(self, hash: str) -> bytes:
        """The bytes stored under ``hash``, checked against it (DamagedArtifactError)."""
        key = self.key(hash)
        data = self._read(hash, key)
        try:
            return check(hash, data, self._uri(key))
        except DamagedArtifactError:
            # Read again before setting it aside: a read cut short on the way must not cost
            # a good object.
            data = self._read(hash, key)
            if hashlib.sha256(data).hexdigest() == hash:
                return data
            self._set_aside(hash)
            raise

    def _read(self, hash: str, key: str) -> bytes:
        try:
            return bytes(self._call("read", hash, lambda: self.fs.cat_file(key)))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"No artifact {hash[:16]} in {self._shown!r}: it was deleted, or never stored "
                "there. Run the task that makes it again."
            ) from None

    def _set_aside(self, hash: str) -> None:
        """Move a damaged object to ``.damaged/``: kept for a look, no longer taken for the
        artifact, so the next put stores a good copy; removed if it cannot be moved."""
        key = self.key(hash)
        try:
            self.fs.mv(key, f"{self._root}/.damaged/{hash}")
        except Exception:
            with contextlib.suppress(Exception):  # another reader set it aside first
                self.fs.rm_file(key)

    def exists(self, hash: str) -> bool:
        key = self.key(hash)
        return bool(self._call("look up", hash, lambda: self.fs.exists(key)))

    def path(self, hash: str) -> Path | None:
        """A local copy of ``hash`` in the cache folder, downloaded the first time it is asked
        for and checked against the hash (again if it changed since); None if it is not
        stored."""
        key = self.key(hash)
        file = self.cache / hash[:2] / hash
        with contextlib.suppress(FileNotFoundError):
            stat = file.stat()
            seen = (hash, stat.st_size, stat.st_mtime_ns)
            if seen in self._checked:
                return file
            try:
                check_file(hash, file)
                self._checked.add(seen)
                return file
            except DamagedArtifactError:
                file.unlink(missing_ok=True)  # only the cached copy: fetch it again
        with self._temp(hash) as tmp:
            try:
                self._call("download", hash, lambda: self.fs.get_file(key, str(tmp)))
            except FileNotFoundError:
                return None
            try:
                check_file(hash, tmp)
            except DamagedArtifactError:
                self._set_aside(hash)
                raise
            file.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, file)
        stat = file.stat()
        self._checked.add((hash, stat.st_size, stat.st_mtime_ns))
        return file

    def delete(self, hash: str) -> None:
        key = self.key(hash)
        with contextlib.suppress(FileNotFoundError):
            self._call("delete", hash, lambda: self.fs.rm_file(key))
        (self.cache / hash[:2] / hash).unlink(missing_ok=True)


def _line(exc: BaseException) -> str:
    """The first line of an exception's text (or its type), for a one-line message."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
