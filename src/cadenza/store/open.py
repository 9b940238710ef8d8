"""``open_store(location)``: the metadata store a location names (``--db`` / ``CADENZA_DB``).

    open_store(".cadenza/cadenza.db")                      # SqliteStore
    open_store("sqlite:///state/cadenza.db")               # the same, relative to here
    open_store("sqlite:////srv/cadenza/cadenza.db")        # an absolute path: four slashes
    open_store("postgresql://cadenza@db.internal/cadenza") # PostgresStore (cadenza[postgres])

``sqlite://`` URLs read as SQLAlchemy's do: what follows the third slash is the path, so an
absolute one starts with a fourth. psycopg is imported only for a PostgreSQL location.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from cadenza.exceptions import StoreError
from cadenza.store.base import MetadataStore
from cadenza.store.migrations import Migration

SQLITE_URL = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_KEY_VALUE = re.compile(r"\s*(\w+\s*=\s*('(?:[^'\\]|\\.)*'|\S+)\s*)+")
"""A libpq ``key=value`` DSN (``host=db dbname=cadenza``): PostgreSQL too."""
FORMS = ("a file path, sqlite:///PATH, or postgresql://USER@HOST/DATABASE "
         "(pip install 'cadenza[postgres]')")


class VersionedStore(MetadataStore, Protocol):
    """A store whose schema is versioned by store/migrations/ (SQLite and PostgreSQL)."""

    def schema_version(self) -> int:
        """How many of its backend's migrations the store has applied."""

    def upgrade(self) -> list[Migration]:
        """Apply the missing migrations; the ones applied here, oldest first."""


def backend(location: str | Path) -> str:
    """``sqlite`` or ``postgres``: the kind of store ``location`` names; StoreError naming
    the accepted forms for anything else (``mysql://...``, ``sqlite://relative``)."""
    text = str(location)
    if text.startswith(POSTGRES_SCHEMES) or _KEY_VALUE.fullmatch(text):
        return "postgres"
    if text.startswith(SQLITE_URL) or "://" not in text:
        if text in ("", SQLITE_URL):
            raise StoreError(f"The store location {text!r} names no file; give {FORMS}.",
                             path=text)
        return "sqlite"
    raise StoreError(f"The store location {describe(text)!r} is not one cadenza can open; "
                     f"give {FORMS}.", path=describe(text))


def sqlite_path(location: str | Path) -> Path:
    """The file a SQLite location names (``sqlite:///rel``, ``sqlite:////abs`` or a path)."""
    text = str(location)
    if text.startswith(SQLITE_URL):
        text = unquote(text[len(SQLITE_URL):].split("?", 1)[0])
    return Path(text).expanduser()


def open_store(location: str | Path, *, readonly: bool = False,
               upgrade: bool = True) -> VersionedStore:
    """The store at ``location`` (see the module docstring). ``readonly``: take no write lock
    and refuse writes; ``upgrade=False``: leave an older schema as it is (``cadenza db``)."""
    if backend(location) == "sqlite":
        from cadenza.store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(location), readonly=readonly, upgrade=upgrade)
    try:
        from cadenza.store.postgres import PostgresStore
    except ImportError as missing:
        raise StoreError(
            f"The store {describe(location)!r} is on PostgreSQL, which needs psycopg 3 "
            f"({missing.name or 'psycopg'} is not installed): pip install 'cadenza[postgres]'.",
            path=describe(location)) from None
    return PostgresStore(str(location), readonly=readonly, upgrade=upgrade)


def describe(location: str | Path) -> str:
    """``location`` as messages may show it: never with a password (in the URL's user part,
    in its ``?password=`` or as a ``password=`` pair of a ``key=value`` DSN)."""
    text = str(location)
    if text.startswith(SQLITE_URL):
        return text
    if "://" not in text:
        return re.sub(r"\s*\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", "", text).strip()
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed [ in the host: show the scheme only
        return text.split("://", 1)[0] + "://..."
    netloc = parts.netloc
    if "@" in netloc:
        who, _, host = netloc.rpartition("@")
        netloc = f"{who.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k.lower() != "password"])
    return urlunsplit(parts._replace(netloc=netloc, query=query))
