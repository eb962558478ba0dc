"""`kitaru.memory`: durable, versioned key-value memory, in scopes.

    import kitaru

    @kitaru.flow
    def assistant(question: str) -> str:
        prefs = kitaru.memory.get("prefs", default={})   # recorded: a replay sees this value
        ...
        kitaru.memory.set("prefs", {**prefs, "tone": "short"})  # a new version
        return answer

    kitaru.memory.configure(scope="team")     # outside flows: a namespace
    kitaru.memory.set("style_guide", "...")
    kitaru.memory.history("style_guide")      # every version, deletes included

Scopes: `"flow"` (the flow's memory, shared by its executions; the default in a
flow), `"execution"` (one execution's own), and named namespaces (any other name,
usable outside flows too). Typed forms name any scope from anywhere:
`namespace:NAME`, `flow:FLOW_NAME`, `execution:EXEC_ID`.

Each function takes `scope=` for one call; `configure(scope=...)` sets the default:
in a flow body for that execution, outside flows for this process (it never applies
inside flows). In a flow body every memory call is recorded (a synthetic checkpoint
call), so a resume or a replay sees what the original saw and writes nothing twice;
inside a checkpoint memory calls go straight to the registry. The same memory from
the command line: `kitaru memory get/set/list/history/delete --scope ...`, and from
Python: `KitaruClient().memory`.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import MemoryNotFoundError
from kitaru_core.runtime import memory as _core

if TYPE_CHECKING:
    from kitaru_core.records import MemoryRecord

    from .client import KitaruClient

__all__ = [
    "MemoryAPI",
    "MemoryEntry",
    "configure",
    "current_scope",
    "delete",
    "get",
    "history",
    "list",
    "set",
]


def configure(scope: str | None) -> None:
    """Set the default memory scope.

    In a flow body: for this execution (`"flow"`, `"execution"`, or a namespace name).
    Outside flows: for this process (a namespace name, or `flow:NAME` / `execution:ID`).
    None restores the default (the flow's scope in a flow; none outside).
    """
    _core.configure(scope)


def current_scope() -> str | None:
    """The scope memory calls here use by default, e.g. `flow:assistant` (None: none set)."""
    return _core.current_scope()


def set(key: str, value: Any, *, scope: str | None = None) -> MemoryEntry:
    """Store `value` as the next version of `key`; returns that version's entry."""
    memory, record = _core.set_value(key, value, scope=scope, outside=_outside)
    return MemoryEntry.of(record, memory)


def get(key: str, version: int | None = None, *, scope: str | None = None,
        default: Any = None) -> Any:
    """The value of `key` (the latest version, or `version`).

    A key never set, or deleted, gives `default`; a `version` that does not exist
    raises `MemoryNotFoundError` (a deleted version gives `default`). In a flow body
    the read is recorded; a replay can override it:
    `checkpoint_overrides={"memory_get:KEY": {"output": value}}`.
    """
    return _core.get_value(key, version, scope=scope, outside=_outside, default=default)


def list(*, scope: str | None = None) -> builtins.list[MemoryEntry]:
    """The latest version of every key that holds a value, by key."""
    memory, records = _core.list_records(scope=scope, outside=_outside)
    return [MemoryEntry.of(r, memory) for r in records]


def history(key: str, *, scope: str | None = None) -> builtins.list[MemoryEntry]:
    """Every version of `key`, oldest first, deletes (tombstones) included; [] if none."""
    memory, records = _core.history_records(key, scope=scope, outside=_outside)
    return [MemoryEntry.of(r, memory) for r in records]


def delete(key: str, *, scope: str | None = None) -> MemoryEntry:
    """Delete `key`: a tombstone version, the history stays. `MemoryNotFoundError` if it
    holds no value."""
    memory, record = _core.delete_key(key, scope=scope, outside=_outside)
    return MemoryEntry.of(record, memory)


@dataclass
class MemoryEntry:
    """One version of a memory key; `.load()` reads its value (None for a delete)."""

    scope: str
    key: str
    version: int
    deleted: bool
    created_at: datetime | None
    exec_id: str | None  # the execution that wrote it; None if written outside flows
    artifact_id: str | None  # the value's artifact; None for a delete
    _memory: _core.Memory | None = field(default=None, repr=False, compare=False)
    _record: MemoryRecord | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, record: MemoryRecord, memory: _core.Memory) -> MemoryEntry:
        created = datetime.fromtimestamp(record.created_at, UTC) if record.created_at else None
        return cls(record.scope, record.key, record.version, record.deleted, created,
                   record.exec_id, record.artifact_id, memory, record)

    def load(self) -> Any:
        """This version's value (None for a delete)."""
        assert self._memory is not None and self._record is not None
        return self._memory.load(self._record)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (what `-o json` prints), without the value."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["created_at"] = self.created_at.isoformat() if self.created_at else None
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


