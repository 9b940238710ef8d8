"""The ArtifactStore protocol: immutable bytes by content hash."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class ArtifactStore(Protocol):
    remote: bool
    """Other hosts read this store (a bucket): attempts copy their logs into it."""

    def put(self, hash: str, data: bytes) -> str:
        """Store ``data`` under ``hash`` atomically; return its URI. Storing twice is a no-op."""
        ...

    def put_file(self, hash: str, source: Path) -> str:
        """Copy the file ``source`` in under ``hash`` atomically; return its URI."""
        ...

    def get(self, hash: str) -> bytes:
        """The bytes stored under ``hash``; DamagedArtifactError if they no longer hash to it."""
        ...

    def exists(self, hash: str) -> bool: ...

    def path(self, hash: str) -> Path | None:
        """A local file holding the bytes, for command-line tasks, checked against ``hash``
        (DamagedArtifactError); None if there is none."""
        ...

    def delete(self, hash: str) -> None: ...
