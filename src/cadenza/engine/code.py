"""What a task's code is, for its cache key: its own source, and what it calls in the project.

The rule, followed from the task function through every name its code reads as a global:

- a function or class defined in the same module (a helper in the pipeline file) counts by
  its source, and what *it* reads is followed the same way;
- a plain constant of that module (a number, a string, a tuple of them...) counts by its value;
- a module of the project (one that does not live in the standard library, site-packages, or
  cadenza itself), or a function or class imported from one, counts by the whole text of that
  module's file, and the project modules that module uses are followed too;
- everything else (site-packages, the standard library, objects such as the ``Pipeline``) does
  not count: upgrading pandas does not invalidate a cache, as in Airflow, Dagster and Prefect.

``version=`` on a task replaces all of this with its string.
"""

from __future__ import annotations

import dis
import inspect
import linecache
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

_CONSTANT = (int, float, complex, str, bytes, bool, type(None))


@cache
def _outside_roots() -> tuple[str, ...]:
    """Folders whose modules are not the project's: the standard library and site-packages."""
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.base_prefix, sys.prefix, sys.exec_prefix}
    return tuple(str(Path(r).resolve()) + "/" for r in roots if r)


def project_file(module: types.ModuleType | None) -> str | None:
    """The file of ``module`` if it is one of the project's own modules, else None."""
    if module is None:
        return None
    name = module.__name__
    if name == "cadenza" or name.startswith("cadenza.") or name == "__main__":
        return None
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return None
    path = str(Path(file).resolve())
    if "site-packages" in path or "dist-packages" in path or path.startswith(_outside_roots()):
        return None
    return path


def source(fn: Any) -> str:
    """The dedented source of a function or class, or its qualified name if it has none."""
    text = _block(fn)
    if text is not None:
        return textwrap.dedent(text)
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):  # no source (a lambda typed in a REPL, a builtin)
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)!r}"


def _block(fn: Any) -> str | None:
    """What ``inspect.getsource`` gives for a plain function, read from its code's positions
    (decorators to the end of its last statement) instead of by tokenizing: the first tokenize
    in a process compiles its patterns, ~4 ms of every ``cadenza run``. None where the two
    could differ (the next line is still indented: a trailing comment, a docstring-only body;
    no ``def`` line; a lambda), and the caller asks ``inspect``."""
    fn = inspect.unwrap(fn) if callable(fn) else fn
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return None
    linecache.checkcache(code.co_filename)  # as inspect does: the file may have changed
    lines = linecache.getlines(code.co_filename)
    first = code.co_firstlineno
    if not lines or first > len(lines) or not lines[first - 1].lstrip().startswith(
            ("def ", "async def ", "@")):
        return None
    last = max((end for _, end, _, _ in code.co_positions() if end is not None), default=0)
    if not any(line.lstrip().startswith(("def ", "async def ")) for line in lines[first - 1:last]):
        return None  # the positions end on a decorator line
    indent = len(lines[first - 1]) - len(lines[first - 1].lstrip())
    for line in lines[last:]:
        if line.strip():
            if len(line) - len(line.lstrip()) > indent:
                return None
            break
    return "".join(lines[first - 1:last])


_GLOBAL_READS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


def _names(code: types.CodeType) -> Iterator[str]:
    """Every global a code object (and the functions, lambdas and classes nested in it) reads.

    Only global loads count: ``df.transform(...)`` must not pull in a task named ``transform``.
    """
    if code.co_names:  # a global load names one of them: with none, nothing to scan (dis is
        # slow on long code, such as a task taking a thousand inputs)
        for instruction in dis.get_instructions(code):
            if instruction.opname in _GLOBAL_READS:
                yield instruction.argval
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


class _Walk:
    def __init__(self, home: str) -> None:
        self.home = home  # the module the task is defined in
        self.parts: list[str] = []
        self.files: dict[str, str] = {}  # module name -> file, for project modules
        self._seen: set[int] = set()

    def function(self, fn: Any) -> None:
        fn = inspect.unwrap(fn) if callable(fn) else fn
        if id(fn) in self._seen:
            return
        self._seen.add(id(fn))
        code = getattr(fn, "__code__", None)
        namespace = getattr(fn, "__globals__", None)
        if code is None or namespace is None:
            return
        for name in dict.fromkeys(_names(code)):
            if name in namespace:
                self.value(name, namespace[name])

    def value(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType):
            self.module(value)
        elif isinstance(value, (types.FunctionType, type)):
            owner = getattr(value, "__module__", None)
            if owner == self.home:
                if id(value) not in self._seen:
                    self.parts.append(f"uses {value.__qualname__}:\n{source(value)}")
                    if isinstance(value, type):
                        self._seen.add(id(value))
                        for member in vars(value).values():
                            if isinstance(member, types.FunctionType):
                                self.function(member)
                    else:
                        self.function(value)
            elif owner is not None:
                self.module(sys.modules.get(owner))
        elif _constant(value):
            self.parts.append(f"const {name}={value!r}")

    def module(self, module: types.ModuleType | None) -> None:
        file = project_file(module)
        if module is None or file is None or module.__name__ in self.files:
            return
        self.files[module.__name__] = file
        for value in list(vars(module).values()):  # the project modules it uses, in turn
            if isinstance(value, types.ModuleType):
                self.module(value)
            elif isinstance(value, (types.FunctionType, type)):
                owner = getattr(value, "__module__", None)
                if owner is not None and owner != module.__name__:
                    self.module(sys.modules.get(owner))


def _constant(value: Any) -> bool:
    if isinstance(value, _CONSTANT):
        return not isinstance(value, str) or len(value) <= 10_000
    if isinstance(value, (tuple, frozenset)):
        return len(value) <= 100 and all(_constant(v) for v in value)
    return False


def closure(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """``fn``'s source with what it uses from its own module, and the project modules it uses
    (module name -> file), whose content the caller hashes."""
    walk = _Walk(getattr(fn, "__module__", "") or "")
    walk.function(fn)
    text = source(fn)
    if walk.parts:
        text += "\n" + "\n".join(walk.parts)
    return text, dict(sorted(walk.files.items()))
