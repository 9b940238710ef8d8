"""Run params: ``k=v`` parsing, merging with defaults, and typed coercion of text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cadenza import ParamError
from cadenza.params import parse_assignments, resolve_params

DEFAULTS: dict[str, Any] = {
    "threshold": 0.5,
    "epochs": 10,
    "verbose": False,
    "tags": ["a"],
    "limits": {"rows": 1},
    "name": "churn",
    "optional": None,
}


# -- parse_assignments -----------------------------------------------------------------------


def test_parse_assignments() -> None:
    assert parse_assignments(["threshold=0.7", " epochs =3", "expr=a=b", "empty="]) == {
        "threshold": "0.7",
        "epochs": "3",
        "expr": "a=b",  # only the first '=' splits
        "empty": "",
    }


def test_parse_assignments_last_one_wins() -> None:
    assert parse_assignments(["a=1", "a=2"]) == {"a": "2"}


def test_parse_assignments_keeps_the_value_as_written() -> None:
    assert parse_assignments(["msg= hello "]) == {"msg": " hello "}


def test_parse_no_assignments() -> None:
    assert parse_assignments([]) == {}


@pytest.mark.parametrize("item", ["threshold", "=0.7", " =1", ""])
def test_malformed_assignment(item: str) -> None:
    with pytest.raises(ParamError) as excinfo:
        parse_assignments(["ok=1", item])
    assert excinfo.value.param == item
    message = str(excinfo.value)
    assert repr(item) in message
    assert "NAME=VALUE" in message and "threshold=0.7" in message


# -- resolve_params --------------------------------------------------------------------------


def test_defaults_when_nothing_is_given() -> None:
    assert resolve_params("p", DEFAULTS, None) == DEFAULTS
    assert resolve_params("p", DEFAULTS, {}) == DEFAULTS


def test_given_values_override_defaults_without_changing_them() -> None:
    defaults = dict(DEFAULTS)
    merged = resolve_params("p", defaults, {"threshold": 0.9, "epochs": 3})
    assert merged["threshold"] == 0.9
    assert merged["epochs"] == 3
    assert merged["name"] == "churn"
    assert defaults == DEFAULTS


def test_unknown_param_with_suggestion() -> None:
    with pytest.raises(ParamError) as excinfo:
        resolve_params("churn", DEFAULTS, {"threshhold": "0.7"}, from_text=True)
    exc = excinfo.value
    assert exc.param == "threshhold"
    message = str(exc)
    assert "Pipeline 'churn' has no param 'threshhold'." in message
    assert "Did you mean 'threshold'?" in message
    assert "epochs, limits, name, optional, tags, threshold, verbose" in message
    assert "Pipeline(params=" in message


def test_unknown_param_without_suggestion() -> None:
    with pytest.raises(ParamError) as excinfo:
        resolve_params("p", {"threshold": 0.5}, {"zzz": 1})
    assert "Did you mean" not in str(excinfo.value)


def test_unknown_param_when_there_are_none() -> None:
    with pytest.raises(ParamError) as excinfo:
        resolve_params("p", {}, {"x": 1})
    assert "Its params are: none." in str(excinfo.value)


# -- coercion from text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("verbose", "true", True),
        ("verbose", "TRUE", True),
        ("verbose", " yes ", True),
        ("verbose", "on", True),
        ("verbose", "1", True),
        ("verbose", "false", False),
        ("verbose", "No", False),
        ("verbose", "off", False),
        ("verbose", "0", False),
        ("epochs", "3", 3),
        ("epochs", "-3", -3),
        ("epochs", " 7 ", 7),
        ("threshold", "0.7", 0.7),
        ("threshold", "1", 1.0),
        ("threshold", "1e-3", 0.001),
        ("tags", '["x", "y"]', ["x", "y"]),
        ("tags", "[]", []),
        ("limits", '{"rows": 5, "cols": [1]}', {"rows": 5, "cols": [1]}),
        ("name", "prices", "prices"),
        ("name", "", ""),
        ("optional", "anything", "anything"),  # no default type: the text as given
    ],
)
def test_typed_coercion(name: str, text: str, expected: Any) -> None:
    value = resolve_params("p", DEFAULTS, {name: text}, from_text=True)[name]
    assert value == expected
    assert type(value) is type(expected)


def test_text_is_not_coerced_without_from_text_and_its_type_is_checked() -> None:
    with pytest.raises(ParamError, match="Param 'epochs' takes an int, but got str '3'"):
        resolve_params("p", DEFAULTS, {"epochs": "3"})


def test_python_values_of_the_wrong_type_are_rejected() -> None:
    with pytest.raises(ParamError, match=r"takes an int, but got float 4\.5"):
        resolve_params("p", DEFAULTS, {"epochs": 4.5}, from_text=True)
    assert resolve_params("p", DEFAULTS, {"threshold": 1})["threshold"] == 1  # int for float
    with pytest.raises(ParamError, match="takes a float, but got bool True"):
        resolve_params("p", DEFAULTS, {"threshold": True})


def test_param_rules() -> None:
    from cadenza.params import Param

    params = {"rate": Param(0.5, min=0, max=1, description="share"), "mode": Param(
        "fast", choices=("fast", "slow")), "token": Param("x", secret=True)}
    assert resolve_params("p", params, {"rate": "0.2"}, from_text=True)["rate"] == 0.2
    with pytest.raises(ParamError, match=r"must be at most 1, but got 1\.5"):
        resolve_params("p", params, {"rate": 1.5})
    with pytest.raises(ParamError, match="must be at least 0, but got -1"):
        resolve_params("p", params, {"rate": -1})
    with pytest.raises(ParamError, match=r"must be one of \['fast', 'slow'\], but got 'medium'"):
        resolve_params("p", params, {"mode": "medium"})
    with pytest.raises(ParamError) as excinfo:
        resolve_params("p", params, {"token": 5})
    assert "5" not in str(excinfo.value) and "'***'" in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "text", "kind", "example"),
    [
        ("verbose", "maybe", "bool", "verbose=false"),
        ("verbose", "", "bool", "verbose=false"),
        ("epochs", "3.5", "int", "epochs=10"),
        ("epochs", "ten", "int", "epochs=10"),
        ("threshold", "high", "float", "threshold=0.5"),
        ("tags", "x,y", "list", 'tags=["a"]'),
        ("tags", '{"a": 1}', "list", 'tags=["a"]'),
        ("limits", "[1]", "dict", 'limits={"rows": 1}'),
        ("limits", "{rows: 1}", "dict", 'limits={"rows": 1}'),
    ],
)
def test_coercion_errors(name: str, text: str, kind: str, example: str) -> None:
    with pytest.raises(ParamError) as excinfo:
        resolve_params("p", DEFAULTS, {name: text}, from_text=True)
    exc = excinfo.value
    assert exc.param == name
    message = str(exc)
    article = "an" if kind[0] in "aeiou" else "a"
    assert f"Param {name!r} takes {article} {kind}" in message
    assert f"got {text!r}" in message
    assert f"Pass a value like {example}." in message
    assert exc.__cause__ is None and exc.__suppress_context__


def test_coercion_error_with_a_default_json_cannot_show() -> None:
    with pytest.raises(ParamError):
        resolve_params("p", {"paths": [Path("a.csv")]}, {"paths": "nope"}, from_text=True)
