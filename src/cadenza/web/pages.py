"""The HTML pages: each reads what the JSON API returns (web/read.py) and renders a template.

Templates autoescape everything; SVG comes from web/draw.py, which escapes its own text."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.concurrency import run_in_threadpool

from cadenza import actions
from cadenza._words import plural
from cadenza.exceptions import ParamError
from cadenza.params import Param
from cadenza.pipeline import Pipeline
from cadenza.web import read
from cadenza.web.api import OFFSET, read_fields, site
from cadenza.web.draw import Bar, Node, dag_figure, duration_text, gantt_svg
from cadenza.web.limits import InputError, check_params
from cadenza.web.markdown_html import markdown_html

TEMPLATES = Jinja2Templates(env=Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True))


def when(iso: str | None, relative: bool = False) -> str:
    """An ISO time as ``2026-11-23 06:00:00 +00:00``; ``relative`` adds "in 3 h 05 min"."""
    if not iso:
        return "—"
    moment = datetime.fromisoformat(iso)
    text = f"{moment:%Y-%m-%d %H:%M:%S} {moment.isoformat()[19:] or 'UTC'}"
    if relative:
        delta = moment.timestamp() - time.time()
        text += f" (in {duration_text(delta)})" if delta >= 0 else \
            f" ({duration_text(-delta)} ago)"
    return text


TEMPLATES.env.filters["duration"] = duration_text
TEMPLATES.env.filters["when"] = when
TEMPLATES.env.filters["short"] = lambda text, n=12: (text or "")[:n]
TEMPLATES.env.filters["plural"] = plural  # {{ n|plural("retry") }}: "1 retry", "2 retries"

router = APIRouter(include_in_schema=False)
LINEAGE = {"success": "this version", "cached": "made from", "": "not found or cut off"}
"""What the lineage graph's colours mean (artifact_page): the legend's words for them."""


def page(request: Request, template: str, data: dict[str, Any], *, status: int = 200,
         **extra: Any) -> HTMLResponse:
    """``template`` with ``data``, and who is signed in with their CSRF token for forms."""
    return TEMPLATES.TemplateResponse(request, template, {
        "data": data, "csrf": getattr(request.state, "csrf", ""),
        "who": getattr(request.state, "who", ""), **extra,
    }, status_code=status)


def _quote(text: str) -> str:
    return quote(text, safe="")


@router.get("/", response_class=HTMLResponse)
def pipelines_page(request: Request) -> Response:
    return page(request, "pipelines.html", read.pipelines(site(request)))


@router.get("/pipelines/{name}", response_class=HTMLResponse)
def pipeline_page(request: Request, name: str, offset: int = OFFSET) -> Response:
    return _pipeline_page(request, name, offset)


def _pipeline_page(request: Request, name: str, offset: int = 0, *, status: int = 200,
                   values: dict[str, str] | None = None, errors: dict[str, str] | None = None
                   ) -> Response:
    """The graph, the grid and the trigger form, which shows ``values`` as sent and each
    param's error from ``errors`` beside it (``""`` holds one that names no param)."""
    data = read.pipeline(site(request), name, offset)
    nodes = [Node(t["name"], t["name"], t["state"],
                  f"/runs/{_quote(data['runs'][0]['run_id'])}/tasks/{_quote(t['name'])}"
                  if data["runs"] and t["state"] else None) for t in data["tasks"]]
    edges = [(u, t["name"]) for t in data["tasks"] for u in t["upstream"]]
    return page(request, "pipeline.html", data, status=status, dag=dag_figure(nodes, edges),
                tab="graph", values=values or {}, errors=errors or {})


