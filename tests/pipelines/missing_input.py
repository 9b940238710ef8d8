"""A pipeline where ``train`` asks for ``clean_df``, but the task is named ``clean``. Importing
works; ``pipe.graph()`` raises UnknownInputError suggesting 'clean'."""

from __future__ import annotations

from cadenza import Pipeline

pipe = Pipeline("missing_input")


@pipe.task
def ingest() -> list[int]:
    return [1, 2, 3]


@pipe.task
def clean(ingest: list[int]) -> list[int]:
    return ingest


@pipe.task
def train(clean_df: list[int]) -> int:
    return len(clean_df)
