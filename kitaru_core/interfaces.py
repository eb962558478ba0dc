"""The four component interfaces a stack is made of.

A plugin implements one of these per flavor. Implementations receive their
validated, frozen config model and a `ComponentContext`; they import their SDKs
inside methods, never at module import time.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from .errors import ConfigError

if TYPE_CHECKING:
    from .records import (
        ArtifactRecord,
        CallRecord,
        DocumentRecord,
        ExecutionRecord,
        LogChunk,
        MemoryRecord,
        MetadataEntry,
        WaitRecord,
    )


class FlavorConfig(BaseModel):
    """Base of every flavor's config: frozen, and a typo in a key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, slots=True)
class ComponentContext:
    """What every component is told besides its own config."""

    home: Path  # the kitaru home folder
    stack_name: str
    durability: str = "default"  # "default" survives a process kill, "strict" a power loss

    @property
    def strict(self) -> bool:
        return self.durability == "strict"


class Component(abc.ABC):
    """Common shape: built from (config, context), closed when the stack is released."""

    type: ClassVar[str]

    def __init__(self, config: FlavorConfig, context: ComponentContext) -> None:
        self.config = config
        self.context = context

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""


class Registry(Component):
    """The durable record: executions, calls, waits, artifact refs, logs, metadata, memory.

    State transitions are compare-and-set; an owner with a lease runs an
    execution. Large payloads never live here, only references to the artifact
    store; a registry may keep small ones inline (see `inline_limit`).
    """

    type = "registry"
    #: Serialized values of at most this many bytes are kept in the artifact record
    #: (`ArtifactRecord.data`) instead of a blob of their own: one write per checkpoint
    #: instead of two. 0 (the default for a registry that does not say) keeps every
    #: payload in the artifact store. A registry that sets it stores and returns `data`.
    inline_limit: int = 0

    @classmethod
    def reach(cls, config: FlavorConfig) -> str:
        """From where a registry of this flavor with `config` can be used: "process" (only the
        process that built it, say an in-memory store), "machine" (processes of this
        machine: a folder, a SQLite file) or "network" (the default). `kitaru stack
        register/validate` refuses a stack whose orchestrator's runners run wider than this.
        """
        return "network"

    # -- executions -------------------------------------------------------
    @abc.abstractmethod
    def create_execution(
        self, record: ExecutionRecord, artifacts: Sequence[ArtifactRecord] = ()
    ) -> None:
        """Insert a new execution (its id must be new) with `artifacts` (its inputs).

        One transaction: either the execution and all of `artifacts` are recorded, or
        nothing is. An execution whose `inputs_artifact` names a reference that was never
        recorded could never be resumed.
        """

    @abc.abstractmethod
    def get_execution(self, exec_id: str) -> ExecutionRecord:
        """Return the execution with this id or unique id prefix (one character or more).

        A prefix is matched literally, never as a pattern (see `kitaru_core.ids`). Raises
        `ExecutionNotFoundError` when none match or several do (the message lists them),
        `InvalidValueError` for an id no registry could hold (`ids.check_id`).
        """

    @abc.abstractmethod
    def list_executions(
        self,
        *,
        flow_name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[ExecutionRecord]:
        """Executions, newest first (`created_at` descending, then `exec_id` descending),
        optionally filtered.

        `before=(created_at, exec_id)` (a keyset: the last record of the previous page)
        keeps only executions that sort after it, so pages stay stable while new
        executions are inserted. A backend answers it from an index on
        (created_at, exec_id), never by skipping rows.
        """

    @abc.abstractmethod
    def claim_execution(
        self, exec_id: str, *, owner: str, lease_expires: float, expected_version: int
    ) -> bool:
        """Make `owner` the owner if the row still has `expected_version`; True if it won."""

    @abc.abstractmethod
    def renew_lease(self, exec_id: str, *, owner: str, lease_expires: float) -> bool:
        """Extend the lease of `owner`; False if it no longer owns the execution."""

    @abc.abstractmethod
    def update_execution(
        self,
        exec_id: str,
        fields: dict[str, Any],
        *,
        owner: str | None = None,
        statuses: tuple[str, ...] | None = None,
        expected_version: int | None = None,
    ) -> bool:
        """Set `fields` (bumping the version) if the row matches; True if it did.

        `owner` given: only while that owner holds the execution (fencing).
        `statuses` given: only while the status is one of them (compare-and-set).
        `expected_version` given: only while the row still has this version (compare-and-set
        on the whole record: of two writers that read the same version, exactly one wins).
        `fields` may name any `ExecutionRecord` field but `exec_id` and `version`; JSON
        fields (`failure`, `replay`, `runner`, ...) are stored and returned as given.
        """

    def record_outcome(
        self,
        exec_id: str,
        fields: dict[str, Any],
        artifacts: Sequence[ArtifactRecord] = (),
        *,
        owner: str | None = None,
        statuses: tuple[str, ...] | None = None,
    ) -> bool:
        """`add_artifacts(artifacts)`, then `update_execution(exec_id, fields, owner=,
        statuses=)`: a run's result and its outcome; True if the update matched.

        The artifacts are recorded whether or not it did. A backend that can do both in
        one transaction overrides this (one commit per finished run instead of two).
        """
        if artifacts:
            self.add_artifacts(list(artifacts))
        return self.update_execution(exec_id, fields, owner=owner, statuses=statuses)

    # -- checkpoint calls -------------------------------------------------
    @abc.abstractmethod
    def get_calls(self, exec_id: str) -> list[CallRecord]:
        """All calls of an execution, in call order (seq)."""

    @abc.abstractmethod
    def save_call(
        self,
        call: CallRecord,
        artifacts: Sequence[ArtifactRecord] = (),
        logs: Sequence[LogChunk] = (),
        metadata: Sequence[MetadataEntry] = (),
    ) -> None:
        """Insert or replace a call with its artifacts, logs and metadata in one transaction."""

    @abc.abstractmethod
    def find_cached_call(self, cache_key: str) -> CallRecord | None:
        """A completed call (any execution) with this cache key, newest first."""

    # -- artifacts --------------------------------------------------------
    @abc.abstractmethod
    def add_artifacts(self, artifacts: list[ArtifactRecord]) -> None:
        """Insert artifact references; versions are assigned per name."""

    @abc.abstractmethod
    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """One artifact by id or unique prefix, as `get_execution`; `ArtifactNotFoundError`
        if none or several match."""

    @abc.abstractmethod
    def list_artifacts(
        self, *, exec_id: str | None = None, name: str | None = None, call_id: str | None = None
    ) -> list[ArtifactRecord]:
        """Artifacts in creation order, optionally filtered."""

    # -- waits ------------------------------------------------------------
    @abc.abstractmethod
    def create_wait(self, wait: WaitRecord) -> WaitRecord:
        """Record a pending wait unless one with this name exists; return the stored one."""

    @abc.abstractmethod
    def get_waits(self, exec_id: str) -> list[WaitRecord]:
        """All waits of an execution, in order."""

    def pending_waits(self, exec_ids: Sequence[str]) -> list[WaitRecord]:
        """The pending wait of each of these executions that has one (its first, in wait
        order), in the order of `exec_ids`; unknown ids are skipped.

        What a list of executions shows beside each `waiting` one. The default asks
        `get_waits` once per execution; a backend that can read them all at once
        overrides this.
        """
        found: list[WaitRecord] = []
        for exec_id in dict.fromkeys(exec_ids):
            pending = next((w for w in self.get_waits(exec_id) if w.status == "pending"), None)
            if pending is not None:
                found.append(pending)
        return found

    @abc.abstractmethod
    def answer_wait(self, exec_id: str, name: str, value: Any) -> bool:
        """Store an input for a pending wait; False if it is not pending."""

    @abc.abstractmethod
    def suspend_at_wait(self, exec_id: str, *, owner: str, wait_name: str) -> bool:
        """Release an execution blocked at a wait, unless that wait was answered; True if it did.

        One conditional update: while `owner` holds the execution, its status is
        `running` or `waiting`, and its wait `wait_name` is still `pending`, set the
        status to `waiting`, clear `owner` and `lease_expires`, and bump the version.
        When any condition fails nothing changes and it returns False; above all when
        the wait was answered meanwhile: the caller (the runner polling that wait) then
        takes the answer and continues.

        With `answer_wait` (which only answers a pending wait) this is the hand-over
        between a polling runner and an input as one compare-and-set: either the
        runner suspends first, and whoever answers next finds no owner and launches a
        resume; or the answer lands first, and the runner keeps the execution. No
        answer is left without a runner. For a SQL registry (`FOR UPDATE` where the
        isolation level would otherwise let the check read a stale wait row):

            UPDATE executions SET status = 'waiting', owner = NULL, lease_expires = NULL,
                   version = version + 1
             WHERE exec_id = :exec_id AND owner = :owner AND status IN ('running', 'waiting')
               AND EXISTS (SELECT 1 FROM waits WHERE exec_id = :exec_id
                           AND name = :wait_name AND status = 'pending' FOR UPDATE)
        """

    # -- logs and metadata ------------------------------------------------
    @abc.abstractmethod
    def append_logs(self, chunks: list[LogChunk]) -> None:
        """Append captured output chunks."""

    @abc.abstractmethod
    def get_logs(
        self, exec_id: str, *, call_id: str | None = None, after: int = 0
    ) -> list[LogChunk]:
        """Chunks with a sequence number above `after`, in order."""

    @abc.abstractmethod
    def add_metadata(self, entries: list[MetadataEntry]) -> None:
        """Append `kitaru.log` entries."""

    @abc.abstractmethod
    def get_metadata(self, exec_id: str) -> list[MetadataEntry]:
        """All metadata entries of an execution, in order."""

    # -- housekeeping (optional: a registry without it raises `ConfigError`) ---------
    def delete_executions(self, exec_ids: Sequence[str]) -> int:
        """Remove these executions (full ids) and everything recorded for them.

        Removed, in one transaction: the execution rows, their checkpoint calls, waits,
        log chunks, metadata entries and artifact references. Kept: memory (a version
        written by one of them stays readable, and so does the artifact reference it
        points at). Unknown ids are ignored. Returns how many executions were removed.
        Blobs are never touched here; `kitaru gc` removes those no record references.
        """
        raise self._unsupported("deleting executions")

    def referenced_blob_keys(self) -> set[str]:
        """Every artifact-store key a record still references.

        That is the `key` of every artifact reference (inline ones included) and of
        every log chunk spilled to the store. `kitaru gc` keeps exactly these (and any
        blob younger than its grace period), so a registry must raise rather than
        return a partial set.
        """
        raise self._unsupported("listing referenced blobs (kitaru gc)")

    def check_integrity(self, *, full: bool = False) -> list[str] | None:
        """Problems found in the record's own storage: [] if sound, None if not checkable.

        `full=False` is a quick check, cheap enough for `kitaru status`; `full=True` the
        thorough one (`kitaru doctor --check`). Each problem is one line of text.
        """
        return None

    def _unsupported(self, what: str) -> ConfigError:
        return ConfigError(
            f"the registry of stack {self.context.stack_name!r} ({type(self).__name__}) does not "
            f"support {what}; use a registry flavor that does, such as `sqlite`"
        )

    # -- memory (optional: a registry without it raises `ConfigError`) ---------
    def put_memory(self, record: MemoryRecord, artifact: ArtifactRecord | None) -> MemoryRecord:
        """Store a new version of (`record.scope`, `record.key`) and return it with its version.

        The version is the key's latest plus one (1 for a new key), assigned
        atomically with inserting `artifact` (the value's reference; None for a
        tombstone) in one transaction. Idempotent per writing call: when
        `record.call_id` is set and (scope, key) already has a version written by
        the same (`exec_id`, `call_id`), that version is returned and nothing is
        written, so a call that runs again after a crash does not write twice.
        """
        raise self._no_memory()

    def get_memory(self, scope: str, key: str, version: int | None = None) -> MemoryRecord | None:
        """One version (the latest if `version` is None), tombstones included; None if none."""
        raise self._no_memory()

    def list_memory(self, scope: str, *, include_deleted: bool = False) -> list[MemoryRecord]:
        """The latest version of every key of a scope, by key.

        Keys whose latest version is a tombstone are left out unless `include_deleted`.
        """
        raise self._no_memory()

    def memory_history(self, scope: str, key: str) -> list[MemoryRecord]:
        """Every version of a key, oldest first, tombstones included ([] if none)."""
        raise self._no_memory()

    def list_memory_scopes(self) -> list[str]:
        """Every scope with at least one version stored, sorted."""
        raise self._no_memory()

    # -- documents (optional: a registry without them raises `ConfigError`) ---------
    def put_document(
        self, kind: str, name: str, body: dict[str, Any], *, expected_version: int | None = None
    ) -> DocumentRecord:
        """Store `body` (JSON-able) as document (`kind`, `name`) and return it with its version.

        Versions count writes from 1. `expected_version` makes the write a compare-and-set:
        0 creates the document only if it does not exist, N replaces it only while its
        version is N; either raises `DocumentConflictError` when that does not hold. None
        writes unconditionally. Of several writers racing with the same expected version
        exactly one succeeds. `created_at` is kept from the first version.
        """
        raise self._unsupported("documents (deployments, secrets, API keys)")

    def get_document(self, kind: str, name: str) -> DocumentRecord | None:
        """The current version of a document, or None."""
        raise self._unsupported("documents (deployments, secrets, API keys)")

    def list_documents(self, kind: str, *, prefix: str = "") -> list[DocumentRecord]:
        """The documents of a kind whose name starts with `prefix` (literally), by name."""
        raise self._unsupported("documents (deployments, secrets, API keys)")

    def delete_document(self, kind: str, name: str, *, expected_version: int | None = None) -> bool:
        """Remove a document; False if there was none.

        With `expected_version`, only while the document has that version: a document
        of another version raises `DocumentConflictError` and stays.
        """
        raise self._unsupported("documents (deployments, secrets, API keys)")

    def _no_memory(self) -> ConfigError:
        return ConfigError(
            f"the registry of stack {self.context.stack_name!r} ({type(self).__name__}) does not "
            "support memory (kitaru.memory); use a stack whose registry flavor does, such as `sqlite`"
        )


class ArtifactStore(Component):
    """Bytes by key: content-addressed blobs plus a few named files (task specs, results)."""

    type = "artifact_store"
    #: Modules a worker of this store will import (its SDK's): a fork server imports them
    #: once, before it forks workers (`kitaru_core.forkserver`). Imports must start no thread.
    fork_preload: ClassVar[tuple[str, ...]] = ()

    @property
    def process_local(self) -> bool:
        """True if only this machine (a local folder) or this process (`memory://`) can reach
        what the store holds, so a component running elsewhere could not read it.

        The default reads the scheme of `url()`; a flavor may override it, also with a
        plain class attribute (`process_local = False`).
        """
        return is_local_url(self.url("probe"))

    @classmethod
    def reach(cls, config: FlavorConfig) -> str:
        """From where a store of this flavor with `config` can be used: "process" (only the
        process that built it, say an in-memory store), "machine" (processes of this
        machine: a folder, a SQLite file) or "network" (the default). `kitaru stack
        register/validate` refuses a stack whose execution target's tasks or
        orchestrator's runners run wider than this. It answers from the config alone
        (nothing is built or connected); `process_local` says it of a built store.
        """
        return "network"

    @abc.abstractmethod
    def put_blob(self, data: bytes, key: str) -> None:
        """Store `data` under its sha256 `key`; a no-op if that key already exists."""

    def put_stream(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store the concatenation of `chunks` under its sha256 key; return (key, size).

        The contract of `put_blob`: the blob is complete under its key before this
        returns (and a no-op if that key exists). This default joins the chunks in
        memory; a store that can writes them as they come, so a large value is never
        held twice.
        """
        data = b"".join(chunks)
        key = hashlib.sha256(data).hexdigest()
        self.put_blob(data, key)
        return key, len(data)

    @abc.abstractmethod
    def get_blob(self, key: str) -> bytes:
        """The bytes stored under `key`; `ArtifactNotFoundError` if absent."""

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (exclusive) of the blob `key` (`start` inside the blob,
        `end` may pass its end); `ArtifactNotFoundError` if absent. The server's downloads
        read large blobs this way. The default reads the whole blob: a store that can read
        part of an object overrides it."""
        return self.get_blob(key)[start:end]

    # -- housekeeping (optional: a store without it raises `ConfigError`) ---------
    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every blob in the store, partial ones (left by a killed writer) included.

        An entry that is not a complete blob (say, a temporary file of a writer that
        died) is listed under its own name as `key`, so that `delete_blob` removes it.
        `modified` must be the time of the last write, or no older than a minute before
        the last `put_blob` / `put_stream` that found the blob already in place (a put
        refreshes it): `kitaru gc` keeps blobs modified within its grace period, which
        protects a blob written (or found) by a run that has not recorded it yet.
        """
        raise self._unsupported("listing blobs (kitaru gc)")

    def delete_blob(self, key: str) -> bool:
        """Remove the blob (or listed leftover) `key`; False if it was not there."""
        raise self._unsupported("deleting blobs (kitaru gc)")

    def delete_files(self, prefix: str) -> None:
        """Remove the named files under `prefix` (task specs and results of a deleted
        execution); a store without it keeps them."""

    def _unsupported(self, what: str) -> ConfigError:
        return ConfigError(
            f"the artifact store of stack {self.context.stack_name!r} ({type(self).__name__}) "
            f"does not support {what}; use a store flavor that does, such as `local`"
        )

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes) -> None:
        """Write a named file (relative path), replacing it atomically."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes | None:
        """A named file's bytes, or None if it does not exist."""

    @abc.abstractmethod
    def url(self, path: str) -> str:
        """An fsspec URL of a named file, readable by a worker elsewhere."""


#: URL schemes whose data only this machine or process can reach.
LOCAL_URL_SCHEMES = frozenset({"", "file", "local", "memory"})


def is_local_url(url: str) -> bool:
    """True for a plain path, a `file://`, `local://` or `memory://` URL (or a chain ending in one)."""
    scheme = url.split("::")[-1].partition("://")[0] if "://" in url else ""
    return scheme.lower() in LOCAL_URL_SCHEMES or len(scheme) == 1  # `C:/...` is a Windows path


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One entry of `ArtifactStore.list_blobs`."""

    key: str
    size: int
    modified: float  # unix time of the last write (or of the last put that found it)


#: Where a component runs or can be reached from, narrowest first (see `Component.locality_of`).
LOCALITIES = ("process", "machine", "network")


@dataclass(frozen=True, slots=True)
class TaskState:
    """What an execution target (or an orchestrator) reports about one task.

    `state` is one of "pending" (accepted, not started: image pull, queue, scheduling),
    "running", "succeeded", "failed" (ended, exit status not 0), "lost" (the target no
    longer knows the task: deleted, evicted without a trace, a process that died while
    nobody watched). The runner never trusts "succeeded" alone: a call is complete when
    its `result.json` is in the store.
    """

    state: str
    message: str = ""

    @property
    def ended(self) -> bool:
        return self.state in ("succeeded", "failed", "lost")


class Resources(BaseModel):
    """What one task asks for; None everywhere means "the target's defaults".

    `memory` and `disk` are sizes as Kubernetes writes them ("512Mi", "4Gi", "1G",
    or a number of bytes); `cpu` is a number of cores (fractions allowed, "500m"
    accepted); `gpu` a count and `accelerator` the target's own name of a GPU type
    ("nvidia-tesla-t4", "ml.g5.xlarge", ...). A target maps these to its own terms
    and refuses, in `ExecutionTarget.check_resources`, what it cannot provide.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: float | None = None
    memory: str | None = None
    gpu: int | None = None
    accelerator: str | None = None
    disk: str | None = None

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        if isinstance(value, str) and value.endswith("m") and value[:-1].isdigit():
            return int(value[:-1]) / 1000
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu_positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("cpu must be a positive number of cores")
        return value

    @field_validator("gpu")
    @classmethod
    def _gpu_count(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("gpu must be a count >= 0")
        return value

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("expected a size such as '4Gi' or a number of bytes")
        text = str(value).strip()
        parse_size(text)
        return text

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)

    def over(self, defaults: Resources | None) -> Resources:
        """These resources, with `defaults` (say, a stack component's) filling the unset fields."""
        if defaults is None:
            return self
        mine = self.model_dump(exclude_none=True)
        return Resources(**{**defaults.model_dump(exclude_none=True), **mine})

    def memory_bytes(self) -> int | None:
        return parse_size(self.memory) if self.memory is not None else None

    def disk_bytes(self) -> int | None:
        return parse_size(self.disk) if self.disk is not None else None


_SIZE_UNITS = {
    "": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}


def parse_size(text: str) -> int:
    """Bytes of a size written as Kubernetes does ("512Mi", "4Gi", "2G", "1000")."""
    raw = str(text).strip()
    number = raw.rstrip("kKMGTi")
    unit = raw[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _SIZE_UNITS or value < 0:
        raise ValueError(f"{raw!r} is not a size; write it like '512Mi', '4Gi' or a number of bytes")
    return int(value * _SIZE_UNITS[unit])


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """Everything an execution target needs to start one attempt of one isolated call.

    The target runs `<python> *argv` in `image` (or its configured image) with `env`
    set, where `<python>` is the target's interpreter (the image's `python`, or the
    `process` target's configured one). `argv` is the worker's command line,
    `["-m", "kitaru_core.worker", "--store-flavor", F, "--store-config", JSON, "--spec", KEY]`
    (see `kitaru_core.runtime.protocol.worker_argv`): the artifact store's flavor and
    config as the stack file wrote them (`${env:NAME}` references unresolved) and
    the store key of the task's spec. Nothing in a request is a runner-local value
    (no `KITARU_HOME`, no local path, no `sys.executable`) and no secret's value:
    `secret_env` names the environment variables whose values the target supplies from
    its own secret mechanism (the runner's environment for a local target, a
    Kubernetes Secret for the `kubernetes` target, ...).
    """

    #: Deterministic, unique per (execution, call, attempt); DNS-1123 label, <= 63 chars
    #: (`kitaru_core.runtime.protocol.task_name`). `submit` is idempotent by this name.
    task_name: str
    #: Store key of the task's spec.json (`tasks/<exec>/<call>/<attempt>/spec.json`).
    spec_key: str
    #: The worker's arguments after the interpreter.
    argv: tuple[str, ...]
    #: Plain variables for the task's environment (no secrets; `KITARU_EXEC_ID`, ...).
    env: dict[str, str]
    #: The call's resources over the target's defaults.
    resources: Resources = field(default_factory=Resources)
    #: Container image for this call (`@checkpoint(image=...)`); None: the target's own.
    image: str | None = None
    #: Seconds the task may run before the target stops it; None: no limit.
    timeout: float | None = None
    #: Target-specific options (`@checkpoint(options={...})`), passed through unchanged.
    options: dict[str, Any] = field(default_factory=dict)
    #: Names of environment variables the target injects from its secret mechanism.
    secret_env: tuple[str, ...] = ()
    #: Labels a target may attach to the task (DNS-1123 values): execution, call, attempt.
    labels: dict[str, str] = field(default_factory=dict)


class ExecutionTarget(Component):
    """Runs one checkpoint call from a task spec somewhere (the hands).

    Protocol (docs/remote-protocol.md): the runner writes the spec and inputs to the
    artifact store, records its intent (the task name and attempt) in the registry,
    then calls `submit`. After a runner crash the resumed runner calls `find(task_name)`
    before submitting anything, and `submit` itself adopts an existing task of the same
    name, so an attempt never runs twice. The runner follows a task with `poll` (or
    `watch`) and one store read of `result.json` per tick, with a backoff from 0.1 s to
    `poll_cap`; `cancel` is called when the execution is cancelled or the call gives up.
    Handles are JSON-able dicts, kept in the registry: every method taking one must work
    for a handle made by another process (a runner that crashed).

    `kitaru_core.testing.ExecutionTargetConformance` is the suite a target must pass.
    """

    type = "execution_target"
    #: True for a target that runs calls in the runner's own process (no task specs).
    in_process: ClassVar[bool] = False
    #: Where tasks run: "process" (the runner's process), "machine" (this machine) or
    #: "network" (anywhere). A stack is refused when its artifact store is narrower.
    locality: ClassVar[str] = "network"
    #: Longest pause, in seconds, between two polls of a running task.
    poll_cap: float = 5.0

    @abc.abstractmethod
    def submit(self, request: TaskRequest) -> dict[str, Any]:
        """Start the task `request` describes; return a JSON-able handle.

        Idempotent by `request.task_name`: when a task of that name exists (running or
        ended), return its handle and start nothing. Raise `ResourceError` (naming the
        field and what the target can do) for resources, an image or options it cannot
        provide, before starting anything; `TaskError` when the backend refuses it.
        """

    @abc.abstractmethod
    def find(self, task_name: str) -> dict[str, Any] | None:
        """The handle of the task named `task_name` if the target still knows it, else None."""

    @abc.abstractmethod
    def poll(self, handle: dict[str, Any]) -> TaskState:
        """The state of a submitted task (one cheap backend request at most)."""

    @abc.abstractmethod
    def cancel(self, handle: dict[str, Any]) -> None:
        """Stop a task if it still runs (and release what it holds); a no-op when it ended."""

    def logs(self, handle: dict[str, Any]) -> str:
        """The task's own output as the target kept it ("" if none)."""
        return ""

    def watch(self, handle: dict[str, Any], timeout: float) -> TaskState | None:
        """Block up to `timeout` seconds until the task's state may have changed.

        A target with a push mechanism (a Kubernetes watch) returns the new state; the
        default returns None, which tells the runner to sleep and `poll` instead.
        """
        return None

    def check_resources(self, request: TaskRequest) -> None:
        """Raise `ResourceError` for resources, image or options this target cannot provide.

        Called by the runner before the first submission of a call, and by `submit`. The
        default refuses any GPU, an image and any option; a target that offers them says
        so by overriding.
        """
        from .errors import ResourceError

        res = request.resources
        label = f"the {type(self).__name__} execution target"
        if res.gpu or res.accelerator:
            raise ResourceError(
                f"{label} cannot provide gpu={res.gpu} accelerator={res.accelerator!r}; "
                "use a target with GPUs (such as kubernetes) or drop the gpu resource"
            )
        if request.image:
            raise ResourceError(
                f"{label} cannot run the image {request.image!r}; drop `image=` or use a "
                "container-based target"
            )
        if request.options:
            raise ResourceError(
                f"{label} takes no options, got {sorted(request.options)}; drop `options=`"
            )


class Orchestrator(Component):
    """Launches (and relaunches after a wait or a crash) the flow body somewhere."""

    type = "orchestrator"
    #: True when `flow.run()` runs the flow body inside the caller's process.
    in_process: ClassVar[bool] = True
    #: Where launched runners run ("process", "machine" or "network", as for
    #: `ExecutionTarget.locality`); a stack is refused when its store or registry is narrower.
    locality: ClassVar[str] = "machine"
    #: An orchestrator that sends a launched runner's output to a file sets this variable
    #: in the runner's environment to that file's path (and returns it as the handle's
    #: `log`): a runner that cannot resume records it, so the user is told where to look.
    RUNNER_LOG_ENV: ClassVar[str] = "KITARU_RUNNER_LOG"

    @abc.abstractmethod
    def launch(
        self, exec_id: str, *, command: list[str], env: dict[str, str], cwd: str | None
    ) -> dict[str, Any]:
        """Start `command` (which resumes `exec_id`) detached; return a JSON-able handle.

        `env` holds the variables the runner needs; `KITARU_RUN_IMAGE`, when present, is
        the run's `image` option (Kitaru's ImageSettings fields, as JSON) for an
        orchestrator that starts the runner in a container image of its choosing.
        For an orchestrator with `locality = "network"` nothing in `command` or `env` is a
        value of the launching machine (`runtime.remote_launch`): `command[0]` is `python`,
        to be run as the image's interpreter, the rest names the entrypoint, the registry's
        and store's flavor and config (`${env:NAME}` unresolved: the orchestrator supplies
        those variables from its secret mechanism) and the flow's code reference; `cwd` is
        None. Otherwise `command[0]` is this machine's interpreter and `cwd` the run's folder.
        """

    def poll(self, handle: dict[str, Any]) -> TaskState:
        """The state of a launched runner: "running" while it runs, an ended state after.

        The runner watchdog (`kitaru executions` reads, resumes) uses it to notice a runner
        that never started or died, and resubmits or fails its execution. This default
        says "running" (the runner's lease alone tells it is gone); orchestrators override.
        """
        return TaskState("running", "this orchestrator cannot tell")

    def cancel(self, handle: dict[str, Any]) -> None:
        """Stop a launched runner if it still runs."""
