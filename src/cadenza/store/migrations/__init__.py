"""Versioned schema changes, one SQL file each, per backend.

``migrations/<backend>/NNNN_what_it_does.sql``: NNNN is the version the file brings the schema
to, counted from 1 without gaps. A store keeps the versions it applied in its table
``schema_migrations`` and applies each missing one in its own transaction, under the backend's
write lock (``BEGIN IMMEDIATE`` on SQLite, ``pg_advisory_xact_lock`` on PostgreSQL), so that
two processes upgrading at once apply each file once. A file is plain SQL: statements end with
``;`` at the end of a line, ``--`` starts a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from cadenza.exceptions import StoreError

BACKENDS = ("sqlite", "postgres")
_NAME = re.compile(r"(\d{4})_(\w+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements, in order, comments left out (for drivers that run one
        statement per call)."""
        lines = [line for line in self.sql.splitlines() if not line.lstrip().startswith("--")]
        return [s.strip() for s in re.split(r";\s*$", "\n".join(lines), flags=re.M) if s.strip()]


@cache
def migrations(backend: str) -> tuple[Migration, ...]:
    """Every migration of ``backend``, oldest first."""
    if backend not in BACKENDS:
        raise ValueError(f"no migrations for backend {backend!r}: one of {', '.join(BACKENDS)}")
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath(backend).iterdir():
        if match := _NAME.fullmatch(entry.name):
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StoreError(f"cadenza's {backend} migrations skip version {expected}: "
                             "the package is damaged; reinstall cadenza.", path=__package__)
    return tuple(found)


def latest(backend: str) -> int:
    """The schema version this cadenza writes."""
    return len(migrations(backend))


def pending(backend: str, applied: int, where: str) -> tuple[Migration, ...]:
    """The migrations the store ``where`` (a path or a DSN without its password) at version
    ``applied`` still needs; StoreError when it is newer than this cadenza."""
    if applied > latest(backend):
        raise StoreError(
            f"The store {where!r} has schema version {applied}, newer than this cadenza knows "
            f"({latest(backend)}): a newer cadenza upgraded it. Upgrade cadenza "
            "(pip install -U cadenza) here too.", path=where)
    return migrations(backend)[applied:]
