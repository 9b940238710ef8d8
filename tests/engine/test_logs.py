"""Output routing survives sys.stdout being replaced while a run is active."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from cadenza import Pipeline
from cadenza.engine import logs


def test_a_run_started_after_stdout_was_replaced_still_logs(home: Path) -> None:
    logs.install()  # an outer run, still going
    try:
        replaced = io.StringIO()
        saved, sys.stdout = sys.stdout, replaced  # a notebook or test runner swaps it
        try:
            pipe = Pipeline("swapped")

            @pipe.task(cache=False)
            def talk() -> None:
                print("into the log")

            result = pipe.run(home=home)
        finally:
            sys.stdout = saved
    finally:
        logs.uninstall()
    log = Path(result.tasks["talk"].attempts[0].log_path or "")
    assert log.read_text() == "into the log\n"
    assert replaced.getvalue() == ""
