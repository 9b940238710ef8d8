"""A store for the polish tests (issue 16, part 7): tests/pipelines/polish_demo.py loaded, and
one finished run made by hand whose tasks started in an order that is neither the DAG's nor
their names' (zeta, alpha, mid, omega), so a listing shows which order it follows."""

from __future__ import annotations

import time
from pathlib import Path

from cadenza._loader import load_pipeline
from cadenza.pipeline import Pipeline
from cadenza.store.base import AttemptRecord, Batch, Event, RunRecord, TaskInstanceRecord
from cadenza.workspace import Workspace

TARGET = str(Path(__file__).parents[1] / "pipelines" / "polish_demo.py")
RUN_ID = "polish_demo-20261201T120000-abcdef"
DAG_ORDER = ["zeta", "mid", "alpha", "omega"]
"""Layer by layer, each layer as declared: zeta; mid, alpha (declared so); omega."""
STARTED = ["zeta", "alpha", "mid", "omega"]
UPSTREAM = {"zeta": [], "mid": ["zeta"], "alpha": ["zeta"], "omega": ["alpha", "mid"]}


def polish_pipeline() -> Pipeline:
    return load_pipeline(TARGET)


def add_ordered_run(ws: Workspace) -> str:
    """The hand-made run: every task succeeded, started in STARTED's order."""
    t0 = time.time() - 60
    ws.store.create_runs([RunRecord(RUN_ID, "polish_demo", "success",
                                    {"dry_run": False, "size": "small", "rows": 100, "note": ""},
                                    t0, target=TARGET, started_at=t0, ended_at=t0 + 10)])
    ws.store.apply(Batch(
        task_instances=[TaskInstanceRecord(RUN_ID, task, -1, "success", 1, started_at=t0 + i,
                                           ended_at=t0 + i + 0.5)
                        for i, task in enumerate(STARTED)],
        attempts=[AttemptRecord(RUN_ID, task, -1, 1, "success", t0 + i, t0 + i + 0.5)
                  for i, task in enumerate(STARTED)],
        events=[Event(RUN_ID, "run_started", t0, data={"upstream": UPSTREAM})],
    ))
    return RUN_ID
