"""A small valid pipeline: ingest -> clean -> (train, report), with a param ``threshold``."""

from __future__ import annotations

from cadenza import Pipeline

pipe = Pipeline("good", params={"threshold": 0.5}, description="A small valid pipeline.")


@pipe.task
def ingest() -> list[float | None]:
    """Read the raw numbers, one of them missing."""
    return [0.1, 0.4, None, 0.7, 0.9]


@pipe.task
def clean(ingest: list[float | None]) -> list[float]:
    """Drop the missing values."""
    return [x for x in ingest if x is not None]


@pipe.task
def train(clean: list[float], threshold: float) -> dict[str, float]:
    """Count the values above the threshold."""
    above = [x for x in clean if x > threshold]
    return {"threshold": threshold, "share_above": len(above) / len(clean)}


@pipe.task
def report(clean: list[float]) -> str:
    """Summarise the clean data."""
    return f"{len(clean)} values, mean {sum(clean) / len(clean):.2f}"
