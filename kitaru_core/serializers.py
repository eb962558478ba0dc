"""Turn values into artifact bytes and back.

Serializers, tried in order: `bytes` (raw), `pydantic` (a model, as JSON, with
its class reference), `json` (values that round-trip exactly through JSON) and
`pickle` (everything else; cloudpickle for what plain pickle refuses). The
record names the serializer used, so a reader knows what it will get.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import sys
import types
from collections.abc import Iterator
from typing import Any

from .errors import SerializationError

_JSON_SCALARS = (str, int, float, bool, type(None))
# Built once: json.dumps with non-default options builds a new encoder on every call.
_COMPACT_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def type_name(value: Any) -> str:
    """`module.Qualname` of a value's type (builtins without the module)."""
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def serialize(value: Any) -> tuple[bytes, str]:
    """Return (data, serializer name); `SerializationError` names the type if impossible."""
    cls = type(value)
    if cls is bytes:
        return value, "bytes"
    if cls is int:  # the commonest small input: its str() is its JSON
        return str(value).encode(), "json"
    if cls in _JSON_SCALARS:
        if cls is float and value != value:  # NaN does not round-trip through strict JSON
            return _pickle(value)
        return json.dumps(value).encode(), "json"
    if _is_pydantic_model(value):
        module = cls.__module__ if cls.__module__ != "__main__" else script_module_name()
        ref = f"{module}:{cls.__qualname__}"
        if module is not None and "<locals>" not in ref:
            return (ref + "\n").encode() + value.model_dump_json().encode(), "pydantic"
        return _pickle(value)
    if cls in (dict, list) and _is_plain_json(value, 0):
        try:
            return _COMPACT_JSON.encode(value).encode(), "json"
        except (TypeError, ValueError):
            pass
    return _pickle(value)


#: A `str` longer than this is serialized in pieces (`serialize_chunks`), never as one copy.
STREAM_MIN_CHARS = 1 << 20
_PIECE_CHARS = 1 << 20


def serialize_chunks(value: Any) -> tuple[Iterator[bytes], str] | None:
    """A large value's serialized bytes as an iterator of chunks, and the serializer name.

    The chunks join to exactly the bytes `serialize` gives (same content key), but
    no more than one chunk exists at a time besides the value itself. None for a
    value that is not streamed: use `serialize`.
    """
    if type(value) is str and len(value) > STREAM_MIN_CHARS:
        return _json_string_chunks(value), "json"
    return None


def _json_string_chunks(value: str) -> Iterator[bytes]:
    # JSON escapes a string code point by code point, so the escaped pieces of a string
    # join to the escaped string; slicing a str never splits a code point.
    yield b'"'
    for start in range(0, len(value), _PIECE_CHARS):
        yield json.dumps(value[start:start + _PIECE_CHARS])[1:-1].encode()
    yield b'"'


def deserialize(data: bytes, serializer: str) -> Any:
    """Rebuild a value from bytes written by `serialize`."""
    if serializer == "json":
        if len(data) > STREAM_MIN_CHARS and data[:1] == b'"' and b"\\" not in data:
            # A long string with nothing escaped: decoded straight from the buffer, without
            # the intermediate copy json.loads makes (peak: the bytes and the str, once each).
            return str(memoryview(data)[1:-1], "utf-8")
        return json.loads(data)
    if serializer == "bytes":
        return bytes(data)
    if serializer == "pickle":
        return pickle.loads(data)
    if serializer == "pydantic":
        ref, _, body = data.partition(b"\n")
        module, _, qualname = ref.decode().partition(":")
        try:
            cls: Any = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
        except (ImportError, AttributeError) as exc:
            raise SerializationError(
                f"cannot load a {ref.decode()} artifact: the class is not importable here ({exc}); "
                "run from the project that defines it"
            ) from exc
        return cls.model_validate_json(body)
    raise SerializationError(f"unknown serializer {serializer!r}; upgrade kitaru to read it")


def script_module_name() -> str | None:
    """The name other processes import this process's `__main__` by, or None if it has none.

    `python -m pkg.mod` gives `pkg.mod`; `python path/to/my_flow.py` gives
    `my_flow`, the name kitaru's loader and workers import the script by. The
    script is registered under that name here too, so reading a value back in
    this process finds the script's own classes instead of importing it twice.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if not name or name == "__main__":
        file = getattr(main, "__file__", None)
        if not file:
            return None  # an interactive session: nothing to import elsewhere
        name = os.path.splitext(os.path.basename(file))[0]
    sys.modules.setdefault(name, main)  # type: ignore[arg-type]
    return name


def _import_global(module: str, qualname: str) -> Any:
    """Unpickling helper: a class or function of a script, imported by its module name."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class _ScriptPickler(pickle.Pickler):
    """Plain pickle, except that classes and functions of a script run as `__main__`
    are named by the script's module name (`__main__` is another module elsewhere)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type | types.FunctionType) and obj.__module__ == "__main__":
            module = script_module_name()
            if module is not None and "<locals>" not in obj.__qualname__:
                return _import_global, (module, obj.__qualname__)
        return NotImplemented


def _pickle(value: Any) -> tuple[bytes, str]:
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if b"__main__" not in data:
            return data, "pickle"
        buf = io.BytesIO()
        _ScriptPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        return buf.getvalue(), "pickle"
    except Exception:
        pass
    try:
        import cloudpickle

        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize a value of type {type_name(value)}: {exc}. Return a JSON-able "
            "value, a pydantic model, bytes, or a picklable object"
        ) from exc


def _is_pydantic_model(value: Any) -> bool:
    pyd = sys.modules.get("pydantic")
    return pyd is not None and isinstance(value, pyd.BaseModel)


def _is_plain_json(value: Any, depth: int) -> bool:
    """True if `value` is made only of dict/list/str/int/float/bool/None (str keys)."""
    if depth > 64:
        return False
    cls = type(value)
    if cls in _JSON_SCALARS:
        return not (cls is float and (value != value or value in (float("inf"), float("-inf"))))
    if cls is list:
        return all(_is_plain_json(v, depth + 1) for v in value)
    if cls is dict:
        return all(type(k) is str and _is_plain_json(v, depth + 1) for k, v in value.items())
    return False
