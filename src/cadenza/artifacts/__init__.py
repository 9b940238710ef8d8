"""Versioned artifacts: every output a task stored, by content hash, and aliases such as
``active`` that point at one version and can be rolled back.

    versions("prices", "train")                 # newest first
    promote("prices", "train", digest)          # active -> that version (default: the newest)
    load("prices", "train")                     # the active version's value
    rollback("prices", "train")                 # active -> the version it pointed at before
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadenza.artifacts.integrity import check
from cadenza.artifacts.serializers import deserialize
from cadenza.exceptions import CadenzaError
from cadenza.store.base import AliasChange, ArtifactRecord

if TYPE_CHECKING:
    from cadenza.workspace import Location, Workspace

ACTIVE = "active"


def _open(home: str | Path | Location | None) -> Workspace:
    from cadenza.workspace import Workspace  # it imports this package's stores

    return Workspace.open(home)


def versions(pipeline: str, task: str, *, name: str = "return",
             home: str | Path | Location | None = None) -> list[ArtifactRecord]:
    """Every distinct output ``task`` stored (its return value, or declared file ``name``),
    newest first."""
    ws = _open(home)
    try:
        return ws.store.versions(pipeline, task, name)
    finally:
        ws.close()


def _resolve(ws: Workspace, pipeline: str, task: str, name: str, version: str | None
             ) -> ArtifactRecord:
    found = ws.store.versions(pipeline, task, name)
    if not found:
        raise CadenzaError(
            f"Task {task!r} of pipeline {pipeline!r} has stored no {name!r} output yet; run "
            "it first."
        )
    if version is None:
        return found[0]
    matches = [v for v in found if v.hash.startswith(version)]
    if len(matches) != 1:
        known = ", ".join(v.hash[:12] for v in found[:5])
        what = "no" if not matches else "more than one"
        raise CadenzaError(
            f"Version {version!r} matches {what} stored output of {pipeline}.{task} "
            f"({name}); its versions, newest first: {known}. Give more of the hash."
        )
    return matches[0]


def promote(pipeline: str, task: str, version: str | None = None, *, alias: str = ACTIVE,
            name: str = "return", by: str = "", home: str | Path | Location | None = None) -> str:
    """Point ``alias`` at ``version`` (a hash or a unique prefix; default the newest); return
    the full hash."""
    ws = _open(home)
    try:
        record = _resolve(ws, pipeline, task, name, version)
        ws.store.set_alias(AliasChange(pipeline, task, alias, record.hash, time.time(), by, name))
        return record.hash
    finally:
        ws.close()


def active(pipeline: str, task: str, *, alias: str = ACTIVE, name: str = "return",
           home: str | Path | Location | None = None) -> str | None:
    """The hash ``alias`` points at, or None if it was never set."""
    ws = _open(home)
    try:
        history = ws.store.alias_history(pipeline, task, alias, name)
        return history[0].hash if history else None
    finally:
        ws.close()


def rollback(pipeline: str, task: str, *, alias: str = ACTIVE, name: str = "return",
             by: str = "", home: str | Path | Location | None = None) -> str:
    """Point ``alias`` back at the version it pointed at before its current one; return it."""
    ws = _open(home)
    try:
        history = ws.store.alias_history(pipeline, task, alias, name)
        earlier = [c.hash for c in history[1:] if c.hash != history[0].hash] if history else []
        if not earlier:
            raise CadenzaError(
                f"{pipeline}.{task} has no earlier {alias!r} version to roll back to"
                + (f" (it points at {history[0].hash[:12]} and always has)." if history
                   else "; it was never set.")
            )
        ws.store.set_alias(AliasChange(pipeline, task, alias, earlier[0], time.time(), by,
                                       name))
        return earlier[0]
    finally:
        ws.close()


def load(pipeline: str, task: str, *, alias: str | None = ACTIVE, version: str | None = None,
         name: str = "return", home: str | Path | Location | None = None) -> Any:
    """The value of a version: the one ``alias`` points at, or ``version``. A declared file
    output gives its bytes."""
    ws = _open(home)
    try:
        if version is None and alias is not None:
            history = ws.store.alias_history(pipeline, task, alias, name)
            if not history:
                raise CadenzaError(
                    f"{pipeline}.{task} has no {alias!r} version yet; promote one first "
                    f"(cadenza artifacts tag {pipeline} {task} VERSION)."
                )
            version = history[0].hash
        record = _resolve(ws, pipeline, task, name, version)
        data = ws.store.artifact(record.hash)
        assert data is not None
        raw = (ws.artifacts.get(record.hash) if data.data is None
               else check(record.hash, data.data, "the metadata store"))
        return raw if record.serializer == "file" else deserialize(record.serializer, raw)
    finally:
        ws.close()


__all__ = ["ACTIVE", "active", "load", "promote", "rollback", "versions"]
