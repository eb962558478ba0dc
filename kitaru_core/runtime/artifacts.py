"""Values <-> artifacts: serialize, content-address, store, and describe."""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from ..errors import ArtifactDamagedError, SerializationError
from ..records import ArtifactRecord
from ..serializers import deserialize, serialize, serialize_chunks, type_name

if TYPE_CHECKING:
    from ..interfaces import ArtifactStore


def new_id() -> str:
    """A new random id: 32 hex digits (128 random bits, like a uuid4 without its version bits).

    Drawn from a private generator seeded from the OS (again after a fork): no
    system call per id, unlike uuid4, and a user's `random.seed()` cannot make
    two runs produce the same ids.
    """
    return f"{_ids.getrandbits(128):032x}"


#: Leading hex digits an artifact id takes from its execution's id (see `new_artifact_id`).
_NEAR = 2
_HEX = frozenset("0123456789abcdef")


def new_artifact_id(exec_id: str) -> str:
    """A new artifact id: 32 hex digits, the first two of them its execution's.

    An execution's artifacts then sit in one 256th of a registry's index of ids, so
    recording them touches a few index pages however large the registry has grown.
    With fully random ids each artifact dirtied a page of its own: folding a 256-call
    batch wrote 3.2 KB of SQLite WAL per call after 2,000 calls of history and 16 KB
    after 150,000; this way 2.2-2.6 KB (bench/registry_growth.py). Two digits,
    not more: the other 30 stay random (120 bits), so a 6- or 7-digit prefix of an
    artifact id is as unlikely to be ambiguous as with random ids (four shared digits
    made 6-digit prefixes of one execution's artifacts collide often).
    An execution id that does not start with two hex digits gets a random id.
    """
    head = exec_id[:_NEAR]
    if len(head) == _NEAR and _HEX.issuperset(head):
        return f"{head}{_ids.getrandbits(120):030x}"
    return new_id()


_ids = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def write_value(
    store: ArtifactStore,
    value: Any,
    *,
    exec_id: str,
    name: str,
    direction: str,
    call_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    what: str | Callable[[], str] = "",
    inline_limit: int = 0,
) -> ArtifactRecord:
    """Serialize `value`, store its bytes, and return the (not yet recorded) reference.

    `what` names the place for error messages, e.g. "checkpoint 'research#1' output"
    (or a function that makes that text: it is needed only when serializing fails).
    Bytes up to `inline_limit` stay in the record (`data`) for the registry to keep.
    """
    streamed = serialize_chunks(value)
    if streamed is not None:  # a large value: written as it is serialized, hashed on the way
        chunks, serializer = streamed
        key, size = store.put_stream(chunks)
        return ArtifactRecord(
            artifact_id=new_artifact_id(exec_id), exec_id=exec_id, name=name, direction=direction, key=key,
            serializer=serializer, type_name=type_name(value), size=size, call_id=call_id,
            created_at=time.time(), metadata=metadata,
        )
    try:
        data, serializer = serialize(value)
    except SerializationError as exc:
        where = what() if callable(what) else what
        raise SerializationError(f"{where or name}: {exc}") from None
    key = sha256(data).hexdigest()
    size = len(data)
    inline = size <= inline_limit
    if not inline:
        store.put_blob(data, key)
    return ArtifactRecord(  # positional: the hot path makes two or three per call
        new_artifact_id(exec_id), exec_id, name, direction, key, serializer, type_name(value), size,
        call_id, 1, time.time(), metadata, data if inline else None,
    )


def write_bytes(
    store: ArtifactStore,
    data: bytes,
    *,
    serializer: str,
    type_name_: str,
    exec_id: str,
    name: str,
    direction: str,
    call_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    inline_limit: int = 0,
) -> ArtifactRecord:
    key = hashlib.sha256(data).hexdigest()
    inline = len(data) <= inline_limit
    if not inline:
        store.put_blob(data, key)
    return ArtifactRecord(
        artifact_id=new_artifact_id(exec_id),
        exec_id=exec_id,
        name=name,
        direction=direction,
        key=key,
        serializer=serializer,
        type_name=type_name_,
        size=len(data),
        call_id=call_id,
        created_at=time.time(),
        metadata=metadata,
        data=data if inline else None,
    )


def link(
    source: ArtifactRecord, *, exec_id: str, name: str, direction: str, call_id: str | None
) -> ArtifactRecord:
    """A new reference to the same stored bytes (lineage: an input that was an output)."""
    meta = dict(source.metadata) if source.metadata else {}
    meta["source_artifact"] = source.artifact_id
    return ArtifactRecord(  # positional: an output passed on makes one per call
        new_artifact_id(exec_id), exec_id, name, direction, source.key, source.serializer, source.type_name,
        source.size, call_id, 1, time.time(), meta, source.data,
    )


def read_bytes(store: ArtifactStore, record: ArtifactRecord) -> bytes:
    """The serialized bytes of an artifact: inline in the record, or its blob.

    A blob of another size than recorded (cut short by a crash or a full disk) is
    an `ArtifactDamagedError`, never read as a value.
    """
    if record.data is not None:
        return record.data
    data = store.get_blob(record.key)
    if len(data) != record.size:
        raise ArtifactDamagedError(
            f"artifact {record.artifact_id} ({record.name!r} of execution {record.exec_id}) is "
            f"damaged: its blob {record.key} holds {len(data)} bytes, the record says "
            f"{record.size}; `kitaru doctor --check` lists every damaged blob. Restore the "
            "artifact store from a backup, or replay the execution from that step"
        )
    return data


def ensure_blob(store: ArtifactStore, record: ArtifactRecord) -> None:
    """Make sure the artifact's bytes are in the store (a worker elsewhere reads only the store)."""
    if record.data is not None:
        store.put_blob(record.data, record.key)


def read_value(store: ArtifactStore, record: ArtifactRecord) -> Any:
    """Load the value an artifact reference points at."""
    return deserialize(read_bytes(store, record), record.serializer)
