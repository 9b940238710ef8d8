"""Parse durations written as ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"`` or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Return seconds for ``value``; raise ``ValueError`` saying the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write it like '30s' or '10m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            text += "s"  # plain seconds
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(
                f"{value!r} is not a duration; write it like '30s', '10m', '1h30m' or '2d'"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"{value!r} is not a duration; write it like '30s' or '10m'")
    if seconds <= 0 or seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{value!r} is not a positive, finite duration")
    return seconds
