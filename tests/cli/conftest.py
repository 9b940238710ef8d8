from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cadenza.cli import main


@pytest.fixture
def cli(home: Path) -> Callable[..., Result]:
    """`cadenza --home HOME ARGS...` through Click's runner, exceptions not caught."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--home", str(home), *args], catch_exceptions=False)

    return invoke