class MemoryAPI:
    """`KitaruClient().memory`: read and write memory scopes of the client's stack.

    Calls go straight to the registry (never recorded, also inside a flow). `scope`
    is a namespace name or `namespace:NAME`, `flow:FLOW_NAME`, `execution:EXEC_ID` (an
    id prefix is fine); without it the process default from `kitaru.memory.configure`.
    """

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def get(self, key: str, *, scope: str | None = None, version: int | None = None,
            default: Any = None) -> Any:
        """The value of `key` (latest, or `version`); `default` if never set or deleted."""
        entry = self.entry(key, scope=scope, version=version)
        return default if entry is None or entry.deleted else entry.load()

    def entry(self, key: str, *, scope: str | None = None,
              version: int | None = None) -> MemoryEntry | None:
        """The latest version of `key` (or `version`) as an entry, deletes included; None if
        the key was never set. A `version` that does not exist raises MemoryNotFoundError."""
        memory, name = self._memory(scope, "entry")
        record = memory.read(name, key, version)
        if record is None and version is not None:
            raise MemoryNotFoundError(
                f"memory key {key!r} in scope {name!r} has no version {version}; list its "
                f"versions with `kitaru memory history {key} --scope {name}`"
            )
        return None if record is None else MemoryEntry.of(record, memory)

    def set(self, key: str, value: Any, *, scope: str | None = None) -> MemoryEntry:
        """Store `value` as the next version of `key`."""
        memory, name = self._memory(scope, "set")
        return MemoryEntry.of(memory.write(name, key, value), memory)

    def list(self, *, scope: str | None = None) -> builtins.list[MemoryEntry]:
        """The latest version of every key that holds a value, by key."""
        memory, name = self._memory(scope, "list")
        return [MemoryEntry.of(r, memory) for r in memory.entries(name)]

    def history(self, key: str, *, scope: str | None = None) -> builtins.list[MemoryEntry]:
        """Every version of `key`, oldest first, deletes included."""
        memory, name = self._memory(scope, "history")
        return [MemoryEntry.of(r, memory) for r in memory.versions(name, key)]

    def delete(self, key: str, *, scope: str | None = None) -> MemoryEntry:
        """Delete `key` (a tombstone version); MemoryNotFoundError if it holds no value."""
        memory, name = self._memory(scope, "delete")
        record = memory.delete(name, key)
        if record is None:
            raise MemoryNotFoundError(
                f"memory key {key!r} in scope {name!r} holds no value to delete (never set, or "
                "deleted already)"
            )
        return MemoryEntry.of(record, memory)

    def scopes(self) -> builtins.list[str]:
        """Every scope that holds at least one version."""
        stack = self._client._stack
        return _core.Memory(stack.registry, stack.artifact_store).scopes()

    def resolve_scope(self, scope: str | None) -> str:
        """The stored form of `scope` (e.g. `team` -> `namespace:team`, an id prefix made whole)."""
        return self._memory(scope, "resolve_scope")[1]

    def _memory(self, scope: str | None, method: str) -> tuple[_core.Memory, str]:
        name = (_core.parse_scope(scope) if scope is not None
                else _core.default_scope_outside(f"KitaruClient().memory.{method}(...)"))
        stack = self._client._stack
        memory = _core.Memory(stack.registry, stack.artifact_store)
        return memory, _core.full_scope(memory, name)


def _outside() -> _core.Memory:
    """Memory on the caller's stack (outside flows): the active one or `kitaru.configure`'s."""
    from kitaru_core.stack import get_stack, resolve_stack_name

    from . import settings

    stack = get_stack(resolve_stack_name(None, settings.current().stack))
    return _core.Memory(stack.registry, stack.artifact_store)

