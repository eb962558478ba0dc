"""Find a flow from a target string: `path/to/file.py:flow_name` or `package.module:flow_name`."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import ConfigError, InvalidValueError

if TYPE_CHECKING:
    from .flows import Flow


def load_flow_target(target: str) -> Flow:
    """The `@flow` a target names, imported from the current files (a module loaded before is
    loaded again, so a long-running process deploys what is on disk now)."""
    from .flows import Flow

    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise InvalidValueError(
            f"flow target {target!r} is not `path/to/file.py:flow` or `package.module:flow`"
        )
    module = _import_file(Path(where)) if _is_path(where) else _import_module(where)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigError(f"{where} has no {attr!r}; name a function decorated with @flow")
    if not isinstance(obj, Flow):
        raise ConfigError(f"{where}:{attr} is not a @flow (it is a {type(obj).__name__})")
    return obj


def _is_path(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where


def _import_file(path: Path) -> Any:
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"flow file {path} does not exist")
    root, name = path.parent, path.stem
    while (root / "__init__.py").exists():  # a module inside a package: import it as pkg.mod
        name = f"{root.name}.{name}"
        root = root.parent
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", None) or "").resolve() != path:
        del sys.modules[name]  # a module of that name from another folder: not this file
    _forget_bytecode(str(path))
    return _import_module(name)


def _forget_bytecode(source: str) -> None:
    """Drop the cached bytecode of `source`: a file rewritten within the same second at the
    same size would otherwise be imported from its old bytecode."""
    import importlib.util

    try:
        os.unlink(importlib.util.cache_from_source(source))
    except (OSError, ValueError, NotImplementedError):
        pass


def _import_module(name: str) -> Any:
    importlib.invalidate_caches()
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # `kitaru flow deploy pkg.mod:flow` from the project folder
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None):
        _forget_bytecode(loaded.__file__)
    try:
        return importlib.reload(loaded) if loaded is not None else importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {name!r} ({exc}); run from the project folder") from exc
