"""Each example's PLAN.md is what `cadenza show EXAMPLE --format markdown` prints today."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza._loader import load_pipeline
from cadenza.show import render

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("example", ["churn", "prices"])
def test_plan_md_is_up_to_date(example: str) -> None:
    folder = EXAMPLES / example
    if not (folder / "pipeline.py").exists():
        pytest.skip(f"examples/{example} is not there")
    expected = render(load_pipeline(str(folder)), "markdown")
    written = (folder / "PLAN.md").read_text() if (folder / "PLAN.md").exists() else ""
    assert written == expected, (
        f"examples/{example}/PLAN.md is out of date; regenerate it with: "
        f"cadenza show examples/{example} --format markdown > examples/{example}/PLAN.md"
    )