@router.post("/pipelines/{name}/trigger", response_class=HTMLResponse)
async def trigger_form(request: Request, name: str) -> Response:
    """The trigger form's post: a run queued and its page shown, or, if a param is refused,
    the form again with the error beside that param and every value as it was typed."""
    the = site(request)
    pipe = the.pipeline(name)
    fields, _ = await read_fields(request)
    params = {k[6:]: str(v) for k, v in fields.items() if k.startswith("param.") and v != ""}

    def work() -> str:
        check_params(params)
        ws = the.workspace
        return actions.trigger(ws.store, pipe, params, target=the.entries[name].target,
                               from_text=True, home=None if ws.in_memory else ws.home)

    try:
        run_id = await run_in_threadpool(work)
    except (ParamError, InputError) as exc:
        field = getattr(exc, "param", "")
        shown = {k: v for k, v in params.items() if not _secret(pipe, k)}
        return _pipeline_page(request, name, status=422, values=shown,
                              errors={field if field in pipe.params else "": str(exc)})
    return RedirectResponse(f"/runs/{_quote(run_id)}", status_code=303)


def _secret(pipe: Pipeline, name: str) -> bool:
    """Whether param ``name`` is secret: its value is never sent back to the page."""
    spec = pipe.params.get(name)
    return isinstance(spec, Param) and spec.secret


@router.get("/pipelines/{name}/plan", response_class=HTMLResponse)
def plan_page(request: Request, name: str) -> Response:
    the = site(request)
    return page(request, "pipeline_plan.html", read.pipeline_head(the, name),
                plan=read.plan(the, name), tab="plan")


@router.get("/pipelines/{name}/schedule", response_class=HTMLResponse)
def schedule_page(request: Request, name: str) -> Response:
    the = site(request)
    return page(request, "pipeline_schedule.html", read.pipeline_head(the, name),
                schedule=read.schedule(the, name), tab="schedule")


@router.get("/pipelines/{name}/markdown", response_class=HTMLResponse)
def markdown_page(request: Request, name: str) -> Response:
    the = site(request)
    return page(request, "pipeline_markdown.html", read.pipeline_head(the, name),
                markdown=markdown_html(read.markdown(the, name)["markdown"]), tab="markdown")


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, pipeline: str | None = None, offset: int = OFFSET
              ) -> Response:
    return page(request, "runs.html", read.runs(site(request), pipeline, offset))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> Response:
    data = read.run(site(request), run_id)
    critical = set(data["critical_path"])
    base = f"/runs/{_quote(run_id)}/tasks/"
    bars = [Bar(a["task"], a["started"], a["ended"], a["state"], base + _quote(a["task"]),
                f"{a['task']} · attempt {a['attempt']} · {a['state']} · "
                f"{duration_text(a['duration'])}", a["task"] in critical)
            for a in data["attempts"]]
    nodes = [Node(t["task"], t["task"], t["state"], base + _quote(t["task"]))
             for t in data["tasks"]]
    edges = [(u, t["task"]) for t in data["tasks"] for u in t["upstream"]]
    return page(request, "run.html", data, gantt=gantt_svg(bars), dag=dag_figure(nodes, edges))


@router.get("/runs/{run_id}/tasks/{task}", response_class=HTMLResponse)
def task_page(request: Request, run_id: str, task: str) -> Response:
    return page(request, "task.html", read.task(site(request), run_id, task, logs=True))


@router.get("/artifacts", response_class=HTMLResponse)
def artifacts_page(request: Request, pipeline: str | None = None) -> Response:
    return page(request, "artifacts.html", read.artifacts(site(request), pipeline))


@router.get("/artifacts/{digest}", response_class=HTMLResponse)
def artifact_page(request: Request, digest: str) -> Response:
    data = read.artifact(site(request), digest)
    found, edges = read.lineage_edges(data["lineage"])
    nodes = [Node(n["hash"], f"{n['task'] or '?'} · {n['hash'][:10]}",
                  "success" if n["hash"] == data["hash"] else ("" if n["note"] else "cached"),
                  f"/artifacts/{n['hash']}" if n["note"] != "missing" else None,
                  n["pipeline"] or n["note"]) for n in found]
    return page(request, "artifact.html", data, lineage=dag_figure(nodes, edges, labels=LINEAGE))


@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request, before: int | None = Query(None, ge=1, le=2**62),
                run_id: str | None = None) -> Response:
    return page(request, "events.html", read.events(site(request), before, run_id))
