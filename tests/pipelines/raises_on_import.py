"""A module that fails while it is imported, after defining a pipeline."""

from __future__ import annotations

from cadenza import Pipeline

pipe = Pipeline("raises_on_import")


@pipe.task
def ingest() -> int:
    return 1


raise RuntimeError("raises_on_import: this module fails on purpose while it is imported")
