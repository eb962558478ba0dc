"""Plain records the registry stores and returns.

They are dataclasses rather than pydantic models on purpose: a checkpoint call
creates a few of them on the hot path, and a dataclass costs a fraction of a
validated model. Values crossing the plugin boundary are these records, JSON
strings and primitive types only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ExecutionRecord:
    """One `flow.run(...)`: identity, status, frozen stack, owner and lease."""

    exec_id: str
    flow_name: str
    status: str
    flow_ref: dict[str, Any] = field(default_factory=dict)
    stack: dict[str, Any] = field(default_factory=dict)
    inputs_artifact: str | None = None
    result_artifact: str | None = None
    failure: dict[str, Any] | None = None
    original_exec_id: str | None = None
    replay: dict[str, Any] | None = None
    owner: str | None = None
    lease_expires: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    version: int = 0
    #: The runner an orchestrator launched to continue this execution, kept by the core
    #: (`kitaru_core.runtime.runners`): {"launch", "handle", "launched_at", "launches",
    #: "relaunches", "claimed_at", "mode"}. None when no launched runner is responsible (the
    #: execution runs, or last ran, in a process the user started: `flow.run()`, a
    #: foreground `kitaru executions resume`).
    runner: dict[str, Any] | None = None


@dataclass(slots=True)
class CallRecord:
    """One checkpoint call (`name#n` or an explicit id) inside an execution."""

    exec_id: str
    call_id: str
    name: str
    seq: int
    status: str
    type: str | None = None
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    output_artifact: str | None = None
    error: dict[str, Any] | None = None
    cache_key: str | None = None
    task: dict[str, Any] | None = None


@dataclass(slots=True)
class ArtifactRecord:
    """A typed, versioned reference to content-addressed bytes.

    The bytes live in the artifact store under `key`, except small ones that the
    registry keeps inline (`data`; see `Registry.inline_limit`): same key, same
    serializer, just no blob of their own.
    """

    artifact_id: str
    exec_id: str
    name: str
    direction: str  # "output", "input" or "saved"
    key: str  # the blob's sha256 key in the artifact store
    serializer: str
    type_name: str
    size: int
    call_id: str | None = None
    version: int = 1
    created_at: float = 0.0
    metadata: dict[str, Any] | None = None
    data: bytes | None = None  # the serialized bytes when kept inline in the registry


@dataclass(slots=True)
class WaitRecord:
    """A `wait()` in an execution: its question, schema and (once given) input."""

    exec_id: str
    name: str
    seq: int
    status: str  # "pending" or "answered"
    question: str | None = None
    schema: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    value: Any = None
    timeout: float | None = None
    created_at: float = 0.0
    answered_at: float | None = None


@dataclass(slots=True)
class LogChunk:
    """A chunk of captured output of one checkpoint call (or of the flow body)."""

    exec_id: str
    call_id: str | None
    seq: int
    stream: str
    text: str  # the chunk itself, or "" when it was spilled to the artifact store
    created_at: float
    key: str | None = None  # artifact-store key of a large chunk


@dataclass(slots=True)
class MetadataEntry:
    """A `kitaru.log(**metadata)` entry."""

    exec_id: str
    call_id: str | None
    key: str
    value: Any
    created_at: float


@dataclass(slots=True)
class MemoryRecord:
    """One version of a memory key in a scope (`kitaru.memory`).

    `scope` is `flow:<flow name>`, `execution:<exec id>` or `namespace:<name>`.
    Versions count from 1 per (scope, key); a delete is a version too (a
    tombstone: `deleted=True`, no artifact), so the history is never lost.
    """

    scope: str
    key: str
    version: int = 0  # assigned by `Registry.put_memory`
    artifact_id: str | None = None  # the value's artifact; None for a tombstone
    deleted: bool = False
    exec_id: str | None = None  # the execution that wrote it (None: outside any flow)
    call_id: str | None = None  # the flow-body memory call that wrote it (makes it idempotent)
    created_at: float = 0.0


@dataclass(slots=True)
class DocumentRecord:
    """A small named JSON document the registry keeps beside the executions.

    What the server side stores lives here: deployments and their tags, secrets
    (encrypted), service accounts and API keys (hashed). `kind` groups documents
    ("deployment", "secret", ...), `name` is unique within a kind, and `version`
    counts writes from 1, so a writer can compare-and-set (`Registry.put_document`).
    """

    kind: str
    name: str
    version: int
    body: dict[str, Any]
    created_at: float = 0.0
    updated_at: float = 0.0
