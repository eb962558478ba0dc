"""Record where a flow is defined, and import it again in another process."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from ..errors import KitaruError
from ..serializers import script_module_name
from .isolated import module_root
from .specs import FlowSpec, flow_spec_of

#: `_where` by (file name as compiled, module, working folder): a flow is run many times.
_places: dict[tuple[str, str, str], dict[str, str]] = {}


def flow_reference(fn: Any) -> dict[str, Any]:
    """What a new process needs to import this flow: module, qualname, file, root, cwd."""
    code = getattr(fn, "__code__", None)
    cwd = os.getcwd()
    ref: dict[str, Any] = {"module": fn.__module__, "qualname": fn.__qualname__, "cwd": cwd}
    if code is not None and os.path.exists(code.co_filename):
        key = (code.co_filename, fn.__module__, cwd)
        place = _places.get(key)
        if place is None:
            place = _places[key] = _where(fn.__module__, os.path.abspath(code.co_filename))
        ref.update(place)
    if fn.__module__ == "__main__":
        script_module_name()  # a value of the script's classes read back here finds the script itself
    return ref


def _where(module: str, file: str) -> dict[str, str]:
    """The file, the folder to import it from, and its module name and path there."""
    root, module_name = module_root(module, file)
    rel_file = os.path.relpath(file, root).replace(os.sep, "/")
    return {"file": file, "root": str(root), "import_name": module_name, "rel_file": rel_file}


def not_importable_reason(fn: Any) -> str | None:
    """Why another process could not import flow function `fn` (None: it can).

    A flow defined in `python -c`, a notebook cell, stdin or an interactive
    session lives in a `__main__` with no file to import it from. (A flow defined
    inside a function is refused by `load_flow` with its own message; kitaru's
    adapters make such flows on purpose and resume them in their own process.)
    """
    if getattr(fn, "__module__", None) != "__main__":
        return None
    code = getattr(fn, "__code__", None)
    file = code.co_filename if code is not None else None
    if file and os.path.exists(file):
        return None
    return "in `python -c`, a notebook or an interactive session"


_importing = 0
#: Where a remote runner gets the flow's code (`use_code_root`); None: the recorded folder.
_code_root: Any = None


def use_code_root(root: Any) -> None:
    """Import flows from `root` (a code package unpacked, or the code in an image) instead of
    the folder their record names, which is a folder of the machine that started the run.

    `root` may be a function returning the folder: it is called when the flow is first
    imported, so its errors (a code digest that does not match) are recorded like an
    import error's.
    """
    global _code_root
    _code_root = root


def _relocated(ref: dict[str, Any]) -> dict[str, Any]:
    global _code_root
    if _code_root is None:
        return ref
    if callable(_code_root):
        _code_root = _code_root()
    root = str(_code_root)
    out = {**ref, "root": root, "cwd": root}
    if ref.get("rel_file"):
        out["file"] = os.path.join(root, ref["rel_file"])
    return out


def is_importing() -> bool:
    """True while a flow's module is being imported to resume it (runs must not start then)."""
    return _importing > 0


def load_flow(ref: dict[str, Any]) -> FlowSpec:
    """Import the flow a record points at; the script's `__main__` block does not run."""
    ref = _relocated(ref)
    qualname = ref.get("qualname", "")
    if "<locals>" in qualname:
        raise KitaruError(
            f"flow {qualname!r} is defined inside a function, so a new process cannot import "
            "it; define the flow at module level to resume it from another process"
        )
    if ref.get("module") == "__main__" and not ref.get("file"):
        raise KitaruError(
            f"flow {qualname!r} was defined in `python -c`, a notebook or an interactive "
            "session, so no other process can import it; define it in a .py file (or a "
            "module) and start a new run to be able to resume it"
        )
    global _importing
    _importing += 1
    try:
        module = _import(ref)
    finally:
        _importing -= 1
    obj: Any = module
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise KitaruError(
            f"module {module.__name__!r} ({ref.get('file')}) has no flow {qualname!r} any more; "
            "restore it to resume this execution"
        ) from None
    spec = flow_spec_of(obj)
    if spec is None:
        raise KitaruError(f"{module.__name__}.{qualname} is not a @flow")
    return spec


def _import(ref: dict[str, Any]) -> Any:
    root = ref.get("root")
    if root and root not in sys.path:
        sys.path.insert(0, root)
    name = ref.get("import_name") or ref["module"]
    if name in sys.modules:
        return sys.modules[name]
    file = ref.get("file")
    if ref.get("module") == "__main__" and "." not in name:  # `python script.py`, not `-m pkg.mod`
        if not file or not os.path.exists(file):
            raise KitaruError(
                f"the script that defined this flow ({file}) no longer exists; restore it to "
                "resume the execution"
            )
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise KitaruError(
            f"cannot import module {name!r} that defines this flow ({exc}); run from the "
            f"project folder ({ref.get('cwd')}) or install the project"
        ) from exc
