"""Run params: merge what the user gave with the pipeline's defaults, and parse ``k=v`` text."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Param:
    """A run param with a default and rules: ``Param(0.5, min=0, max=1)``.

    A plain value in ``Pipeline(params={...})`` is short for ``Param(value)``.
    """

    default: Any
    """The value a run gets when nobody sets this param."""
    kind: type | None = None
    """The expected type; by default the default's type (an int is accepted for a float)."""
    min: float | None = None
    """The smallest value allowed, for numbers."""
    max: float | None = None
    """The largest value allowed, for numbers."""
    choices: tuple[Any, ...] | None = None
    """The only values allowed."""
    description: str = ""
    """What the param means, shown by `plan` and `show`."""
    secret: bool = False
    """Never shown: printed as *** wherever params appear."""

    @property
    def expected(self) -> type | None:
        return self.kind or (type(self.default) if self.default is not None else None)

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` if it obeys the rules, else raise ParamError saying which."""
        kind = self.expected
        fits = kind is None or isinstance(value, kind) or (
            kind is float and isinstance(value, int)
        )
        if kind is not bool and isinstance(value, bool) and kind in (int, float):
            fits = False
        if not fits:
            assert kind is not None
            raise ParamError(
                f"Param {name!r} takes {_a(kind.__name__)}, but got {type(value).__name__} "
                f"{_show(self, value)}. Pass {_a(kind.__name__)}, like "
                f"{name}={_show(self, self.default)}.",
                param=name,
            )
        if self.min is not None and value < self.min:
            raise ParamError(
                f"Param {name!r} must be at least {self.min}, but got {_show(self, value)}.",
                param=name,
            )
        if self.max is not None and value > self.max:
            raise ParamError(
                f"Param {name!r} must be at most {self.max}, but got {_show(self, value)}.",
                param=name,
            )
        if self.choices is not None and value not in self.choices:
            raise ParamError(
                f"Param {name!r} must be one of {list(self.choices)!r}, but got "
                f"{_show(self, value)}.", param=name,
            )
        return value


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _show(spec: Param, value: Any) -> str:
    return "'***'" if spec.secret else repr(value)


def as_param(value: Any) -> Param:
    return value if isinstance(value, Param) else Param(value)


def defaults_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """Each param's default value."""
    return {name: as_param(value).default for name, value in params.items()}


def _coerce(name: str, text: str, spec: Param) -> Any:
    kind = spec.expected
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
        if kind is list or kind is dict:
            value = json.loads(text)
            if not isinstance(value, kind):
                raise ValueError(f"expected a JSON {kind.__name__}")
            return value
    except ValueError as exc:
        assert kind is not None
        raise ParamError(
            f"Param {name!r} takes {_a(kind.__name__)} (its default is "
            f"{_show(spec, spec.default)}), but got {_show(spec, text)}: {exc}. Pass a value like "
            f"{name}={json.dumps(spec.default, default=str) if not spec.secret else '...'}.",
            param=name,
        ) from None
    return text


def resolve_params(
    pipeline: str, params: Mapping[str, Any], given: Mapping[str, Any] | None,
    *, from_text: bool = False,
) -> dict[str, Any]:
    """The run's params: defaults overlaid with ``given``, each checked against its rules.

    ``params`` is the pipeline's declaration (values or ``Param``); with ``from_text``, string
    values are parsed by the param's type, as `--param k=v` gives them."""
    specs = {name: as_param(value) for name, value in params.items()}
    merged = {name: spec.default for name, spec in specs.items()}
    for name, value in (given or {}).items():
        if name not in specs:
            import difflib  # only to suggest a name

            close = difflib.get_close_matches(name, list(specs), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(specs)) or "none"
            raise ParamError(
                f"Pipeline {pipeline!r} has no param {name!r}.{hint} Its params are: {known}. "
                "Declare new ones in Pipeline(params={...}).", param=name,
            )
        spec = specs[name]
        if from_text and isinstance(value, str) and spec.expected not in (None, str):
            value = _coerce(name, value, spec)
        merged[name] = spec.check(name, value)
    return merged
