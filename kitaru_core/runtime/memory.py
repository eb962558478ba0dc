"""Durable, versioned memory: a value per key and scope; every write is a new version.

Scopes, as the registry stores them:

- `flow:<flow name>`: shared by every execution of a flow; the default inside a flow.
- `execution:<exec id>`: one execution's own memory.
- `namespace:<name>`: a named namespace, usable anywhere, also outside flows.

Each value is an artifact (name `memory:<scope>/<key>`); a delete is a version
too, a tombstone without a value, so a key's history is never lost.

Where a memory call is made decides how it is recorded:

- In a flow body, each call is a synthetic checkpoint call (`memory_get:<key>`,
  `memory_set:<key>`, `memory_delete:<key>`, `memory_list`, `memory_history:<key>`;
  type `memory_read` or `memory_write`) whose output is the memory record(s) it read
  or wrote. A resume, or a replay before `at`, returns that output: it sees what the
  original saw and writes nothing again. A write is also idempotent per call in the
  registry, so a crash between the write and the call's record does not write twice.
- Inside a checkpoint, calls go straight to the registry: the checkpoint is the
  boundary (a checkpoint that runs again writes again, like any side effect).
- Outside any flow, calls go straight to the registry of the caller's stack, in a
  scope given by `configure(scope=...)` or `scope=`.

Default scopes: the flow's in a flow body and its checkpoints; `configure(scope=...)`
in a flow body changes it for that execution (it is flow code, so a resume sets it
again). Outside flows `configure` sets this process's default, which never applies
inside a flow: a flow resumed by another process must resolve the same scopes.

A replay is a new execution with an execution scope of its own; at its first live
memory call in that scope it is given the original's execution memory as it was
when the `at` step started (one version per key), so reads after `at` see what
the original had written before it.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ContextError, KitaruError, MemoryNotFoundError
from ..records import MemoryRecord
from .artifacts import link, read_value, write_value
from .specs import CheckpointSpec
from .state import current_call, current_execution

if TYPE_CHECKING:
    from ..interfaces import ArtifactStore, Registry
    from .execution import ExecutionContext

KINDS = ("namespace", "flow", "execution")
#: `exec_id` of the artifacts of values written outside any execution.
OUTSIDE_WRITER = "memory"
READ_TYPE = "memory_read"
WRITE_TYPE = "memory_write"

_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}")
_KEY_MAX = 256
_SCOPE_HELP = "NAME (a namespace), namespace:NAME, flow:FLOW_NAME or execution:EXEC_ID"


class Memory:
    """Memory operations on one registry and artifact store: direct, never recorded."""

    def __init__(self, registry: Registry, store: ArtifactStore) -> None:
        self.registry = registry
        self.store = store

    def write(
        self,
        scope: str,
        key: str,
        value: Any,
        *,
        exec_id: str | None = None,
        call_id: str | None = None,
        artifact_call_id: str | None = None,
    ) -> MemoryRecord:
        """Store `value` as the next version of `key`.

        `exec_id`: the writing execution; `call_id`: the flow-body memory call that
        writes (makes the write idempotent); `artifact_call_id`: the checkpoint call
        the value's artifact belongs to (lineage).
        """
        check_key(key)
        art = write_value(
            self.store, value, exec_id=exec_id or OUTSIDE_WRITER, name=f"memory:{scope}/{key}",
            direction="saved", call_id=artifact_call_id,
            what=f"memory value of key {key!r} in scope {scope!r}",
            inline_limit=self.registry.inline_limit,
        )
        record = MemoryRecord(scope, key, artifact_id=art.artifact_id, exec_id=exec_id,
                              call_id=call_id, created_at=art.created_at)
        return self.registry.put_memory(record, art)

    def delete(
        self, scope: str, key: str, *, exec_id: str | None = None, call_id: str | None = None
    ) -> MemoryRecord | None:
        """Write a tombstone for `key`; None if it holds no value (never set, or deleted)."""
        check_key(key)
        latest = self.registry.get_memory(scope, key)
        if latest is None:
            return None
        if latest.deleted:
            mine = call_id is not None and (latest.exec_id, latest.call_id) == (exec_id, call_id)
            return latest if mine else None  # `mine`: this very call ran before a crash
        tombstone = MemoryRecord(scope, key, deleted=True, exec_id=exec_id, call_id=call_id,
                                 created_at=time.time())
        return self.registry.put_memory(tombstone, None)

    def read(self, scope: str, key: str, version: int | None = None) -> MemoryRecord | None:
        """The latest version of `key` (or `version`), tombstones included; None if none."""
        check_key(key)
        _check_version(version)
        return self.registry.get_memory(scope, key, version)

    def entries(self, scope: str) -> list[MemoryRecord]:
        """The latest version of every key that holds a value, by key."""
        return self.registry.list_memory(scope)

    def versions(self, scope: str, key: str) -> list[MemoryRecord]:
        """Every version of `key`, oldest first, tombstones included."""
        check_key(key)
        return self.registry.memory_history(scope, key)

    def scopes(self) -> list[str]:
        return self.registry.list_memory_scopes()

    def load(self, record: MemoryRecord) -> Any:
        """The value of one version (None for a tombstone)."""
        if record.artifact_id is None:
            return None
        return read_value(self.store, self.registry.get_artifact(record.artifact_id))

    def copy(self, record: MemoryRecord, scope: str, *, exec_id: str, note: dict[str, Any]) -> None:
        """Store the value of `record` as the next version of its key in `scope` (no new blob)."""
        assert record.artifact_id is not None
        source = self.registry.get_artifact(record.artifact_id)
        art = link(source, exec_id=exec_id, name=f"memory:{scope}/{record.key}",
                   direction="saved", call_id=None)
        art.metadata = {**(art.metadata or {}), **note}
        self.registry.put_memory(
            MemoryRecord(scope, record.key, artifact_id=art.artifact_id, exec_id=exec_id,
                         created_at=art.created_at),
            art,
        )


# -- names -------------------------------------------------------------------------------


def parse_scope(text: str) -> str:
    """The stored form of a scope given by name: `NAME` (a namespace), `namespace:NAME`,
    `flow:FLOW_NAME` or `execution:EXEC_ID`.

    The bare words `flow` and `execution` mean the running flow's scopes: they are
    resolved by the memory calls themselves, and are a ContextError here.
    """
    if not isinstance(text, str) or not text:
        raise ConfigError(f"memory scope {text!r}: expected a non-empty string: {_SCOPE_HELP}")
    if text in ("flow", "execution"):
        raise ContextError(
            f"memory scope {text!r} means the running {text}'s own memory, and no flow runs "
            f"here; name one instead ({text}:{'FLOW_NAME' if text == 'flow' else 'EXEC_ID'}) "
            "or use a namespace"
        )
    kind, sep, name = text.partition(":")
    if not sep:
        kind, name = "namespace", text
    if kind not in KINDS:
        raise ConfigError(f"memory scope {text!r}: unknown kind {kind!r}; use {_SCOPE_HELP}")
    if kind == "namespace" and not _NAMESPACE.fullmatch(name):
        raise ConfigError(
            f"memory scope {text!r}: a namespace name is 1-128 letters, digits, '_', '.', '-' "
            "or '/', starting with a letter or digit"
        )
    if not name or name != name.strip() or not name.isprintable():
        raise ConfigError(f"memory scope {text!r}: the {kind} name must be non-empty, printable, "
                          "without leading or trailing spaces")
    if kind == "execution" and any(c.isspace() for c in name):
        raise ConfigError(f"memory scope {text!r}: an execution id has no spaces")
    return f"{kind}:{name}"


def check_key(key: str) -> str:
    """`key` if it is a valid memory key, else a ConfigError saying why."""
    if not isinstance(key, str):
        raise ConfigError(f"memory key {key!r}: expected a string, got {type(key).__name__}")
    if not key or len(key) > _KEY_MAX or not key.isprintable() or any(c.isspace() for c in key) \
            or "#" in key:
        raise ConfigError(
            f"memory key {key!r}: expected 1-{_KEY_MAX} printable characters without spaces or "
            "'#' (e.g. 'user_prefs' or 'users/42/prefs')"
        )
    return key


def _check_version(version: int | None) -> None:
    if version is not None and (type(version) is not int or not 1 <= version < 2**63):
        raise ConfigError(f"memory version {version!r}: expected an int >= 1 (and below 2**63)")


def flow_scope(ctx: ExecutionContext) -> str:
    return f"flow:{ctx.record.flow_name}"


def execution_scope(ctx: ExecutionContext) -> str:
    return f"execution:{ctx.exec_id}"


# -- default scopes ------------------------------------------------------------------------

_process_scope: str | None = None
# Per execution (flow body and its checkpoints); weak, so a finished execution's entry goes.
_execution_scopes: weakref.WeakKeyDictionary[ExecutionContext, str] = weakref.WeakKeyDictionary()


def configure(scope: str | None) -> None:
    """Set the default scope: for this execution in a flow body, for this process outside.

    In a flow body `"flow"` and `"execution"` name the running flow's scopes; any
    other name is a namespace (or a typed `kind:name`). None restores the default.
    """
    if current_call.get() is not None:
        raise ContextError(
            "kitaru.memory.configure(...) is not allowed inside a checkpoint; call it in the flow "
            "body (it then applies to the whole execution), or pass scope= to each memory call"
        )
    ctx = current_execution.get()
    if ctx is not None:
        if scope is None:
            _execution_scopes.pop(ctx, None)
        else:
            _execution_scopes[ctx] = _resolve(scope, ctx, "kitaru.memory.configure(...)")
        return
    global _process_scope
    _process_scope = None if scope is None else parse_scope(scope)


def current_scope() -> str | None:
    """The scope a memory call here would use by default (None: outside flows, none set)."""
    ctx = _execution_here()
    if ctx is not None:
        return _execution_scopes.get(ctx) or flow_scope(ctx)
    return _process_scope


def default_scope_outside(what: str) -> str:
    """The process default scope; a ContextError saying how to set one if there is none."""
    if _process_scope is None:
        raise ContextError(
            f"{what} was called outside a flow without a memory scope; call "
            "kitaru.memory.configure(scope='name') first, or pass scope='name'"
        )
    return _process_scope


def _execution_here() -> ExecutionContext | None:
    call = current_call.get()
    if call is not None:
        return getattr(call, "execution", None)
    return current_execution.get()


def _resolve(scope: str | None, ctx: ExecutionContext | None, what: str) -> str:
    if scope is None:
        if ctx is not None:
            return _execution_scopes.get(ctx) or flow_scope(ctx)
        return default_scope_outside(what)
    if ctx is not None and scope == "flow":
        return flow_scope(ctx)
    if ctx is not None and scope == "execution":
        return execution_scope(ctx)
    return parse_scope(scope)


def full_scope(memory: Memory, scope: str, ctx: ExecutionContext | None = None) -> str:
    """`scope` with an execution id prefix made the full id (ExecutionNotFoundError if unknown)."""
    if not scope.startswith("execution:") or (ctx is not None and scope == execution_scope(ctx)):
        return scope
    return "execution:" + memory.registry.get_execution(scope.partition(":")[2]).exec_id


# -- operations, recorded where they run --------------------------------------------------

Outside = Callable[[], Memory]


def set_value(
    key: str, value: Any, *, scope: str | None, outside: Outside
) -> tuple[Memory, MemoryRecord]:
    """Write `value` as the next version of `key`; returns the stored record."""
    check_key(key)
    place = _place(scope, outside, f"kitaru.memory.set({key!r}, ...)")

    def body(call_id: str | None, lineage: str | None) -> Any:
        return _dump(place.memory.write(place.scope, key, value, exec_id=place.exec_id,
                                        call_id=call_id, artifact_call_id=lineage))

    name = f"memory_set:{key}"
    record = _load(_run(place, name, WRITE_TYPE, body), name)
    if record is None:
        raise _not_a_record(name)
    return place.memory, record


def get_value(
    key: str, version: int | None, *, scope: str | None, outside: Outside, default: Any = None
) -> Any:
    """The value of `key` (latest, or `version`); `default` if never set or deleted.

    A `version` that does not exist is a MemoryNotFoundError. In a replay, an
    override of the read (`checkpoint_overrides={"memory_get:KEY": {"output": value}}`)
    is the value read.
    """
    check_key(key)
    _check_version(version)
    place = _place(scope, outside, f"kitaru.memory.get({key!r})")

    def body(call_id: str | None, lineage: str | None) -> Any:
        return _dump(place.memory.read(place.scope, key, version))

    name = f"memory_get:{key}" if version is None else f"memory_get:{key}@{version}"
    out = _run(place, name, READ_TYPE, body)
    if out is not None and not _is_record(out):
        return out  # a replay's override of this read: the value itself
    record = _load(out, name)
    if record is None and version is not None:
        raise MemoryNotFoundError(
            f"memory key {key!r} in scope {place.scope!r} has no version {version}; see its "
            f"versions with kitaru.memory.history({key!r}) or "
            f"`kitaru memory history {key} --scope {place.scope}`"
        )
    return default if record is None or record.deleted else place.memory.load(record)


def list_records(*, scope: str | None, outside: Outside) -> tuple[Memory, list[MemoryRecord]]:
    """The latest version of every key that holds a value."""
    place = _place(scope, outside, "kitaru.memory.list()")

    def body(call_id: str | None, lineage: str | None) -> Any:
        return [_dump(r) for r in place.memory.entries(place.scope)]

    return place.memory, _load_all(_run(place, "memory_list", READ_TYPE, body), "memory_list")


def history_records(
    key: str, *, scope: str | None, outside: Outside
) -> tuple[Memory, list[MemoryRecord]]:
    """Every version of `key`, oldest first, tombstones included."""
    check_key(key)
    place = _place(scope, outside, f"kitaru.memory.history({key!r})")

    def body(call_id: str | None, lineage: str | None) -> Any:
        return [_dump(r) for r in place.memory.versions(place.scope, key)]

    name = f"memory_history:{key}"
    return place.memory, _load_all(_run(place, name, READ_TYPE, body), name)


def delete_key(key: str, *, scope: str | None, outside: Outside) -> tuple[Memory, MemoryRecord]:
    """Write a tombstone for `key`; MemoryNotFoundError if it holds no value."""
    check_key(key)
    place = _place(scope, outside, f"kitaru.memory.delete({key!r})")

    def body(call_id: str | None, lineage: str | None) -> Any:
        return _dump(place.memory.delete(place.scope, key, exec_id=place.exec_id, call_id=call_id))

    name = f"memory_delete:{key}"
    record = _load(_run(place, name, WRITE_TYPE, body), name)
    if record is None:
        raise MemoryNotFoundError(
            f"memory key {key!r} in scope {place.scope!r} holds no value to delete (never set, "
            "or deleted already)"
        )
    return place.memory, record


@dataclasses.dataclass(slots=True)
class _Place:
    """Where a memory call runs: its registry, resolved scope and execution."""

    memory: Memory
    scope: str
    ctx: ExecutionContext | None  # the execution (flow body or checkpoint), None outside
    lineage: str | None  # the checkpoint call running here, for the value's artifact
    in_body: bool  # a flow body: the call is recorded as a synthetic checkpoint call

    @property
    def exec_id(self) -> str | None:
        return None if self.ctx is None else self.ctx.exec_id


def _place(scope: str | None, outside: Outside, what: str) -> _Place:
    call = current_call.get()
    if call is not None:
        ctx = getattr(call, "execution", None)
        if ctx is None:
            raise ContextError(
                f"{what} is not available inside an isolated checkpoint (its worker has no "
                "registry); use memory in the flow body or an inline checkpoint and pass values "
                "in and out"
            )
        memory = Memory(ctx.registry, ctx.store)
        return _Place(memory, full_scope(memory, _resolve(scope, ctx, what), ctx), ctx,
                      call.call.call_id, False)
    ctx = current_execution.get()
    if ctx is not None:
        memory = Memory(ctx.registry, ctx.store)
        return _Place(memory, full_scope(memory, _resolve(scope, ctx, what), ctx), ctx, None, True)
    resolved = _resolve(scope, None, what)  # before building a stack: a missing scope is first
    memory = outside()
    return _Place(memory, full_scope(memory, resolved), None, None, False)


def _run(place: _Place, name: str, type_: str, body: Callable[[str | None, str | None], Any]) -> Any:
    """`body(call_id, lineage)`, as a synthetic checkpoint call in a flow body, else directly."""
    if not place.in_body:
        _carry_over_replay(place)
        return body(None, place.lineage)
    assert place.ctx is not None

    def synthetic() -> Any:  # no arguments: the call records no input artifacts
        call_id = current_call.get().call.call_id
        _carry_over_replay(place)
        return body(call_id, call_id)

    # cache=False: a memory call reads live state, so a run's `cache=True` must not reuse it.
    spec = CheckpointSpec(fn=synthetic, name=name, type=type_, cache=False)
    return place.ctx.call(spec, (), {}).load()


def _dump(record: MemoryRecord | None) -> dict[str, Any] | None:
    return None if record is None else dataclasses.asdict(record)


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(MemoryRecord))


def _is_record(data: Any) -> bool:
    return type(data) is dict and data.keys() == _RECORD_FIELDS


def _load(data: Any, name: str) -> MemoryRecord | None:
    if data is None:
        return None
    if not _is_record(data):
        raise _not_a_record(name)
    return MemoryRecord(**data)


def _load_all(data: Any, name: str) -> list[MemoryRecord]:
    if type(data) is not list or not all(_is_record(d) for d in data):
        raise _not_a_record(name)
    return [MemoryRecord(**d) for d in data]


def _not_a_record(name: str) -> KitaruError:
    return KitaruError(
        f"the recorded output of memory call {name!r} is not a memory record (a replay "
        "override?); of the memory calls only reads (memory_get:KEY) can be overridden, with "
        "the value to read"
    )


# -- replays: the original's execution memory as of `at` ----------------------------------

_carried: set[str] = set()  # replays whose execution memory was carried over here
_carry_lock = threading.Lock()


def _carry_over_replay(place: _Place) -> None:
    ctx = place.ctx
    if ctx is None or ctx.replay is None or ctx.exec_id in _carried:
        return
    if place.scope != execution_scope(ctx):
        return
    with _carry_lock:
        if ctx.exec_id in _carried:
            return
        registry = place.memory.registry
        if not registry.list_memory(place.scope, include_deleted=True):  # not done by an earlier run
            plan = ctx.replay
            cutoff = _replay_cutoff(plan)
            source = f"execution:{plan.source}"
            for latest in registry.list_memory(source, include_deleted=True):
                before = [r for r in registry.memory_history(source, latest.key)
                          if r.created_at < cutoff]
                if before and not before[-1].deleted:
                    place.memory.copy(before[-1], place.scope, exec_id=ctx.exec_id,
                                      note={"replayed_from": plan.source})
        _carried.add(ctx.exec_id)


def _replay_cutoff(plan: Any) -> float:
    """When the original started its `at` step: memory written before it is carried over."""
    call = plan.calls.get(plan.at_seq)
    if call is not None and call.started_at is not None:
        return float(call.started_at)
    wait = plan.waits.get(plan.at_seq)
    if wait is not None and wait.created_at:
        return float(wait.created_at)
    return float("inf")
