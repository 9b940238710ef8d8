"""Find the pipeline a user names on the command line: ``FILE_OR_MODULE[:PIPELINE]``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from cadenza.exceptions import CadenzaError, PipelineLoadError
from cadenza.pipeline import PIPELINE_NAME, Pipeline

ENTRY_FILES = ("pipeline.py", "__init__.py")


def split_target(target: str) -> tuple[str, str | None]:
    """``path/to/file.py:name`` -> (``path/to/file.py``, ``name``); the name is optional."""
    head, sep, tail = target.rpartition(":")
    if sep and head and PIPELINE_NAME.match(tail) and not Path(target).exists():
        return head, tail
    return target, None


def _module_name(path: Path) -> str:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"cadenza_pipeline_{stem}_{digest}"


_stamps: dict[str, tuple[int, int]] = {}
"""Module name -> (mtime, size) of the file it was imported from: an edited file re-imports."""


def _import_file(path: Path, target: str) -> ModuleType:
    name = _module_name(path)
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    if name in sys.modules and _stamps.get(name) == stamp:
        return sys.modules[name]
    _stamps[name] = stamp
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PipelineLoadError(f"Cannot import {str(path)!r} as Python.", target=target)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, so worker processes and pickle find its functions by name.
    sys.modules[name] = module
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # sibling modules import as they would for `python file.py`
    try:
        spec.loader.exec_module(module)
    except CadenzaError:
        del sys.modules[name]
        raise
    except BaseException as exc:
        del sys.modules[name]
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise PipelineLoadError(
            f"Importing {str(path)!r} raised {type(exc).__name__}: {exc} (at {where.filename}, "
            f"line {where.lineno}). Fix the error in the pipeline file and try again.",
            target=target,
        ) from exc
    return module


def _import(location: str, target: str) -> ModuleType:
    path = Path(location)
    if path.is_dir():
        for entry in ENTRY_FILES:
            if (path / entry).is_file():
                return _import_file((path / entry).resolve(), target)
        raise PipelineLoadError(
            f"Folder {location!r} has no {' or '.join(ENTRY_FILES)}; name the pipeline file.",
            target=target,
        )
    if path.is_file():
        return _import_file(path.resolve(), target)
    if location.endswith(".py") or "/" in location:
        raise PipelineLoadError(
            f"No pipeline file {location!r} (looked in {str(Path.cwd())!r}). Check the path.",
            target=target,
        )
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        if exc.name and location.startswith(exc.name):
            raise PipelineLoadError(
                f"No file or module {location!r}: give a path to a .py file or folder, or a "
                "module importable from the working directory.", target=target,
            ) from None
        raise PipelineLoadError(
            f"Importing module {location!r} failed: {exc}.", target=target
        ) from exc
    except CadenzaError:
        raise
    except Exception as exc:
        raise PipelineLoadError(
            f"Importing module {location!r} raised {type(exc).__name__}: {exc}. Fix the error "
            "and try again.", target=target,
        ) from exc


def load_pipeline(target: str) -> Pipeline:
    """Import ``target`` and return its one pipeline (or the one named after ``:``), checked."""
    location, name = split_target(target)
    module = _import(location, target)
    found = list({id(v): v for v in vars(module).values() if isinstance(v, Pipeline)}.values())
    if name is not None:
        chosen = [p for p in found if p.name == name]
        if not chosen:
            names = ", ".join(repr(p.name) for p in found) or "none"
            raise PipelineLoadError(
                f"{location!r} has no pipeline named {name!r}; it defines: {names}.",
                target=target,
            )
        return chosen[0].validate()
    if not found:
        raise PipelineLoadError(
            f"{location!r} defines no pipeline. Create one at module level, like "
            "`pipe = Pipeline('my_pipeline')`.", target=target,
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise PipelineLoadError(
            f"{location!r} defines {len(found)} pipelines ({names}); say which one, like "
            f"`{location}:{found[0].name}`.", target=target,
        )
    return found[0].validate()


def project_setting(root: Path, key: str) -> tuple[object, Path] | None:
    """The value of ``key`` in the project's config, and the file it is in: cadenza.toml in
    ``root``, else ``[tool.cadenza]`` in its pyproject.toml (the first file that sets it);
    None when neither does. The one place cadenza reads its config (``pipelines``, ``db``,
    ``artifacts``, ``artifacts_options``)."""
    for name, section in (("cadenza.toml", ()), ("pyproject.toml", ("tool", "cadenza"))):
        data = _config_file(root / name)
        for part in section:
            data = data.get(part, {}) if isinstance(data, dict) else {}
        if isinstance(data, dict) and key in data:
            return data[key], root / name
    return None


def _config_file(path: Path) -> object:
    """The TOML in ``path`` ({} when there is no such file)."""
    import tomllib

    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PipelineLoadError(f"{str(path)!r} is not valid TOML: {exc}. Fix the file.",
                                target=str(path)) from None


def project_targets(root: Path) -> list[str]:
    """The pipelines a project lists for the scheduler: ``pipelines = [...]`` in cadenza.toml,
    or under ``[tool.cadenza]`` in pyproject.toml; paths are relative to ``root``."""
    found = project_setting(root, "pipelines")
    if found is not None:
        listed, path = found
        if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
            raise PipelineLoadError(
                f"{str(path)!r}: pipelines must be a list of strings (files, folders or "
                f"modules, each optionally :PIPELINE), got {listed!r}.", target=str(path),
            )
        return [_under(root, t) for t in listed]
    raise PipelineLoadError(
        f"No pipelines are listed for {str(root)!r}. Add `pipelines = [\"pipeline.py\"]` to "
        "cadenza.toml, or under [tool.cadenza] in pyproject.toml, or name them: "
        "cadenza scheduler FILE ...", target=str(root),
    )


def _under(root: Path, target: str) -> str:
    """A listed target as the loader takes it: file paths made absolute, modules as they are."""
    location, name = split_target(target)
    path = root / location
    if not path.exists():
        return target  # a module name
    return f"{path}:{name}" if name else str(path)
