"""Check that .ci/lowest.txt pins every runtime requirement at its lower bound in pyproject.toml.

The lowest-versions job installs `.[examples,testing]` with `-c .ci/lowest.txt`; a bound
raised in pyproject.toml but not here (or the reverse) would test versions nobody declared.
Run from the project root: python .ci/check_lowest.py
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

EXTRAS = ("examples", "testing")  # what .ci/run installs in the lowest-versions virtualenv
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?\s*(.*)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """'13' and '13.0.0' are the same release."""
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def lower_bounds(project: dict[str, Any]) -> dict[str, str]:
    """name -> lower bound, for the dependencies and every extra EXTRAS pulls in."""
    me = norm(str(project["name"]))
    extras: dict[str, list[str]] = project["optional-dependencies"]
    found: dict[str, str] = {}
    seen: set[str] = set()
    todo = [*project["dependencies"], *(f"{me}[{extra}]" for extra in EXTRAS)]
    while todo:
        match = REQUIREMENT.match(todo.pop().strip())
        if not match:
            continue
        name, wanted, spec = norm(match.group(1)), match.group(2) or "", match.group(3)
        if name == me:
            for extra in (e.strip() for e in wanted.split(",") if e.strip()):
                if extra not in seen:
                    seen.add(extra)
                    todo += extras[extra]
            continue
        bound = re.search(r">=\s*([0-9][0-9.]*)", spec)
        if not bound:
            sys.exit(f"{name}: no lower bound (>=) in pyproject.toml; declare the oldest "
                     "version you test")
        found[name] = bound.group(1)
    return found


def main() -> int:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    bounds = lower_bounds(project)
    pins: dict[str, str] = {}
    for line in Path(".ci/lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[norm(name)] = version.strip()
    wrong = [f"{name}: pyproject says >={bound}, .ci/lowest.txt pins {pins.get(name)!r}"
             for name, bound in sorted(bounds.items())
             if name not in pins or release(pins[name]) != release(bound)]
    for line in wrong:
        print(line)
    if wrong:
        print("make .ci/lowest.txt pin each lower bound of pyproject.toml exactly")
        return 1
    print(f".ci/lowest.txt pins all {len(bounds)} lower bounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
