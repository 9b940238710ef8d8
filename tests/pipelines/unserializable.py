"""A pipeline whose ``numbers`` task returns a generator, which no serializer can store;
``total`` sits downstream of it."""

from __future__ import annotations

from collections.abc import Iterator

from cadenza import Pipeline

pipe = Pipeline("unserializable")


@pipe.task
def numbers() -> Iterator[int]:
    return (i * i for i in range(3))


@pipe.task
def total(numbers: Iterator[int]) -> int:
    return sum(numbers)
