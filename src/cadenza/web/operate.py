"""Task actions and gates in the UI: clear and mark a task of an ended run, and the page of
every run waiting at a gate, approved or rejected many at once. JSON API under ``/api/v1``
(POSTs, CSRF/token protected by the guard as every action), and the ``/gates`` page, which
reads what ``GET /api/v1/gates`` returns. The logic is cadenza.actions', shared with the CLI."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from cadenza import actions
from cadenza.web import models
from cadenza.web.api import ACTED, _act, _body, _run_page, _validated, _who, site
from cadenza.web.limits import InputError, parse_json
from cadenza.web.models import errors
from cadenza.web.pages import page
from cadenza.web.read import Site, _iso, check_id, gate_message
from cadenza.web.security import safe_next

router = APIRouter(tags=["api"])
SHOWN = 200
"""Waiting runs read for the page (the oldest): each costs two indexed reads."""
MAX_REASON = 2000
"""Characters of a reason kept; a longer one is refused."""


# -- models -----------------------------------------------------------------------------------

class ClearBody(models.Record):
    """The body of a clear (JSON, or the same as form fields)."""

    downstream: bool = Field(False, description="Clear every task after it too.")
    reason: str = Field("", max_length=MAX_REASON, description="Why; recorded with the run.")


class MarkBody(models.Record):
    """The body of a mark (JSON, or the same as form fields)."""

    state: str = Field(description="success or failed.")
    reason: str = Field(max_length=MAX_REASON, description="Why (required); recorded.")


class Cleared(models.Record):
    run_id: str
    cleared: list[str]
    """The tasks sent back to pending, in run order."""
    state: str
    """The run's state now: queued."""


class Marked(models.Record):
    run_id: str
    task: str
    state: str
    run_state: str
    """The run's state, recomputed from its tasks."""


class WaitingGate(models.Record):
    run_id: str
    pipeline: str
    gate: str
    message: str
    """What the gate asks, as its pipeline declares it ("" when this UI has not loaded it)."""
    since: str | None
    """When the gate started waiting (ISO)."""
    logical_date: str | None


class WaitingList(models.Record):
    waiting: list[WaitingGate]
    pipelines: list[str]
    """Pipelines with a run waiting at a gate (for the filter)."""
    most: int
    """At most this many waiting runs are read (the oldest)."""


class PickedGate(models.Record):
    run_id: str
    gate: str


class DecideManyBody(models.Record):
    """The body of a decision on many gates: JSON, or form fields ``pick`` (repeated,
    ``RUN_ID/GATE``) and ``reason``."""

    gates: list[PickedGate] = Field(max_length=actions.MAX_WAITING)
    reason: str = Field("", max_length=MAX_REASON,
                        description="Why; required to reject, recorded with each run.")


class ManyDecided(models.Record):
    approved: bool
    decided: list[PickedGate]
    refused: dict[str, str]
    """Run id -> why its gate was not decided (it ended, or was decided meanwhile)."""


# -- reading ----------------------------------------------------------------------------------

def waiting(the: Site, pipeline: str | None = None) -> dict[str, Any]:
    """Every gate waiting for a decision (oldest run first), with what it asks."""
    if pipeline is not None:
        check_id("pipeline", pipeline)
    store = the.workspace.store
    found = actions.waiting_runs(store, most=SHOWN)
    shown = found if pipeline is None else actions.waiting_runs(store, pipeline, most=SHOWN)
    return {
        "waiting": [{"run_id": w.run.run_id, "pipeline": w.run.pipeline, "gate": w.gate,
                     "message": gate_message(the, w.run.pipeline, w.gate) or "",
                     "since": _iso(w.since), "logical_date": w.run.logical_date}
                    for w in shown],
        "pipelines": sorted({w.run.pipeline for w in found}),
        "most": SHOWN,
    }


@router.get("/api/v1/gates", response_model=WaitingList, responses=errors())
def list_waiting(request: Request, pipeline: str | None = Query(
        None, description="Only this pipeline's runs.")) -> dict[str, Any]:
    """Every run waiting at a gate with no decision yet, oldest first, with what it asks."""
    return waiting(site(request), pipeline)


# -- acting -----------------------------------------------------------------------------------

def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("on", "true", "1", "yes")


def _task_page(run_id: str, task: str) -> str:
    return f"{_run_page(run_id)}/tasks/{quote(task, safe='')}"


@router.post("/api/v1/runs/{run_id}/tasks/{task}/clear", response_model=Cleared,
             responses={**errors(404, 409, 413), **ACTED}, openapi_extra=_body(ClearBody))
