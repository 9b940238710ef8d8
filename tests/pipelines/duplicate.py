"""Two tasks named ``clean``: importing this module raises DuplicateTaskError."""

from __future__ import annotations

from cadenza import Pipeline

pipe = Pipeline("duplicate")


@pipe.task
def clean() -> int:
    return 1


@pipe.task(name="clean")
def clean_again() -> int:
    return 2
