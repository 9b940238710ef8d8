"""Type aliases shared across cadenza."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TaskKey = str
"""A task's name, unique within its pipeline."""

RunId = str
"""A run's id: ``<pipeline>-<YYYYmmddTHHMMSS>-<random>``, safe in a path and a URL."""

Params = Mapping[str, Any]
"""Run parameters by name."""

MapIndex = int
"""The item number of a mapped task instance; -1 for an unmapped one."""
