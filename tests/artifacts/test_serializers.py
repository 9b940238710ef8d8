"""Serializers: each value goes to the right format by type, and comes back equal."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from enum import IntEnum
from typing import Any

import pytest

from cadenza import SerializationError, register_serializer
from cadenza.artifacts.serializers import deserialize, serialize, unregister_serializer


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names registered by a test, unregistered afterwards: the registry is process-wide."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_serializer(name)


class _Color(IntEnum):
    RED = 1


class _Label(str):
    pass


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))


def _round_trip(value: Any, expected_serializer: str) -> Any:
    name, data = serialize(value, task="t")
    assert name == expected_serializer
    assert isinstance(data, bytes)
    return deserialize(name, data)


# -- json ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None, True, False, 0, -7, 3.25, "", "héllo ✓", [], {},
        [1, "two", 3.0, None, True],
        {"a": 1, "b": [1, 2, {"c": None}], "d": {"e": {"f": ["g"]}}},
        [[[[[]]]]],
    ],
)
def test_plain_data_is_json(value: Any) -> None:
    back = _round_trip(value, "json")
    assert back == value
    assert type(back) is type(value)


def test_json_is_compact_utf8() -> None:
    assert serialize({"a": [1, 2], "b": "é"}) == ("json", '{"a":[1,2],"b":"é"}'.encode())


def test_large_ints_round_trip_as_json() -> None:
    assert _round_trip(2**100, "json") == 2**100


@pytest.mark.parametrize(
    "value",
    [
        (1, 2),
        [1, (2, 3)],
        {"a": (1,)},
        {1: "int key"},
        {"a": {2: "nested int key"}},
        {1, 2},
        b"bytes",
        Point(1, 2),
        [Point(1, 2)],
    ],
)
def test_data_json_would_change_goes_to_pickle(value: Any) -> None:
    back = _round_trip(value, "pickle")
    assert back == value
    assert type(back) is type(value)


@pytest.mark.parametrize("value", [_Color.RED, _Label("x"), [_Color.RED], {"k": _Label("v")}])
def test_str_and_int_subclasses_go_to_pickle(value: Any) -> None:
    back = _round_trip(value, "pickle")
    assert back == value
    assert type(back) is type(value)


def test_very_deep_nesting_goes_to_pickle() -> None:
    value: list[Any] = []
    for _ in range(60):
        value = [value]
    assert _round_trip(value, "pickle") == value


# -- dataframes ------------------------------------------------------------------------------


def test_dataframe_round_trips_via_parquet() -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "score": [0.5, None, 1.5],
            "name": ["a", "b", None],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        },
        index=pd.Index([10, 20, 30], name="row"),
    )
    name, data = serialize(frame, task="t")
    assert name == "parquet"
    assert data[:4] == b"PAR1"
    back = deserialize(name, data)
    pd.testing.assert_frame_equal(back, frame)


def test_dataframe_parquet_cannot_store_goes_to_pickle() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"mixed": [1, "two"]})  # pyarrow refuses a column of int and str
    back = _round_trip(frame, "pickle")
    pd.testing.assert_frame_equal(back, frame)


def test_dataframe_of_dicts_round_trips_unchanged() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"meta": [{"x": 1}, {"y": 2}]})
    name, data = serialize(frame, task="t")
    assert deserialize(name, data)["meta"].tolist() == [{"x": 1}, {"y": 2}]


def test_series_is_not_a_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    series = pd.Series([1, 2, 3])
    assert serialize(series)[0] == "pickle"


# -- registered serializers ------------------------------------------------------------------


def test_registered_serializer_takes_precedence(registered: list[str]) -> None:
    register_serializer("text-dict", dict, lambda v: repr(sorted(v.items())).encode(),
                        lambda b: {"loaded": b.decode()})
    registered.append("text-dict")
    name, data = serialize({"a": 1})
    assert name == "text-dict"
    assert data == b"[('a', 1)]"
    assert deserialize(name, data) == {"loaded": "[('a', 1)]"}


def test_registered_by_predicate(registered: list[str]) -> None:
    register_serializer(
        "point", lambda v: isinstance(v, Point),
        lambda p: f"{p.x},{p.y}".encode(),
        lambda b: Point(*map(int, b.decode().split(","))),
    )
    registered.append("point")
    assert serialize(Point(3, 4)) == ("point", b"3,4")
    assert deserialize("point", b"3,4") == Point(3, 4)
    assert serialize([1])[0] == "json"  # other values are untouched


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**80, 1.5, float("nan"), float("-inf"), "", 'é "quoted"\n\x00',
])
def test_scalars_are_the_bytes_json_dumps_gives(value: Any) -> None:
    # scalars skip the serializer lookup (the common task result); the bytes must not change
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert serialize(value) == ("json", expected)


def test_a_registered_serializer_still_wins_for_scalars(registered: list[str]) -> None:
    register_serializer("ints", int, lambda v: b"int:%d" % v, lambda b: int(b[4:]))
    registered.append("ints")
    assert serialize(3) == ("ints", b"int:3")
    assert serialize(None) == ("json", b"null")


def test_newest_registration_wins(registered: list[str]) -> None:
    register_serializer("old", Point, lambda p: b"old", lambda b: b)
    register_serializer("new", Point, lambda p: b"new", lambda b: b)
    registered.extend(["old", "new"])
    assert serialize(Point(1, 1)) == ("new", b"new")


def test_a_failing_serializer_passes_the_value_on(registered: list[str]) -> None:
    def refuse(value: Any) -> bytes:
        raise ValueError("not today")

    register_serializer("refuses", Point, refuse, lambda b: b)
    registered.append("refuses")
    back = _round_trip(Point(5, 6), "pickle")
    assert back == Point(5, 6)


def test_duplicate_serializer_name(registered: list[str]) -> None:
    with pytest.raises(ValueError, match="'json' exists already"):
        register_serializer("json", dict, lambda v: b"", lambda b: b)
    register_serializer("mine", Point, lambda v: b"", lambda b: b)
    registered.append("mine")
    with pytest.raises(ValueError, match="'mine' exists already"):
        register_serializer("mine", Point, lambda v: b"", lambda b: b)


def test_unregister_restores_the_builtin(registered: list[str]) -> None:
    register_serializer("takes-lists", list, lambda v: b"x", lambda b: b)
    assert serialize([1])[0] == "takes-lists"
    unregister_serializer("takes-lists")
    assert serialize([1])[0] == "json"
    unregister_serializer("never-registered")  # a no-op


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        (i for i in range(3)),
        threading.Lock(),
        lambda: 1,
        {"nested": [threading.Lock()]},
    ],
    ids=["generator", "lock", "lambda", "nested-lock"],
)
def test_unpicklable_value(value: Any) -> None:
    with pytest.raises(SerializationError) as excinfo:
        serialize(value, task="train")
    exc = excinfo.value
    assert exc.task == "train"
    message = str(exc)
    assert message.startswith(f"Task 'train' returned {type(value).__name__} ")
    assert "pickle:" in message  # why pickle failed
    assert "register_serializer" in message  # the fix


def test_long_values_are_shortened_in_the_message() -> None:
    value = [threading.Lock()] * 50
    with pytest.raises(SerializationError) as excinfo:
        serialize(value, task="t")
    assert "..." in str(excinfo.value)
    assert len(str(excinfo.value)) < 600


def test_deserialize_with_an_unknown_serializer() -> None:
    with pytest.raises(SerializationError) as excinfo:
        deserialize("protobuf", b"")
    assert "'protobuf'" in str(excinfo.value)
    assert "register_serializer" in str(excinfo.value)
