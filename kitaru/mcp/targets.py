"""`<module_or_file>:<flow_name>` targets: import the flow a tool is asked to run."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import InvalidValueError, KitaruError

if TYPE_CHECKING:
    from kitaru.flows import Flow

#: Files imported as targets: module name -> (path, modification time) when imported.
_LOADED: dict[str, tuple[Path, float]] = {}


def load_flow_target(target: str) -> Flow:
    """The `@flow` named by `target`: `pkg.module:flow_name` or `path/to/file.py:flow_name`.

    A file is imported under its own name with its folder on `sys.path` (as `python file.py`
    would see its siblings), so another process resumes its executions by the same name; a
    file changed since it was imported is imported again, so a run uses the code on disk.
    A module is imported with the working directory on `sys.path`.
    """
    from kitaru.flows import Flow

    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise InvalidValueError(
            f"target {target!r} is not `<module_or_file>:<flow_name>`; give e.g. "
            "`flows/research.py:research_agent` or `my_app.flows:research_agent`"
        )
    where, name = target.split(":")
    module = _import_file(where) if where.endswith(".py") or os.sep in where or "/" in where \
        else _import_module(where)
    obj: Any = module
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise InvalidValueError(f"{where} has no attribute {name!r}; name a @flow defined there")
    if not isinstance(obj, Flow):
        raise InvalidValueError(f"{target} is a {type(obj).__name__}, not a @flow; decorate it with @flow")
    return obj


def _import_module(name: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise InvalidValueError(f"cannot import module {name!r} ({exc}); run from the project folder "
                                "or install the project") from None


def _import_file(where: str) -> Any:
    path = Path(where).expanduser().resolve()
    if not path.is_file() or path.suffix != ".py":
        raise InvalidValueError(
            f"{where} is not a Python file (resolved to {path}); give an existing .py file")
    name = path.stem
    if not name.isidentifier():
        raise InvalidValueError(
            f"{path.name} can't be imported as a module; rename it to a Python identifier")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    mtime = path.stat().st_mtime
    loaded = sys.modules.get(name)
    if loaded is not None:
        file = getattr(loaded, "__file__", None)
        if file is None or Path(file).resolve() != path:
            raise InvalidValueError(
                f"{path} would be imported as module {name!r}, but this process has a module of "
                f"that name from {file}; rename the file or give the target as a module path"
            )
        if _LOADED.get(name) == (path, mtime):
            return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        if loaded is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = loaded  # the version that imported keeps serving
        raise KitaruError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    _LOADED[name] = (path, mtime)
    return module
