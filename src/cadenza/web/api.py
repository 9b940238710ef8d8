"""The JSON API under ``/api/v1``: every page's data, and the actions as POSTs.

An action answers JSON, or, when a page's form posted it, a 303 back to the page (so the pages
need no JavaScript to act). Bodies are JSON or form fields, never pickles, within the limits
of web/limits.py. Every answer has a model in web/models.py, and so does every error."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cadenza import actions
from cadenza import artifacts as versions
from cadenza.web import models, read
from cadenza.web.limits import MAX_OFFSET, InputError, check_params, parse_json
from cadenza.web.models import errors
from cadenza.web.read import Site, check_id
from cadenza.web.security import safe_next

router = APIRouter(prefix="/api/v1", tags=["api"])
OFFSET = Query(0, ge=0, le=MAX_OFFSET, description="How many of the newest to skip.")
MAX_ATTEMPT = 10**6


def site(request: Request) -> Site:
    found: Site = request.app.state.site
    return found


# -- reading ------------------------------------------------------------------------------------

@router.get("/pipelines", response_model=models.PipelineList, responses=errors())
def list_pipelines(request: Request) -> dict[str, Any]:
    """Every pipeline: schedule, next run, paused, last runs and success rate."""
    return read.pipelines(site(request))


@router.get("/pipelines/{name}", response_model=models.PipelineDetail, responses=errors(404))
def get_pipeline(request: Request, name: str, offset: int = OFFSET) -> dict[str, Any]:
    """A pipeline's tasks (the DAG with their latest states) and its grid of recent runs."""
    return read.pipeline(site(request), name, offset)


@router.get("/pipelines/{name}/plan", response_model=models.Plan, responses=errors(404))
def get_plan(request: Request, name: str) -> dict[str, Any]:
    """What a run with the default params would run now, and why."""
    return read.plan(site(request), name)


@router.get("/pipelines/{name}/schedule", response_model=models.Schedule, responses=errors(404))
def get_schedule(request: Request, name: str, count: int = Query(10, ge=1, le=200)
                 ) -> dict[str, Any]:
    """The next fire times with their data intervals and DST notes."""
    return read.schedule(site(request), name, count)


@router.get("/pipelines/{name}/markdown", response_model=models.Markdown, responses=errors(404))
def get_markdown(request: Request, name: str) -> dict[str, Any]:
    """The orchestration plan document (`cadenza show --format markdown`)."""
    return read.markdown(site(request), name)


@router.get("/runs", response_model=models.RunList, responses=errors())
def list_runs(request: Request, pipeline: str | None = None, offset: int = OFFSET
              ) -> dict[str, Any]:
    """Runs, newest first, a page at a time."""
    return read.runs(site(request), pipeline, offset)


@router.get("/runs/{run_id}", response_model=models.RunDetail, responses=errors(404))
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    """A run: params, interval, tasks, attempts, the critical path and waiting gates."""
    return read.run(site(request), run_id)


@router.get("/runs/{run_id}/tasks/{task}", response_model=models.TaskDetail, responses=errors(404))
def get_task(request: Request, run_id: str, task: str) -> dict[str, Any]:
    """A task instance: attempts with errors, tracebacks and checks; its artifacts."""
    return read.task(site(request), run_id, task)


@router.get("/runs/{run_id}/tasks/{task}/attempts/{attempt}/log",
            response_model=models.LogPiece, responses=errors(404))
def get_log(request: Request, run_id: str, task: str,
            attempt: int = Path(ge=1, le=MAX_ATTEMPT),
            offset: int = Query(0, ge=0, le=2**62, description="Byte to start at.")
            ) -> dict[str, Any]:
    """An attempt's log from byte ``offset`` (a live tail asks again from the offset sent)."""
    return read.log(site(request), run_id, task, attempt, offset)


@router.get("/artifacts", response_model=models.ArtifactList, responses=errors())
def list_artifacts(request: Request, pipeline: str | None = None) -> dict[str, Any]:
    """The newest artifacts."""
    return read.artifacts(site(request), pipeline)


