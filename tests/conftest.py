from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh .cadenza folder for one test."""
    return tmp_path / ".cadenza"
