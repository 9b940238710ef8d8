"""Whether a task's earlier result can be reused: the one decision `run` and `plan` share.

The runner asks when a task becomes ready, with its upstream outputs in hand; `plan` asks
before anything runs, with the outputs the upstream tasks will have if they are reused, or
return what they returned last time. Both get their answer from ``find`` and ``files``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cadenza.artifacts.base import ArtifactStore
from cadenza.engine.cache import CacheIndex, Outputs, fits, key_meta, key_of, sha256
from cadenza.engine.outputs import Files, check
from cadenza.graph import Node
from cadenza.store.base import CacheEntry

Interval = tuple[str | None, str | None]


def find(
    node: Node, outputs: Outputs, params: Mapping[str, Any], root: Path, interval: Interval,
    cache: CacheIndex, secret: frozenset[str], item: str | None = None,
) -> tuple[dict[str, Any], str, CacheEntry | None]:
    """The task's cache key (and what it is made of), and the entry stored under it whose
    params read through ``ctx.params`` are unchanged, if there is one."""
    meta, key = cache_key(node, outputs, params, root, interval, secret, item)
    return meta, key, entry_for(node, key, params, cache, secret)


def cache_key(
    node: Node, outputs: Outputs, params: Mapping[str, Any], root: Path, interval: Interval,
    secret: frozenset[str], item: str | None = None,
) -> tuple[dict[str, Any], str]:
    """The task's cache key and what it is made of (``find`` without the lookup)."""
    meta = key_meta(node, outputs, params, root, item, secret)
    return meta, key_of(meta, interval if node.spec.cache == "interval" else None)


def entry_for(node: Node, key: str, params: Mapping[str, Any], cache: CacheIndex,
              secret: frozenset[str]) -> CacheEntry | None:
    """The entry stored under ``key`` whose params read through ``ctx.params`` are unchanged."""
    entry = cache.get(node.name, key)
    if entry is not None and not fits(entry, params, secret):
        entry = None
    return entry


def files(entry: CacheEntry, declared: Mapping[str, str], root: Path,
          artifacts: ArtifactStore) -> Files:
    """The verdict on the entry's declared files at this run's paths (the value itself is
    checked by the caller, which remembers it per run: ``Workspace.holds``)."""
    return check(root, declared, entry.files, artifacts)


def gate_key(upstream: Mapping[str, str | None]) -> str:
    """A gate's key: the outputs it was shown. Approved once for these, approved again."""
    return sha256(("gate:" + "|".join(f"{up}={out}" for up, out in upstream.items())).encode())
