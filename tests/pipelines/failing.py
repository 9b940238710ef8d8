"""A pipeline whose ``explode`` task raises ValueError: ``summarise`` and ``publish`` sit
downstream of it (upstream_failed), ``side`` does not (success)."""

from __future__ import annotations

from cadenza import Pipeline

pipe = Pipeline("failing")


@pipe.task
def ingest() -> list[int]:
    return [1, 2, 3]


@pipe.task
def explode(ingest: list[int]) -> int:
    raise ValueError(f"bad row in {ingest!r}")


@pipe.task
def summarise(explode: int) -> str:
    return f"total {explode}"


@pipe.task
def publish(summarise: str) -> str:
    return summarise.upper()


@pipe.task
def side(ingest: list[int]) -> int:
    return len(ingest)
