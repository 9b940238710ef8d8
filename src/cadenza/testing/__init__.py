"""Helpers for testing pipelines and cadenza plug-ins: in-memory runs and contract suites.

``run_in_memory`` needs nothing beyond cadenza. The contract suites live in
``cadenza.testing.contracts``, which is imported only when asked for because it needs pytest
(``pip install 'cadenza[testing]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cadenza.engine.launch import run_pipeline
from cadenza.engine.result import RunResult
from cadenza.executors.inline import InlineExecutor
from cadenza.pipeline import Pipeline
from cadenza.workspace import Workspace


def run_in_memory(
    pipe: Pipeline, params: Mapping[str, Any] | None = None, *,
    root: str | Path | None = None, **options: Any,
) -> RunResult:
    """Run ``pipe`` with an in-memory store and the inline executor: nothing touches disk but
    task logs (under ``root/.cadenza/logs``, or a temporary folder) and declared outputs."""
    workspace = Workspace.memory(root)
    return run_pipeline(
        pipe, params, executor=InlineExecutor(), workspace=workspace, **options
    )


__all__ = ["run_in_memory"]