@router.get("/artifacts/{digest}", response_model=models.ArtifactDetail, responses=errors(404))
def get_artifact(request: Request, digest: str) -> dict[str, Any]:
    """An artifact: its versions, the ``active`` alias and its history, its lineage."""
    return read.artifact(site(request), digest)


@router.get("/events", response_model=models.EventList, responses=errors())
def list_events(request: Request, before: int | None = Query(None, ge=1, le=2**62),
                run_id: str | None = None) -> dict[str, Any]:
    """The event log, newest first; ``older`` is the ``before`` of the next page."""
    return read.events(site(request), before, run_id)


# -- acting -------------------------------------------------------------------------------------

async def read_fields(request: Request) -> tuple[dict[str, Any], bool]:
    """The request's fields and whether a form sent them (InputError if they break a limit;
    the guard has already refused a body over `MAX_BODY_BYTES`)."""
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(raw.decode("utf-8", errors="replace"))), True
    if not raw:
        return {}, False
    return parse_json(raw), False


def _validated(model: type[models.Record], fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` checked against ``model`` (the documented body), else InputError (422)."""
    try:
        return model.model_validate(fields).model_dump()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        raise InputError(f"Bad request body: {problems}.") from None


def _body(model: type[models.Record]) -> dict[str, Any]:
    """The documented request body of an action: ``model`` as JSON, or form fields."""
    return {"requestBody": {"required": False, "content": {
        "application/json": {"schema": model.model_json_schema()},
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "additionalProperties": {"type": "string"}}},
    }}}


ACTED: dict[int | str, dict[str, Any]] = {
    303: {"description": "A form's post: back to the page it came from."}}


Work = Callable[[dict[str, Any], bool], tuple[str, dict[str, Any]]]
"""An action: given the request's fields and whether a form sent them, it acts and returns
the page to go back to and the JSON answer."""


async def _act(request: Request, work: Work) -> Response:
    """Read the body, then act in a worker thread: the store blocks, the event loop must not."""
    fields, form = await read_fields(request)
    back, data = await run_in_threadpool(work, fields, form)
    if form:
        return RedirectResponse(safe_next(fields.get("next") or back), status_code=303)
    return JSONResponse(data)


def _who(request: Request) -> str:
    """Who acts, as decisions and actions record it: the signed-in user, or for the token
    (which names nobody) the UI's --user if one is configured, else the OS user who started
    the UI."""
    who = str(getattr(request.state, "who", "") or "web")
    if who == "token":
        auth = getattr(request.app.state, "auth", None)
        return getattr(auth, "user", None) or _ui_user()
    return who


def _ui_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "token"


def _run_page(run_id: str) -> str:
    return f"/runs/{quote(run_id)}"


@router.post("/pipelines/{name}/runs", response_model=models.Queued,
             responses={**errors(404, 413), **ACTED}, openapi_extra=_body(models.TriggerBody))
async def trigger(request: Request, name: str) -> Response:
    """Queue a run with params (JSON ``{"params": {...}}`` or form fields ``param.NAME``);
    params are checked against the pipeline's. The scheduler starts it."""
    the = site(request)
    pipe = the.pipeline(name)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        if form:
            params = {k[6:]: v for k, v in fields.items() if k.startswith("param.") and v != ""}
        else:
            params = _validated(models.TriggerBody, fields)["params"]
        check_params(params)
        ws = the.workspace
        run_id = actions.trigger(ws.store, pipe, params, target=the.entries[name].target,
                                 from_text=form, home=None if ws.in_memory else ws.home)
        return _run_page(run_id), {"run_id": run_id, "state": "queued"}

    return await _act(request, work)


@router.post("/pipelines/{name}/pause", response_model=models.Paused,
             responses={**errors(404, 413), **ACTED})
async def pause(request: Request, name: str) -> Response:
    """Pause a pipeline's schedule: no new scheduled runs until it is unpaused."""
    return await _act(request, _set_paused(site(request), name, True))


@router.post("/pipelines/{name}/unpause", response_model=models.Paused,
             responses={**errors(404, 413), **ACTED})
async def unpause(request: Request, name: str) -> Response:
    """Unpause a pipeline's schedule."""
    return await _act(request, _set_paused(site(request), name, False))


def _set_paused(the: Site, name: str, paused: bool) -> Work:
    check_id("pipeline", name)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        if name not in the.entries and name not in the.workspace.store.pipelines():
            raise read.NotFound(f"There is no pipeline {name!r}.")
        the.workspace.store.set_paused(name, paused)
        return "/", {"name": name, "paused": paused}

    return work


@router.post("/runs/{run_id}/retry", response_model=models.Queued,
             responses={**errors(404, 409, 413), **ACTED})
async def retry(request: Request, run_id: str) -> Response:
    """Queue an ended run again: only what did not succeed runs."""
    the = site(request)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        the.run(run_id)
        actions.retry(the.workspace.store, run_id)
        return _run_page(run_id), {"run_id": run_id, "state": "queued"}

    return await _act(request, work)


@router.post("/runs/{run_id}/cancel", response_model=models.CancelOutcome,
             responses={**errors(404, 409, 413), **ACTED})
async def cancel(request: Request, run_id: str) -> Response:
    """Cancel a run: a live runner stops its tasks; a run nobody runs is cancelled at once."""
    the = site(request)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        the.run(run_id)
        outcome = actions.cancel(the.workspace.store, run_id)
        return _run_page(run_id), {"run_id": run_id, "cancel": outcome}

    return await _act(request, work)


@router.post("/runs/{run_id}/gates/{task}/approve", response_model=models.GateDecision,
             responses={**errors(404, 409, 413), **ACTED}, openapi_extra=_body(models.DecisionBody))
async def approve(request: Request, run_id: str, task: str) -> Response:
    """Approve a waiting gate: the tasks after it may run."""
    return await _act(request, _decide(request, run_id, task, True))


@router.post("/runs/{run_id}/gates/{task}/reject", response_model=models.GateDecision,
             responses={**errors(404, 409, 413), **ACTED}, openapi_extra=_body(models.DecisionBody))
async def reject(request: Request, run_id: str, task: str) -> Response:
    """Reject a waiting gate (a ``reason`` is required): the tasks after it do not run."""
    return await _act(request, _decide(request, run_id, task, False))


def _decide(request: Request, run_id: str, task: str, approved: bool) -> Work:
    the, who = site(request), _who(request)
    check_id("task", task)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        the.run(run_id)
        reason = str(fields.get("reason") or "")
        if not approved and not reason.strip():
            raise InputError(f"Rejecting {task!r} needs a reason; send one as 'reason'.")
        actions.decide(the.workspace.store, run_id, task, approved, who, reason)
        return _run_page(run_id), {"run_id": run_id, "gate": task, "approved": approved}

    return work


@router.post("/artifacts/{digest}/promote", response_model=models.Active,
             responses={**errors(404, 409, 413), **ACTED})
async def promote(request: Request, digest: str) -> Response:
    """Point the ``active`` alias of this artifact's task at this version."""
    the, who = site(request), _who(request)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        record = the.artifact(digest)
        versions.promote(record.pipeline, record.task, record.hash, name=record.name, by=who,
                         home=the.workspace.location or the.workspace.home)
        return f"/artifacts/{record.hash}", {"active": record.hash}

    return await _act(request, work)


@router.post("/artifacts/{digest}/rollback", response_model=models.Active,
             responses={**errors(404, 409, 413), **ACTED})
async def rollback(request: Request, digest: str) -> Response:
    """Point the ``active`` alias of this artifact's task back at its previous version."""
    the, who = site(request), _who(request)

    def work(fields: dict[str, Any], form: bool) -> tuple[str, dict[str, Any]]:
        record = the.artifact(digest)
        now = versions.rollback(record.pipeline, record.task, name=record.name, by=who,
                                home=the.workspace.location or the.workspace.home)
        return f"/artifacts/{now}", {"active": now}

    return await _act(request, work)

