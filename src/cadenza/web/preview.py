"""Artifacts you can open: a bounded preview of a value (a table's first rows, JSON and text
truncated), its download, HTML and images opened in the browser, and the metrics a task
logged with ``ctx.log_metric``.

Bounds: an artifact over `PREVIEW_BYTES` is not read for a preview at all (download it); a
table shows at most `ROWS` rows of `COLUMNS` columns from its first row group; text at most
`TEXT_CHARS` characters. A pickle is never unpickled here: loading one runs code.

What is opened in the browser runs in a sandbox: `OPEN_CSP` gives the page an origin of its
own and no script at all, so a task's HTML or SVG cannot act as the UI's user. Anything else
is served as an attachment, with ``nosniff`` so the browser does not guess otherwise."""

from __future__ import annotations

import io
import json
import mimetypes
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from cadenza.exceptions import DamagedArtifactError
from cadenza.store.base import ArtifactRecord
from cadenza.web import read
from cadenza.web.api import site
from cadenza.web.models import errors
from cadenza.web.models_data import Metrics, Preview
from cadenza.web.pages import TEMPLATES
from cadenza.web.read import NotFound, Site, check_id

PREVIEW_BYTES = 8 * 1024 * 1024
"""Artifacts larger than this are not read to be previewed."""
ROWS, COLUMNS = 50, 40
TEXT_CHARS = 20_000
METRIC_EVENTS = 5_000
"""The events of a run read to find its metrics: the first this many, in order."""
MAX_METRICS = 500
OPEN_CSP = ("sandbox; default-src 'none'; img-src data: blob:; media-src data:; "
            "style-src 'unsafe-inline'; font-src data:; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")
"""What an opened artifact may do: show itself, with its inline styles and data: images."""
IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
OPENED = IMAGES | {"text/html", "image/svg+xml", "text/plain", "application/json",
                   "text/csv", "application/pdf"}
"""Content types opened in the browser (sandboxed); anything else is downloaded."""
TYPES = {"json": "application/json", "parquet": "application/vnd.apache.parquet",
         "pickle": "application/octet-stream"}
SUFFIXES = {"application/json": ".json", "application/vnd.apache.parquet": ".parquet",
            "text/html": ".html", "image/svg+xml": ".svg", "text/plain": ".txt",
            "image/png": ".png", "image/jpeg": ".jpg", "text/csv": ".csv"}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF8", "image/gif"), (b"%PDF-", "application/pdf"))
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

api = APIRouter(prefix="/api/v1", tags=["api"])
hidden = APIRouter(prefix="/api/v1", include_in_schema=False)


def content_type(the: Site, record: ArtifactRecord, head: bytes) -> str:
    """What ``record`` is: by serializer for a value; for a declared file, by the suffix of
    the path the loaded pipeline declares, else by its first bytes."""
    if record.serializer in TYPES:
        return TYPES[record.serializer]
    if record.serializer != "file":
        return "application/octet-stream"
    entry = the.entries.get(record.pipeline)
    node = entry.pipeline.graph().nodes.get(record.task) if entry is not None else None
    path = node.spec.outputs.get(record.name) if node is not None else None
    if path:
        guessed = mimetypes.guess_type(path)[0]
        if guessed:
            return guessed
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    start = head[:512].lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    if start.startswith(b"<svg") or (start.startswith(b"<?xml") and b"<svg" in start):
        return "image/svg+xml"
    try:
        head[:4096].decode("utf-8")
    except UnicodeDecodeError as cut:
        if cut.start < 4090:  # not a character cut in two at the end: binary
            return "application/octet-stream"
    return "text/plain"


def _bytes(the: Site, record: ArtifactRecord) -> bytes:
    """The artifact's bytes, or NotFound if the artifact store lost them (or they were
    damaged: the store sets a damaged file aside, and the task makes it again)."""
    if record.data is not None:
        return record.data
    try:
        return the.workspace.artifacts.get(record.hash)
    except (OSError, DamagedArtifactError) as lost:
        raise NotFound(f"The bytes of artifact {record.hash[:16]} are not in the artifact "
                       f"store ({type(lost).__name__}); run its task again to make them."
                       ) from None


