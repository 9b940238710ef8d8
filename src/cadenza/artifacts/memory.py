"""Artifacts in a dictionary, for tests and in-memory runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cadenza.artifacts.integrity import check, same_source, valid_hash
from cadenza.exceptions import DamagedArtifactError


class MemoryArtifactStore:
    remote = False
    """Other hosts do not read it: in this process."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, hash: str, data: bytes) -> str:
        self._blobs.setdefault(valid_hash(hash), data)
        return f"memory://{hash}"

    def put_file(self, hash: str, source: Path) -> str:
        data = Path(source).read_bytes()
        same_source(valid_hash(hash), hashlib.sha256(data).hexdigest(), Path(source), "memory")
        return self.put(hash, data)

    def get(self, hash: str) -> bytes:
        try:
            return check(hash, self._blobs[valid_hash(hash)], "memory")
        except DamagedArtifactError:
            del self._blobs[hash]  # the task that made it runs again; a put stores it anew
            raise

    def exists(self, hash: str) -> bool:
        return valid_hash(hash) in self._blobs

    def path(self, hash: str) -> Path | None:
        valid_hash(hash)
        return None

    def delete(self, hash: str) -> None:
        self._blobs.pop(valid_hash(hash), None)
