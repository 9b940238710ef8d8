"""Two valid pipelines in one module, ``first`` and ``second``: loading it needs ``:NAME``."""

from __future__ import annotations

from cadenza import Pipeline

first = Pipeline("first")
second = Pipeline("second")


@first.task
def one() -> int:
    return 1


@second.task
def two() -> int:
    return 2


@second.task
def double(two: int) -> int:
    return two * 2
