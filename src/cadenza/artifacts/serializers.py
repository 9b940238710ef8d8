"""Turn task return values into bytes and back, choosing the serializer by the value's type.

Lookup order: serializers registered by the user (newest first), then pandas DataFrames as
parquet, plain JSON data as JSON, and anything else as pickle. A serializer that fails on a
value passes it on to the next one that matches.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring as _encode_str
from typing import Any

from cadenza.exceptions import SerializationError


@dataclass(frozen=True)
class Serializer:
    name: str
    match: Callable[[Any], bool]
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


_SCALARS = (str, int, float, bool, type(None))


def _is_json(value: Any, depth: int = 0) -> bool:
    """True for data JSON gives back exactly: no tuples, no non-string keys, no other types."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth > 50:
        return False
    if kind is list:
        return all(_is_json(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _is_json(v, depth + 1) for k, v in value.items())
    return False


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""``json.dumps`` with these options, without building an encoder on every call."""


def _json_dumps(value: Any) -> bytes:
    return _encode(value).encode()


def _scalar_json(value: Any) -> bytes:
    """``_json_dumps`` of a str, int, float, bool or None; the common ones without an encoder."""
    if value is None:
        return b"null"
    kind = type(value)
    if kind is int:
        return int.__repr__(value).encode()
    if kind is bool:
        return b"true" if value else b"false"
    if kind is str:
        return _encode_str(value).encode()
    return _json_dumps(value)  # a float: json's own spelling of nan and infinities


_PARQUET_SAFE = frozenset({"string", "bytes", "empty"})


def _is_dataframe(value: Any) -> bool:
    """A pandas DataFrame that parquet stores faithfully: its object columns hold only
    strings or bytes (pyarrow would turn dicts into structs and change the values)."""
    kind = type(value)
    if kind.__name__ != "DataFrame" or not kind.__module__.startswith("pandas"):
        return False
    from pandas.api.types import infer_dtype, is_object_dtype  # type: ignore[import-untyped]

    return all(
        infer_dtype(value[column], skipna=True) in _PARQUET_SAFE
        for column, dtype in value.dtypes.items() if is_object_dtype(dtype)
    )


def _parquet_dumps(frame: Any) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow")
    return buffer.getvalue()


def _parquet_loads(data: bytes) -> Any:
    import pandas as pd  # type: ignore[import-untyped]

    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


JSON = Serializer("json", _is_json, _json_dumps, json.loads)
PARQUET = Serializer("parquet", _is_dataframe, _parquet_dumps, _parquet_loads)
PICKLE = Serializer(
    "pickle", lambda v: True, lambda v: pickle.dumps(v, protocol=5), pickle.loads
)
_builtin = [PARQUET, JSON, PICKLE]
_registered: list[Serializer] = []


def register_serializer(
    name: str,
    match: type | Callable[[Any], bool],
    dumps: Callable[[Any], bytes],
    loads: Callable[[bytes], Any],
) -> Serializer:
    """Store values that ``match`` (a type, or a predicate) with ``dumps``/``loads``."""
    if any(s.name == name for s in [*_registered, *_builtin]):
        raise ValueError(f"A serializer named {name!r} exists already; choose another name.")
    predicate = (lambda v: isinstance(v, match)) if isinstance(match, type) else match
    serializer = Serializer(name, predicate, dumps, loads)
    _registered.insert(0, serializer)
    return serializer


def unregister_serializer(name: str) -> None:
    _registered[:] = [s for s in _registered if s.name != name]


def serialize(value: Any, task: str = "") -> tuple[str, bytes]:
    """Return ``(serializer name, bytes)`` for ``value``, or raise ``SerializationError``."""
    if not _registered and type(value) in _SCALARS:  # what the loop below would choose
        return JSON.name, _scalar_json(value)
    errors: list[str] = []
    for serializer in (*_registered, *_builtin):
        if serializer.match(value):
            try:
                return serializer.name, serializer.dumps(value)
            except Exception as exc:
                errors.append(f"{serializer.name}: {exc}")
    raise SerializationError(
        f"Task {task!r} returned {type(value).__name__} {_short(value)}, which no serializer "
        f"could store ({'; '.join(errors)}). Return plain data (numbers, strings, lists, dicts, "
        "DataFrames, picklable objects), or register one with cadenza.register_serializer().",
        task=task,
    )


def deserialize(name: str, data: bytes) -> Any:
    for serializer in (*_registered, *_builtin):
        if serializer.name == name:
            return serializer.loads(data)
    raise SerializationError(
        f"An artifact was stored with serializer {name!r}, which is not registered in this "
        "process. Register it (cadenza.register_serializer) before loading the artifact."
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
