"""CacheIndex: how a run finds earlier results by task and key."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_big_cache_is_looked_up_by_key_not_read_whole(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """Past PRELOAD entries a run asks the store for each key it needs: a run's start must
    not read millions of entries."""
    from cadenza.engine import cache as cache_module
    from cadenza.engine.cache import CacheIndex
    from cadenza.store.base import Batch, CacheEntry
    from cadenza.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "c.db")
    store.apply(Batch(cache=[CacheEntry("p", f"t{i % 3}", f"k{i}", None, {}, "r", float(i), {})
                             for i in range(10)]))
    monkeypatch.setattr(cache_module, "PRELOAD", 4)
    index = CacheIndex(store, "p")
    assert not index.complete and len(index.entries) == 5
    assert index.get("t0", "k0") is not None and index.get("t0", "k0").key == "k0"
    assert index.get("t0", "nope") is None and ("t0", "nope") in index.entries
    assert [e.key for e in index.newest("t1")] == ["k7", "k4", "k1"]
    lazy = CacheIndex(store, "p", preload=0)  # `cadenza plan`: nothing read up front
    assert not lazy.complete and lazy.entries == {}
    assert lazy.get("t2", "k5") is not None and next(lazy.newest("t2")).key == "k8"
    monkeypatch.setattr(cache_module, "PRELOAD", 100)
    whole = CacheIndex(store, "p")
    assert whole.complete and whole.get("t0", "nope") is None
    assert [e.key for e in whole.newest("t1")] == ["k7", "k4", "k1"]
    whole.add(CacheEntry("p", "t1", "k99", None, {}, "r", 99.0, {}))  # what a run just stored
    assert [e.key for e in whole.newest("t1")] == ["k99", "k7", "k4", "k1"]
    store.close()


def test_a_mapped_task_finds_its_items_cached_with_a_few_queries_not_some_per_item(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A re-run of a big map asks the store for its items' cache entries, their outputs and
    their values in batches: the number of reads does not grow with the items."""
    from cadenza import Pipeline
    from cadenza.engine import cache as cache_module

    pipe = Pipeline("bigmap")

    @pipe.task
    def numbers() -> list[int]:
        return list(range(cache_module.PRELOAD + 1000))  # past PRELOAD: read by key

    @pipe.task(map_over="numbers")
    def double(numbers: int) -> int:
        return numbers * 2

    @pipe.task
    def total(double: list[int]) -> int:
        return sum(double)

    home = tmp_path / ".cadenza"
    first = pipe.run(executor="inline", home=home)
    assert first.ok
    expected = first.output("total")
    first.workspace.close()

    statements: list[str] = []
    from cadenza.store import sqlite as sqlite_module

    real_init = sqlite_module.SqliteStore.__init__

    def init(self: sqlite_module.SqliteStore, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        self._db.set_trace_callback(statements.append)  # the real connection, observed

    monkeypatch.setattr(sqlite_module.SqliteStore, "__init__", init)
    again = pipe.run(executor="inline", home=home)
    assert again.ok and again.output("total") == expected
    assert {t.state for t in again.tasks.values()} == {"cached"}
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) < 100, f"{len(reads)} reads for {cache_module.PRELOAD + 1000} items"
    again.workspace.close()
