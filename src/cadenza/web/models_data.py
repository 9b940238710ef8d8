"""The JSON answers of the data views (mapped items, artifact previews and metrics, the asset
view) as pydantic models, as web/models.py does for the rest of the API."""

from __future__ import annotations

from typing import Any, Literal

from cadenza.web.models import Artifact, Attempt, LogPiece, Record


class ItemCell(Record):
    index: int
    state: str
    attempt: int
    error: str | None
    """The first 200 characters of the item's error."""


class ItemGrid(Record):
    run_id: str
    task: str
    total: int
    counts: dict[str, int]
    """How many items are in each state."""
    state: str | None
    """The state asked for (``?state=``), or None for all."""
    offset: int
    page: int
    matching: int
    """How many items are in the state asked for."""
    failed: list[int]
    """The indexes of the items a retry of failed items would run again (the first 1,000)."""
    items: list[ItemCell]


class ItemAttempt(Attempt):
    label: str
    """``item 3 · attempt 1``."""
    log: LogPiece | None = None


class ItemDetail(Record):
    run_id: str
    pipeline: str
    task: str
    index: int
    state: str
    attempt: int
    error: str | None
    started_at: str | None
    ended_at: str | None
    attempts: list[ItemAttempt]
    output: Artifact | None


class ItemsRetried(Record):
    run_id: str
    state: str
    items: list[int]
    """The indexes of the failed items that run again."""


class Metric(Record):
    name: str
    value: float
    task: str
    map_index: int
    attempt: int
    at: str | None


class Metrics(Record):
    run_id: str
    task: str
    metrics: list[Metric]


class Preview(Record):
    hash: str
    kind: Literal["table", "json", "text", "image", "html", "svg", "binary", "pickle", "none"]
    """How the value is shown: a table of first rows, JSON or text (truncated), an image or a
    page to open, or nothing (a pickle is never unpickled by the UI)."""
    content_type: str
    truncated: bool
    note: str
    """Why nothing or only part is shown."""
    columns: list[str] = []
    rows: list[list[Any]] = []
    shape: list[int] | None = None
    """Rows and columns of a whole table."""
    text: str | None = None
    open_url: str | None = None
    download_url: str


class AssetRef(Record):
    pipeline: str
    task: str
    name: str


class Asset(AssetRef):
    latest: Artifact | None
    upstream: list[AssetRef]
    downstream: list[AssetRef]
    triggers: list[str] | None
    """Pipelines a new version starts (``on_new_version``); None: nothing declares any."""


class AssetList(Record):
    assets: list[Asset]
    note: str
