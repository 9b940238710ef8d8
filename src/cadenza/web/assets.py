"""The asset view: every artifact name across pipelines (a task's returned value or one of
its declared files), with its latest version, the run that made it, the assets upstream and
downstream of it, and the pipelines a new version of it starts.

Reads are bounded: one indexed read of the newest version per asset, one per parent of it,
and the newest `SCAN` artifacts to find the assets of pipelines this UI did not load."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cadenza.schedule.sensors import NewVersionTrigger
from cadenza.store.base import ArtifactRecord
from cadenza.web import read
from cadenza.web.api import site
from cadenza.web.models import errors
from cadenza.web.models_data import AssetList
from cadenza.web.pages import page
from cadenza.web.read import Site

SCAN = 1000
"""The newest artifacts read to find assets of pipelines that are not loaded."""
MAX_ASSETS = 2000

Key = tuple[str, str, str]
"""(pipeline, task, output name)."""


def _ref(key: Key) -> dict[str, str]:
    return {"pipeline": key[0], "task": key[1], "name": key[2]}


def assets(the: Site) -> dict[str, Any]:
    store = the.workspace.store
    keys: dict[Key, list[Key]] = {}
    """Each asset, with its upstream by the pipeline's DAG (used until a version exists)."""
    triggers: dict[tuple[str, str], list[str]] = {}
    for name, entry in sorted(the.entries.items()):
        for sensor in entry.pipeline.sensors:
            if isinstance(sensor, NewVersionTrigger):
                triggers.setdefault((sensor.pipeline, sensor.task), []).append(name)
        for node in entry.pipeline.graph():
            by_dag = [(name, up, "return") for up in node.inputs]
            keys[(name, node.name, "return")] = by_dag
            for output in node.spec.outputs:
                keys[(name, node.name, output)] = by_dag
    for newest in store.artifacts(limit=SCAN):
        keys.setdefault((newest.pipeline, newest.task, newest.name), [])
    chosen = sorted(keys)[:MAX_ASSETS]
    latest: dict[Key, ArtifactRecord | None] = {}
    for key in chosen:
        found = store.versions(*key, limit=1)
        latest[key] = found[0] if found else None
    parents: dict[str, Key | None] = {}
    upstream: dict[Key, list[Key]] = {}
    for key in chosen:
        record = latest[key]
        if record is None:
            upstream[key] = [k for k in keys[key] if k in keys]
            continue
        ups: list[Key] = []
        for digest in record.parents:
            if digest not in parents:
                made = store.artifact(digest)
                parents[digest] = (made.pipeline, made.task, made.name) if made else None
            up = parents[digest]
            if up is not None and up not in ups:
                ups.append(up)
        upstream[key] = ups
    downstream: dict[Key, list[Key]] = {}
    for key in chosen:
        for up in upstream[key]:
            downstream.setdefault(up, []).append(key)
    declared = bool(triggers)
    rows = []
    for key in chosen:
        record = latest[key]
        rows.append({
            **_ref(key), "latest": read._artifact(record) if record else None,
            "upstream": [_ref(k) for k in upstream[key]],
            "downstream": [_ref(k) for k in downstream.get(key, [])],
            "triggers": (triggers.get(key[:2], []) if key[2] == "return" else [])
            if declared else None,
        })
    note = "" if declared else (
        "No loaded pipeline declares a trigger on a new version (Pipeline(triggers="
        "[on_new_version('pipeline.task')])): a new version starts nothing.")
    return {"assets": rows, "note": note}


router = APIRouter()


@router.get("/api/v1/assets", tags=["api"], response_model=AssetList, responses=errors())
def list_assets(request: Request) -> dict[str, Any]:
    """Every asset (a task's output, by name) across pipelines: its latest version, the run
    that made it, its upstream and downstream assets, and the pipelines a new version starts."""
    return assets(site(request))


@router.get("/assets", include_in_schema=False, response_class=HTMLResponse)
def assets_page(request: Request) -> Response:
    return page(request, "assets.html", assets(site(request)))