def preview(the: Site, digest: str) -> dict[str, Any]:
    """How the artifact ``digest`` is shown on its page, within the bounds above."""
    record = the.artifact(digest)
    base = f"/api/v1/artifacts/{record.hash}"
    shown: dict[str, Any] = {"hash": record.hash, "truncated": False, "note": "",
                             "download_url": base + "/download", "open_url": None}
    if record.serializer == "pickle":
        return {**shown, "kind": "pickle", "content_type": TYPES["pickle"],
                "note": "A pickled Python object: the UI never unpickles one (loading a pickle "
                        "runs code). Download it and load it where you trust it."}
    if record.size > PREVIEW_BYTES:
        return {**shown, "kind": "none", "content_type": content_type(the, record, b""),
                "note": f"{record.size:,} bytes is more than the {PREVIEW_BYTES:,} previewed "
                        "here; download it."}
    try:
        data = _bytes(the, record)
    except NotFound as lost:
        return {**shown, "kind": "none", "content_type": "application/octet-stream",
                "note": str(lost)}
    kind = content_type(the, record, data[:4096])
    shown["content_type"] = kind
    if kind in OPENED:
        shown["open_url"] = base + "/open"
    if record.serializer == "parquet":
        try:
            return {**shown, **_table(data)}
        except ImportError:
            return {**shown, "kind": "none", "note": "Previewing a table needs pyarrow: "
                    "pip install 'cadenza[dataframes]' where the UI runs."}
    if record.serializer == "json" or kind == "application/json":
        try:
            text = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
        except ValueError:
            text = data.decode("utf-8", errors="replace")
        return {**shown, **_text("json", text)}
    if kind in IMAGES:
        return {**shown, "kind": "image"}
    if kind == "text/html":
        return {**shown, "kind": "html", **_text("html", data.decode("utf-8", "replace"))}
    if kind == "image/svg+xml":
        return {**shown, "kind": "svg"}
    if kind.startswith("text/"):
        return {**shown, **_text("text", data.decode("utf-8", errors="replace"))}
    return {**shown, "kind": "binary", "note": f"{kind}: no preview; download it."}


def _text(kind: str, text: str) -> dict[str, Any]:
    cut = len(text) > TEXT_CHARS
    return {"kind": kind, "text": text[:TEXT_CHARS], "truncated": cut,
            "note": f"the first {TEXT_CHARS:,} of {len(text):,} characters" if cut else ""}