async def clear(request: Request, run_id: str, task: str) -> Response:
    """Clear a task of an ended run (``downstream``: and every task after it): back to
    pending, and the run queued again, so the scheduler runs them again."""
    the, who = site(request), _who(request)
    check_id("task", task)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        record = the.run(run_id)
        if form:
            fields = {"downstream": _flag(fields.get("downstream")),
                      "reason": fields.get("reason", "")}
        body = _validated(ClearBody, fields)
        names = actions.clear(the.workspace.store, the.pipeline(record.pipeline), run_id,
                              task, downstream=body["downstream"], by=who,
                              reason=body["reason"])
        return _run_page(run_id), {"run_id": run_id, "cleared": names, "state": "queued"}

    return await _act(request, work)


@router.post("/api/v1/runs/{run_id}/tasks/{task}/mark", response_model=Marked,
             responses={**errors(404, 409, 413), **ACTED}, openapi_extra=_body(MarkBody))
async def mark(request: Request, run_id: str, task: str) -> Response:
    """Mark a task of an ended run success or failed, with a reason; the run's state follows
    its tasks. A task whose value another reads cannot be marked success (409)."""
    the, who = site(request), _who(request)
    check_id("task", task)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        record = the.run(run_id)
        if form:  # the page's csrf_token and next are the form's, not the action's
            fields = {k: v for k, v in fields.items() if k in MarkBody.model_fields}
        body = _validated(MarkBody, fields)
        if body["state"] not in actions.MARKABLE:
            raise InputError(f"state {body['state']!r}: a task can be marked success or "
                             "failed.")
        if not body["reason"].strip():
            raise InputError(f"Marking {task!r} needs a reason; send one as 'reason'.")
        now = actions.mark(the.workspace.store, the.pipeline(record.pipeline), run_id, task,
                           body["state"], by=who, reason=body["reason"])
        return _task_page(run_id, task), {"run_id": run_id, "task": task,
                                          "state": body["state"], "run_state": now}

    return await _act(request, work)


@router.post("/api/v1/gates/approve", response_model=ManyDecided,
             responses={**errors(413), **ACTED}, openapi_extra=_body(DecideManyBody))
async def approve_many(request: Request) -> Response:
    """Approve many waiting gates at once (JSON ``gates: [{run_id, gate}]``, or form fields
    ``pick=RUN_ID/GATE``); a run that ended or was decided meanwhile is listed in
    ``refused``."""
    return await _decide_many(request, True)


@router.post("/api/v1/gates/reject", response_model=ManyDecided,
             responses={**errors(413), **ACTED}, openapi_extra=_body(DecideManyBody))
async def reject_many(request: Request) -> Response:
    """Reject many waiting gates at once; ``reason`` is required."""
    return await _decide_many(request, False)


async def _decide_many(request: Request, approved: bool) -> Response:
    the, who = site(request), _who(request)
    raw = await request.body()
    form = request.headers.get("content-type", "").split(";")[0].strip() == \
        "application/x-www-form-urlencoded"
    if form:
        fields = parse_qs(raw.decode("utf-8", errors="replace"))
        picks = [p.partition("/") for p in fields.get("pick", [])]
        body = {"gates": [{"run_id": run, "gate": gate} for run, _, gate in picks],
                "reason": (fields.get("reason") or [""])[0]}
        back = (fields.get("next") or ["/gates"])[0]
    else:
        body, back = (parse_json(raw) if raw else {}), "/gates"
    checked = _validated(DecideManyBody, body)
    pairs = [(check_id("run", g["run_id"]), check_id("task", g["gate"]))
             for g in checked["gates"]]
    if not pairs:
        raise InputError("No gate was picked: tick the runs to decide.")
    if not approved and not checked["reason"].strip():
        raise InputError("Rejecting needs a reason; send one as 'reason'.")
    done, refused = await run_in_threadpool(actions.decide_many, the.workspace.store, pairs,
                                            approved, who, checked["reason"])
    if form:
        return RedirectResponse(safe_next(back), status_code=303)
    return JSONResponse({"approved": approved,
                         "decided": [{"run_id": r, "gate": g} for r, g in done],
                         "refused": refused})


# -- the page ---------------------------------------------------------------------------------

@router.get("/gates", response_class=HTMLResponse, include_in_schema=False)
def gates_page(request: Request, pipeline: str | None = None) -> Response:
    return page(request, "gates.html", waiting(site(request), pipeline or None),
                pipeline=pipeline or "")


__all__ = ["router", "waiting"]
