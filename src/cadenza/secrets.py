"""Secrets: values read with ``secret("NAME")`` and params marked secret are shown as ``***``
in every log line, event, error and alert cadenza writes.

The values are kept in one process-wide set. Masking replaces each known value wherever it
appears in text; a secret shorter than 4 characters is refused, as masking it would mangle
ordinary output.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cadenza.exceptions import CadenzaError

MASK = "***"
MIN_LENGTH = 4
_known: set[str] = set()
_lock = threading.Lock()


def register(value: str) -> None:
    """Mask ``value`` from now on, in this process (and processes forked after)."""
    if len(value) < MIN_LENGTH:
        raise CadenzaError(
            f"A secret must be at least {MIN_LENGTH} characters long to be masked safely; "
            f"this one has {len(value)}."
        )
    with _lock:
        _known.add(value)


def register_param(name: str, value: Any) -> None:
    """Mask a secret param's value in every form it may be printed in: the value itself if it
    is text, else ``str()``, ``repr()`` and JSON of it (``Param(987654321, secret=True)``)."""
    if isinstance(value, str):
        forms = {value}
    else:
        forms = {str(value), repr(value)}
        with contextlib.suppress(TypeError, ValueError):
            forms.add(json.dumps(value))
    short = sorted(f for f in forms if len(f) < MIN_LENGTH)
    if short:
        raise CadenzaError(
            f"Secret param {name!r} prints as {short[0]!r}, shorter than {MIN_LENGTH} "
            "characters: masking it would mangle ordinary output. Use a longer value, or do "
            "not mark the param secret."
        )
    for form in forms:
        register(form)


def secret(name: str, default: str | None = None, *, env_file: str | Path = ".env") -> str:
    """The secret ``name`` from the environment, else from ``env_file``; masked from now on."""
    value = os.environ.get(name)
    if value is None and Path(env_file).is_file():
        from dotenv import dotenv_values  # here: a run that reads no secret needs no dotenv

        value = dotenv_values(env_file).get(name)
    if value is None:
        value = default
    if value is None:
        raise CadenzaError(
            f"Secret {name!r} is not set: export {name}=... or add it to {str(env_file)!r}."
        )
    register(value)
    return value


def mask(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    if not _known:
        return text
    for value in sorted(_known, key=len, reverse=True):  # longest first: no partial leftovers
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask_data(data: Any) -> Any:
    """``mask`` applied to every string in JSON-like data."""
    if not _known:
        return data
    if isinstance(data, str):
        return mask(data)
    if isinstance(data, Mapping):
        return {k: mask_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [mask_data(v) for v in data]
    return data


def masked_params(params: Mapping[str, Any], secret_names: Iterable[str]) -> dict[str, Any]:
    """Params as they may be stored or shown: secret ones as ``***``."""
    hidden = set(secret_names)
    return {k: (MASK if k in hidden else mask_data(v)) for k, v in params.items()}
