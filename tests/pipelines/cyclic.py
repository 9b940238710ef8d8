"""A pipeline with a cycle: a -> b -> c -> a. Importing works; ``pipe.graph()`` raises
CycleError."""

from __future__ import annotations

from cadenza import Pipeline

pipe = Pipeline("cyclic")


@pipe.task
def start() -> int:
    return 1


@pipe.task
def a(c: int, start: int) -> int:
    return c + start


@pipe.task
def b(a: int) -> int:
    return a + 1


@pipe.task
def c(b: int) -> int:
    return b + 1
