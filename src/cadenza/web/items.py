"""A mapped task's items: the grid of their states (a page at a time, filterable by state),
one item's attempts, error, traceback and log, and "retry failed items only".

Every read is of one run (its task instances, one task's attempts), as the run page's are:
never a loop over the store. The task page shows the grid through the ``_mapped.html``
partial, which calls `grid_for_page` (a template global set here)."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from cadenza._words import attempt_label
from cadenza.actions_items import retry_failed_items
from cadenza.store.base import TaskInstanceRecord
from cadenza.web import models_data as models
from cadenza.web import read
from cadenza.web.api import ACTED, MAX_ATTEMPT, _act, _who, site
from cadenza.web.models import LogPiece, errors
from cadenza.web.pages import TEMPLATES, page
from cadenza.web.read import NotFound, Site, check_id

ITEMS_PAGE = 1000
"""Grid cells shown at once: a task mapping 100,000 items is shown a page at a time."""
MAX_INDEX = 10**9
STATES = ("success", "cached", "failed", "upstream_failed", "up_for_retry", "running", "queued",
          "pending", "skipped", "cancelled")

api = APIRouter(prefix="/api/v1", tags=["api"])
pages = APIRouter(include_in_schema=False)
INDEX = Path(ge=0, le=MAX_INDEX, description="The item's map index.")
STATE = Query(None, max_length=40, description="Only the items in this state.")
OFFSET = Query(0, ge=0, le=MAX_INDEX, description="How many items to skip.")


def _mapped(the: Site, run_id: str, task: str) -> list[TaskInstanceRecord] | None:
    """``task``'s items in ``run_id`` by index, or None if it has none. A task the loaded
    pipeline does not map is not read for items at all (most task pages)."""
    record = the.run(run_id)
    check_id("task", task)
    entry = the.entries.get(record.pipeline)
    if entry is not None:
        node = entry.pipeline.graph().nodes.get(task)
        if node is not None and not node.spec.map_over:
            return None
    found = sorted((ti for ti in the.workspace.store.task_instances(run_id)
                    if ti.task == task and ti.map_index >= 0), key=lambda ti: ti.map_index)
    return found or None


def grid(the: Site, run_id: str, task: str, state: str | None = None, offset: int = 0
         ) -> dict[str, Any]:
    """The items of a mapped task: counts by state, and a page of (index, state, attempt)."""
    found = _mapped(the, run_id, task)
    if found is None:
        raise NotFound(f"Task {task!r} of run {run_id} has no mapped items.")
    return _grid(run_id, task, found, state, offset)


def _grid(run_id: str, task: str, found: list[TaskInstanceRecord], state: str | None,
          offset: int) -> dict[str, Any]:
    counts = Counter(ti.state for ti in found)
    shown = [ti for ti in found if state in (None, "", ti.state)]
    offset = max(0, offset)
    return {
        "run_id": run_id, "task": task, "total": len(found), "counts": dict(counts),
        "state": state or None, "offset": offset, "page": ITEMS_PAGE, "matching": len(shown),
        "failed": [ti.map_index for ti in found if ti.state in ("failed", "upstream_failed",
                                                                  "cancelled")][:ITEMS_PAGE],
        "items": [{"index": ti.map_index, "state": ti.state, "attempt": ti.attempt,
                   "error": (ti.error or "")[:200] or None}
                  for ti in shown[offset:offset + ITEMS_PAGE]],
    }


def grid_for_page(request: Request, data: dict[str, Any]) -> dict[str, Any] | None:
    """The grid for the task page's ``_mapped.html`` (None for a task without items), with
    the ``state`` and ``items_offset`` of the page's address."""
    the = site(request)
    found = _mapped(the, data["run_id"], data["task"])
    if found is None:
        return None
    state = request.query_params.get("state") or None
    try:
        offset = min(MAX_INDEX, int(request.query_params.get("items_offset") or 0))
    except ValueError:
        offset = 0
    return _grid(data["run_id"], data["task"], found, state, offset)


def item(the: Site, run_id: str, task: str, index: int, *, logs: bool = False
         ) -> dict[str, Any]:
    """One item: its state, error, attempts (with tracebacks; with ``logs``, each one's first
    piece of log) and its output."""
    record = the.run(run_id)
    check_id("task", task)
    store = the.workspace.store
    ti = next((t for t in store.task_instances(run_id)
               if t.task == task and t.map_index == index), None)
    if ti is None:
        raise NotFound(f"Run {run_id} has no item {index} of task {task!r}.")
    attempts = [a for a in store.attempts(run_id, task) if a.map_index == index]
    shown = []
    for a in attempts:
        data = read._attempt(a)
        data["label"] = attempt_label(index, a.attempt)
        if logs:
            data["log"] = read._log_piece(the, a, 0) if a.log_path else None
        shown.append(data)
    output = store.artifact(ti.output) if ti.output else None
    return {
        "run_id": run_id, "pipeline": record.pipeline, "task": task, "index": index,
        "state": ti.state, "attempt": ti.attempt, "error": ti.error,
        "started_at": read._iso(ti.started_at), "ended_at": read._iso(ti.ended_at),
        "attempts": shown, "output": read._artifact(output) if output else None,
    }


# -- the API -------------------------------------------------------------------------------------

@api.get("/runs/{run_id}/tasks/{task}/items", response_model=models.ItemGrid,
         responses=errors(404))
def get_items(request: Request, run_id: str, task: str, state: str | None = STATE,
              offset: int = OFFSET) -> dict[str, Any]:
    """A mapped task's items: counts by state and a page of their states by index."""
    return grid(site(request), run_id, task, state, offset)


@api.get("/runs/{run_id}/tasks/{task}/items/{index}", response_model=models.ItemDetail,
         responses=errors(404))
def get_item(request: Request, run_id: str, task: str, index: int = INDEX) -> dict[str, Any]:
    """One mapped item: state, error, attempts with tracebacks, output."""
    return item(site(request), run_id, task, index)


@api.get("/runs/{run_id}/tasks/{task}/items/{index}/attempts/{attempt}/log",
         response_model=LogPiece, responses=errors(404))
def get_item_log(request: Request, run_id: str, task: str, index: int = INDEX,
                 attempt: int = Path(ge=1, le=MAX_ATTEMPT),
                 offset: int = Query(0, ge=0, le=2**62, description="Byte to start at.")
                 ) -> dict[str, Any]:
    """An item attempt's log from byte ``offset``."""
    return read.log(site(request), run_id, task, attempt, offset, index)


@api.post("/runs/{run_id}/tasks/{task}/retry-failed-items", response_model=models.ItemsRetried,
          responses={**errors(404, 409, 413), **ACTED})
async def retry_items(request: Request, run_id: str, task: str) -> Response:
    """Queue the run again with only this task's failed items (and what depends on them) to
    run: the items that succeeded keep their outputs."""
    the, who = site(request), _who(request)
    check_id("task", task)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        the.run(run_id)
        failed = retry_failed_items(the.workspace.store, run_id, task, who)
        return f"/runs/{quote(run_id)}", {"run_id": run_id, "state": "queued", "items": failed}

    return await _act(request, work)


# -- the page ------------------------------------------------------------------------------------

@pages.get("/runs/{run_id}/tasks/{task}/items/{index}", response_class=HTMLResponse)
def item_page(request: Request, run_id: str, task: str, index: int = INDEX) -> Response:
    return page(request, "item.html", item(site(request), run_id, task, index, logs=True))


TEMPLATES.env.globals["mapped_items"] = grid_for_page
router = APIRouter()
router.include_router(api)
router.include_router(pages)
