"""The registry RPC's wire format, shared by the `server` registry flavor and the server.

Every `Registry` method is one `POST /api/v1/registry/<method>` whose JSON body holds the
method's arguments by name and whose JSON answer is `{"result": ...}`. Records travel as
JSON objects of their dataclass fields; `ArtifactRecord.data` (bytes) as base64. An error is
`{"error": <type>, "kinds": [<type and its bases>], "detail": <message>}`, so the client can
raise the same kitaru error type the backing registry raised.

`RPCS` is the one table both sides read: the arguments of each method with their codecs,
the codec of its result, the scope the route needs and whether a retry is safe.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from kitaru_core.errors import InvalidValueError
from kitaru_core.records import (
    ArtifactRecord,
    CallRecord,
    DocumentRecord,
    ExecutionRecord,
    LogChunk,
    MemoryRecord,
    MetadataEntry,
    WaitRecord,
)

#: The path of the RPC routes under the server's API root.
PREFIX = "/registry"
#: Document kinds only an `admin` key may read or write through the RPC (a runner's
#: `operator` key must not be able to mint itself an API key).
ADMIN_KINDS = frozenset({"service-account", "api-key"})

_ENCODER = json.JSONEncoder(default=repr, separators=(",", ":"))  # the `sqlite` registry's fallback


def dumps(value: Any) -> bytes:
    """JSON bytes of a wire value (a value JSON cannot hold is sent as its `repr`)."""
    return _ENCODER.encode(value).encode()


@dataclass(frozen=True, slots=True)
class Codec:
    """Turns one argument or result into its JSON form and back."""

    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


PLAIN = Codec(_same, _same)


def _record(cls: type) -> Codec:
    names = tuple(f.name for f in fields(cls))

    def encode(rec: Any) -> dict[str, Any]:
        return {n: getattr(rec, n) for n in names}

    def decode(data: Any) -> Any:
        if not isinstance(data, dict):
            raise InvalidValueError(f"expected a {cls.__name__} object, got {type(data).__name__}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidValueError(f"not a {cls.__name__}: {exc}") from None

    return Codec(encode, decode)


def _artifact_codec() -> Codec:
    base = _record(ArtifactRecord)

    def encode(rec: ArtifactRecord) -> dict[str, Any]:
        out = base.encode(rec)
        if rec.data is not None:
            out["data"] = base64.b64encode(rec.data).decode("ascii")
        return out

    def decode(data: Any) -> ArtifactRecord:
        rec = base.decode(data)
        if rec.data is not None:
            try:
                rec.data = base64.b64decode(rec.data, validate=True)
            except (TypeError, ValueError):
                raise InvalidValueError("artifact `data` is not base64") from None
        return rec

    return Codec(encode, decode)


def many(item: Codec) -> Codec:
    def decode(data: Any) -> list[Any]:
        if not isinstance(data, list):
            raise InvalidValueError(f"expected a list, got {type(data).__name__}")
        return [item.decode(d) for d in data]

    return Codec(lambda values: [item.encode(v) for v in values], decode)


def optional(item: Codec) -> Codec:
    return Codec(lambda v: None if v is None else item.encode(v),
                 lambda d: None if d is None else item.decode(d))


EXECUTION = _record(ExecutionRecord)
CALL = _record(CallRecord)
ARTIFACT = _artifact_codec()
WAIT = _record(WaitRecord)
LOG = _record(LogChunk)
META = _record(MetadataEntry)
MEMORY = _record(MemoryRecord)
DOCUMENT = _record(DocumentRecord)
#: A tuple (statuses, a keyset) travels as a JSON list.
TUPLE = Codec(lambda v: None if v is None else list(v), lambda d: None if d is None else tuple(d))
KEYS = Codec(sorted, set)


@dataclass(frozen=True, slots=True)
class Rpc:
    """One registry method over HTTP."""

    name: str  # the `Registry` method
    args: dict[str, Codec]  # its arguments (all sent by name), in signature order
    result: Codec
    #: The API key scope the route needs: `read` for pure reads, `operator` for writes (what
    #: runners and workers hold), `admin` for deleting executions.
    scope: str
    #: Safe to send again after a connection failed mid-request: reads, and writes whose
    #: repetition changes nothing (`renew_lease`, `create_wait`).
    idempotent: bool = False
    #: Documents of `ADMIN_KINDS` need an admin key (the route checks the `kind` argument).
    documents: bool = False
    #: Arguments without a default (a body that lacks one is refused with 422).
    required: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return "/" + self.name.replace("_", "-")

    def encode_args(self, values: dict[str, Any]) -> dict[str, Any]:
        return {n: self.args[n].encode(v) for n, v in values.items()}

    def decode_args(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidValueError(f"{self.name}: the body must be a JSON object of arguments")
        unknown = sorted(set(body) - set(self.args))
        if unknown:
            raise InvalidValueError(f"{self.name}: unknown argument {unknown[0]!r}; it takes "
                                    f"{', '.join(self.args) or 'none'}")
        missing = [n for n in self.required if n not in body]
        if missing:
            raise InvalidValueError(f"{self.name}: argument {missing[0]!r} is missing")
        return {n: self.args[n].decode(v) for n, v in body.items()}


def _rpc(name: str, scope: str, *, args: dict[str, Codec] | None = None, result: Codec = PLAIN,
         required: tuple[str, ...] = (), idempotent: bool = False, documents: bool = False) -> Rpc:
    return Rpc(name, args or {}, result, scope, idempotent, documents, required)


_S = PLAIN  # a plain JSON argument (str, number, bool, null, JSON value)

#: Every Registry method, by name.
RPCS: dict[str, Rpc] = {r.name: r for r in (
    # -- executions
    _rpc("create_execution", "operator", args={"record": EXECUTION, "artifacts": many(ARTIFACT)},
         required=("record",)),
    _rpc("get_execution", "read", args={"exec_id": _S}, result=EXECUTION, required=("exec_id",),
         idempotent=True),
    _rpc("list_executions", "read",
         args={"flow_name": _S, "status": _S, "limit": _S, "before": TUPLE},
         result=many(EXECUTION), idempotent=True),
    _rpc("claim_execution", "operator",
         args={"exec_id": _S, "owner": _S, "lease_expires": _S, "expected_version": _S},
         required=("exec_id", "owner", "lease_expires", "expected_version")),
    _rpc("renew_lease", "operator", args={"exec_id": _S, "owner": _S, "lease_expires": _S},
         required=("exec_id", "owner", "lease_expires"), idempotent=True),
    _rpc("update_execution", "operator",
         args={"exec_id": _S, "fields": _S, "owner": _S, "statuses": TUPLE,
               "expected_version": _S},
         required=("exec_id", "fields")),
    # -- checkpoint calls
    _rpc("get_calls", "read", args={"exec_id": _S}, result=many(CALL), required=("exec_id",),
         idempotent=True),
    _rpc("save_call", "operator",
         args={"call": CALL, "artifacts": many(ARTIFACT), "logs": many(LOG), "metadata": many(META)},
         required=("call",)),
    _rpc("find_cached_call", "read", args={"cache_key": _S}, result=optional(CALL),
         required=("cache_key",), idempotent=True),
    # -- artifacts
    _rpc("add_artifacts", "operator", args={"artifacts": many(ARTIFACT)}, required=("artifacts",)),
    _rpc("get_artifact", "read", args={"artifact_id": _S}, result=ARTIFACT,
         required=("artifact_id",), idempotent=True),
    _rpc("list_artifacts", "read", args={"exec_id": _S, "name": _S, "call_id": _S},
         result=many(ARTIFACT), idempotent=True),
    # -- waits
    _rpc("create_wait", "operator", args={"wait": WAIT}, result=WAIT, required=("wait",),
         idempotent=True),
    _rpc("get_waits", "read", args={"exec_id": _S}, result=many(WAIT), required=("exec_id",),
         idempotent=True),
    _rpc("pending_waits", "read", args={"exec_ids": _S}, result=many(WAIT),
         required=("exec_ids",), idempotent=True),
    _rpc("answer_wait", "operator", args={"exec_id": _S, "name": _S, "value": _S},
         required=("exec_id", "name")),
    _rpc("suspend_at_wait", "operator", args={"exec_id": _S, "owner": _S, "wait_name": _S},
         required=("exec_id", "owner", "wait_name")),
    # -- logs and metadata
    _rpc("append_logs", "operator", args={"chunks": many(LOG)}, required=("chunks",)),
    _rpc("get_logs", "read", args={"exec_id": _S, "call_id": _S, "after": _S}, result=many(LOG),
         required=("exec_id",), idempotent=True),
    _rpc("add_metadata", "operator", args={"entries": many(META)}, required=("entries",)),
    _rpc("get_metadata", "read", args={"exec_id": _S}, result=many(META), required=("exec_id",),
         idempotent=True),
    # -- housekeeping
    _rpc("delete_executions", "admin", args={"exec_ids": _S}, required=("exec_ids",)),
    _rpc("referenced_blob_keys", "read", result=KEYS, idempotent=True),
    _rpc("check_integrity", "read", args={"full": _S}, idempotent=True),
    # -- memory
    _rpc("put_memory", "operator", args={"record": MEMORY, "artifact": optional(ARTIFACT)},
         result=MEMORY, required=("record",)),
    _rpc("get_memory", "read", args={"scope": _S, "key": _S, "version": _S},
         result=optional(MEMORY), required=("scope", "key"), idempotent=True),
    _rpc("list_memory", "read", args={"scope": _S, "include_deleted": _S}, result=many(MEMORY),
         required=("scope",), idempotent=True),
    _rpc("memory_history", "read", args={"scope": _S, "key": _S}, result=many(MEMORY),
         required=("scope", "key"), idempotent=True),
    _rpc("list_memory_scopes", "read", idempotent=True),
    # -- documents (deployments, secrets, ...; API keys and accounts need an admin key)
    _rpc("put_document", "operator",
         args={"kind": _S, "name": _S, "body": _S, "expected_version": _S}, result=DOCUMENT,
         required=("kind", "name", "body"), documents=True),
    _rpc("get_document", "operator", args={"kind": _S, "name": _S}, result=optional(DOCUMENT),
         required=("kind", "name"), idempotent=True, documents=True),
    _rpc("list_documents", "operator", args={"kind": _S, "prefix": _S}, result=many(DOCUMENT),
         required=("kind",), idempotent=True, documents=True),
    _rpc("delete_document", "operator", args={"kind": _S, "name": _S, "expected_version": _S},
         required=("kind", "name"), documents=True),
)}


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON of an error: its type, the names of its bases (for the client to find the
    nearest type it knows) and the whole message."""
    kinds = [c.__name__ for c in type(exc).__mro__ if c not in (BaseException, object)]
    detail = str(exc).strip() or type(exc).__name__
    return {"error": type(exc).__name__, "kinds": kinds, "detail": detail}
