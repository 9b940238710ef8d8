"""Run params: merge what the user gave with the pipeline's defaults, and parse ``k=v`` text."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cadenza.exceptions import ParamError


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Split ``--param k=v`` strings; raise ParamError for one without ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParamError(
                f"--param {item!r} is malformed: write it as NAME=VALUE, like threshold=0.7.",
                param=item,
            )
        out[key.strip()] = value
    return out


def _coerce(name: str, text: str, default: Any) -> Any:
    kind = type(default)
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind in (int, float):
            return kind(text)
        if kind in (list, dict):
            value = json.loads(text)
            if not isinstance(value, kind):
                raise ValueError(f"expected a JSON {kind.__name__}")
            return value
    except ValueError as exc:
        raise ParamError(
            f"Param {name!r} takes a {kind.__name__} (its default is {default!r}), but got "
            f"{text!r}: {exc}. Pass a value like {name}={json.dumps(default, default=str)}.",
            param=name,
        ) from None
    return text


def resolve_params(
    pipeline: str, defaults: Mapping[str, Any], given: Mapping[str, Any] | None,
    *, from_text: bool = False,
) -> dict[str, Any]:
    """The run's params: defaults overlaid with ``given``; unknown names are an error."""
    merged = dict(defaults)
    for name, value in (given or {}).items():
        if name not in defaults:
            close = difflib.get_close_matches(name, list(defaults), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(defaults)) or "none"
            raise ParamError(
                f"Pipeline {pipeline!r} has no param {name!r}.{hint} Its params are: {known}. "
                "Declare new ones in Pipeline(params={...}).", param=name,
            )
        merged[name] = (
            _coerce(name, value, defaults[name])
            if from_text and isinstance(value, str) and defaults[name] is not None
            else value
        )
    return merged
