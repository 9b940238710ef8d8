"""The test tree's own rules, checked before anything slower fails on them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_file_basenames_are_unique() -> None:
    # The tests have no __init__.py, so pytest imports each file by its
    # basename: two files with one name stop the whole collection.
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