def _table(data: bytes) -> dict[str, Any]:
    """The first `ROWS` rows and `COLUMNS` columns of a parquet table, from its first row
    group only: a big table is not read whole."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # only previews need it

    with pq.ParquetFile(io.BytesIO(data)) as table:
        names = [n for n in table.schema_arrow.names if n != "__index_level_0__"]
        total = table.metadata.num_rows
        rows: list[list[Any]] = []
        if table.metadata.num_row_groups:
            part = table.read_row_group(0, columns=names[:COLUMNS]).slice(0, ROWS)
            rows = [[_cell(v) for v in row.values()] for row in part.to_pylist()]
    cut = total > len(rows) or len(names) > COLUMNS
    return {"kind": "table", "columns": names[:COLUMNS], "rows": rows,
            "shape": [total, len(names)], "truncated": cut,
            "note": f"the first {len(rows)} of {total:,} rows, {min(len(names), COLUMNS)} of "
                    f"{len(names)} columns" if cut else ""}


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) else value[:200]
    return str(value)[:200]


def _served(the: Site, digest: str, inline: bool) -> Response:
    record = the.artifact(digest)
    head = (record.data or b"")[:4096]
    try:
        local = None if record.data is not None else the.workspace.artifacts.path(record.hash)
    except DamagedArtifactError:
        local = None  # set aside: _bytes says so
    if record.data is None and local is not None:
        with open(local, "rb") as handle:
            head = handle.read(4096)
    kind = content_type(the, record, head)
    name = _UNSAFE_NAME.sub("_", f"{record.task}-{record.name}-{record.hash[:12]}")
    name += SUFFIXES.get(kind, mimetypes.guess_extension(kind) or ".bin")
    opened = inline and kind in OPENED
    headers = {
        "Content-Disposition": f'{"inline" if opened else "attachment"}; filename="{name}"',
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": OPEN_CSP,
        "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "private, max-age=3600",
    }
    media = kind
    if kind.startswith("text/") or kind in ("application/json", "image/svg+xml"):
        media += "; charset=utf-8"
    if local is not None:
        return FileResponse(local, media_type=media, headers=headers)
    return Response(_bytes(the, record), media_type=media, headers=headers)


# -- metrics ------------------------------------------------------------------------------------

def metrics(the: Site, run_id: str, task: str) -> dict[str, Any]:
    """What ``task`` logged with ``ctx.log_metric`` in ``run_id``: each item's and attempt's
    values, the newest attempt first."""
    the.run(run_id)
    check_id("task", task)
    found: list[dict[str, Any]] = []
    for event in the.workspace.store.events(run_id, limit=METRIC_EVENTS):
        if event.kind != "metrics_logged" or event.task != task:
            continue
        for name, value in (event.data.get("metrics") or {}).items():
            found.append({"name": name, "value": value, "task": task,
                          "map_index": event.map_index, "attempt": event.data.get("attempt", 0),
                          "at": read._iso(event.ts)})
    found.sort(key=lambda m: (m["map_index"], -m["attempt"], m["name"]))
    return {"run_id": run_id, "task": task, "metrics": found[:MAX_METRICS]}


def _for_page(request: Request, run_id: str, task: str) -> dict[str, Any]:
    """The metrics of the newest attempt of each item, for the pages' table."""
    rows = metrics(site(request), run_id, task)["metrics"]
    newest: dict[int, int] = {}
    for m in rows:
        newest.setdefault(m["map_index"], m["attempt"])
    return {"run_id": run_id, "task": task,
            "metrics": [m for m in rows if m["attempt"] == newest[m["map_index"]]]}


def artifact_preview(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """The artifact page's preview and the metrics of the task that made it."""
    return {"preview": preview(site(request), data["hash"]),
            "metrics": _for_page(request, data["run_id"], data["task"])["metrics"]}


def task_metrics(request: Request, data: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = _for_page(request, data["run_id"], data["task"])["metrics"]
    return rows


@api.get("/artifacts/{digest}/preview", response_model=Preview, responses=errors(404))
def get_preview(request: Request, digest: str) -> dict[str, Any]:
    """A bounded preview: a table's first rows, JSON or text truncated, or where to open it."""
    return preview(site(request), digest)


@api.get("/runs/{run_id}/tasks/{task}/metrics", response_model=Metrics, responses=errors(404))
def get_metrics(request: Request, run_id: str, task: str) -> dict[str, Any]:
    """What the task logged with ``ctx.log_metric``, by item and attempt."""
    return metrics(site(request), run_id, task)


@hidden.get("/artifacts/{digest}/download")
def download(request: Request, digest: str) -> Response:
    """The artifact's bytes as an attachment, with its content type."""
    return _served(site(request), digest, inline=False)


@hidden.get("/artifacts/{digest}/open")
def open_artifact(request: Request, digest: str) -> Response:
    """HTML, images, text opened in the browser in a sandbox (no script, an origin of its
    own); anything else as an attachment."""
    return _served(site(request), digest, inline=True)


TEMPLATES.env.globals["artifact_preview"] = artifact_preview
TEMPLATES.env.globals["task_metrics"] = task_metrics
router = APIRouter()
router.include_router(api)
router.include_router(hidden)
