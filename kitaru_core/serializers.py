"""Turn values into artifact bytes and back.

Serializers, tried in order: `bytes` (raw), `pydantic` (a model, as JSON, with
its class reference), `json` (values that round-trip exactly through JSON) and
`pickle` (everything else; cloudpickle for what plain pickle refuses). The
record names the serializer used, so a reader knows what it will get.

A pickled value must load back as itself: an open file, a socket, a lock, a
generator, or anything whose pickle loads back as another type or an unequal
value is a `SerializationError`, never silently recorded as something else.
"""

from __future__ import annotations

import dataclasses
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
# Handles on things outside the process: cloudpickle would store a file's contents as a
# StringIO, so a resume would silently get another type.
_LIVE_RESOURCES: tuple[type, ...] = (io.IOBase,)
_IN_MEMORY_STREAMS = (io.StringIO, io.BytesIO)  # these pickle with their contents and position
# Built once: json.dumps with non-default options builds a new encoder on every call.
_COMPACT_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
# The C encoder behind `_COMPACT_JSON.encode`, made once instead of once per value (the same
# bytes). No circular-reference markers: only values `_is_plain_json` accepted reach it, and
# it refuses anything nested deeper than 64 levels, so a cycle never does.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_encode_plain: Any = (
    _C_ENCODER(None, None, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
    if _C_ENCODER is not None else None
)


def _plain_json_text(value: Any) -> str:
    """`_COMPACT_JSON.encode(value)` for a value `_is_plain_json` accepted."""
    if _encode_plain is None:
        return _COMPACT_JSON.encode(value)
    return "".join(_encode_plain(value, 0))


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
            return _plain_json_text(value).encode(), "json"
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


#: Pickles larger than this are not loaded back to check them (it would double the memory of
#: a large array); the live-resource check below still applies to them.
_ROUND_TRIP_MAX_BYTES = 64 * 1024 * 1024
_FIX = ("return plain data instead: a JSON-able value, a pydantic model, bytes, or an object "
        "that pickles back to itself")


def _pickle(value: Any) -> tuple[bytes, str]:
    if isinstance(value, _LIVE_RESOURCES) and not isinstance(value, _IN_MEMORY_STREAMS):
        raise SerializationError(
            f"cannot serialize a value of type {type_name(value)}: an open file, socket or stream "
            "lives only in this process; return what it holds (its contents, a path or a URL) instead"
        )
    try:
        data = _plain_pickle(value)
    except Exception as plain_error:
        try:
            import cloudpickle

            data = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            raise SerializationError(
                f"cannot serialize a value of type {type_name(value)}: {plain_error}; {_FIX}"
            ) from plain_error
    _check_round_trip(value, data)
    return data, "pickle"


def _plain_pickle(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if b"__main__" not in data:
        return data
    buf = io.BytesIO()
    _ScriptPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buf.getvalue()


def _check_round_trip(value: Any, data: bytes) -> None:
    """Refuse a pickle that does not load back as the value (e.g. a file read into a StringIO).

    The type must be the same, and a type with its own `__eq__` must compare equal
    (NaN counts as equal to NaN, inside lists, dicts and dataclasses too). Values whose
    `==` does not give a bool (arrays) are checked by type only.
    """
    if len(data) > _ROUND_TRIP_MAX_BYTES:
        return
    try:
        restored = pickle.loads(data)
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize a value of type {type_name(value)}: it pickles, but does not load "
            f"back ({type(exc).__name__}: {exc}); {_FIX}"
        ) from None
    if type(restored) is not type(value):
        raise SerializationError(
            f"cannot serialize a value of type {type_name(value)}: pickled and loaded back it "
            f"becomes a {type_name(restored)}; {_FIX}"
        )
    if _same(restored, value, 0) is False:
        raise SerializationError(
            f"cannot serialize a value of type {type_name(value)}: pickled and loaded back it is "
            f"no longer equal to the original (its pickling loses or changes something); {_FIX}"
        )


def _same(a: Any, b: Any, depth: int) -> bool | None:
    """`a == b` with NaN equal to NaN; None when equality can't be told (no `__eq__`, arrays)."""
    cls = type(a)
    if cls is not type(b) or depth > 64:
        return False if cls is not type(b) else None
    if cls is float:
        return a == b or (a != a and b != b)
    if cls in (list, tuple):
        if len(a) != len(b):
            return False
        return _all_same(zip(a, b, strict=True), depth)
    if cls is dict:
        if a.keys() != b.keys():
            return False
        return _all_same(((a[k], b[k]) for k in a), depth)
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and cls.__eq__ is not object.__eq__:
        fields = [f.name for f in dataclasses.fields(a) if f.compare]
        return _all_same(((getattr(a, n), getattr(b, n)) for n in fields), depth)
    if cls.__eq__ is object.__eq__:
        return None
    try:
        equal = a == b
    except Exception:
        return None
    return equal if type(equal) is bool else None


def _all_same(pairs: Any, depth: int) -> bool | None:
    unknown = False
    for x, y in pairs:
        same = _same(x, y, depth + 1)
        if same is False:
            return False
        unknown = unknown or same is None
    return None if unknown else True


def _is_pydantic_model(value: Any) -> bool:
    pyd = sys.modules.get("pydantic")
    return pyd is not None and isinstance(value, pyd.BaseModel)


_INF = (float("inf"), float("-inf"))


def _is_plain_json(value: Any, depth: int) -> bool:
    """True if `value` is made only of dict/list/str/int/float/bool/None (str keys), at most
    64 levels deep.

    Runs on every dict or list a checkpoint returns or receives: scalars are checked in
    the loop, only nested containers cost a call.
    """
    cls = type(value)
    if cls is not dict and cls is not list:
        if depth > 64 or cls not in _JSON_SCALARS:
            return False
        return not (cls is float and (value != value or value in _INF))
    if depth >= 64:  # its items would be deeper than 64
        return depth == 64 and not value
    if cls is dict:
        if not all(type(k) is str for k in value):
            return False
        value = value.values()
    for v in value:
        t = type(v)
        if t is str or t is int or t is bool or v is None:
            continue
        if t is float:
            if v != v or v in _INF:
                return False
            continue
        if (t is dict or t is list) and _is_plain_json(v, depth + 1):
            continue
        return False
    return True
