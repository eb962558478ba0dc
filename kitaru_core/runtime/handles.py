"""Output handles: what a checkpoint call returns inside a flow."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..interfaces import ArtifactStore
    from ..records import ArtifactRecord

_UNSET: Any = object()


class OutputHandle:
    """The output of one checkpoint call.

    Pass it to another checkpoint (it arrives there as the value, and the
    lineage is recorded) or call `.load()` for the value. A handle from
    `checkpoint.submit()` is also a future: `.result()` waits for it.
    """

    __slots__ = ("_artifact", "_fetch", "_future", "_store", "_value", "call_id", "name")

    def __init__(
        self,
        call_id: str,
        name: str,
        *,
        value: Any = _UNSET,
        artifact: ArtifactRecord | None = None,
        store: ArtifactStore | None = None,
        future: Future[OutputHandle] | None = None,
        fetch: Callable[[], ArtifactRecord] | None = None,
    ) -> None:
        """`fetch`, instead of `artifact`, looks the artifact reference up on first use."""
        self.call_id = call_id
        self.name = name
        self._value = value
        self._artifact = artifact
        self._store = store
        self._future = future
        self._fetch = fetch

    def _resolved(self) -> OutputHandle:
        if self._future is not None:
            done = self._future.result()
            self._value, self._artifact, self._store = done._value, done._artifact, done._store
            self._future = None
        if self._fetch is not None:
            self._artifact, self._fetch = self._fetch(), None
        return self

    def load(self) -> Any:
        """The checkpoint's output value (waits for a submitted call)."""
        self._resolved()
        if self._value is _UNSET:
            from .artifacts import read_value

            assert self._artifact is not None and self._store is not None
            self._value = read_value(self._store, self._artifact)
        return self._value

    def result(self, timeout: float | None = None) -> Any:
        """Wait for a submitted call and return its value."""
        if self._future is not None:
            self._future.result(timeout)
        return self.load()

    def wait(self, timeout: float | None = None) -> OutputHandle:
        """Wait for a submitted call; returns the handle."""
        if self._future is not None:
            self._future.result(timeout)
        return self._resolved()

    def done(self) -> bool:
        return self._future is None or self._future.done()

    @property
    def artifact(self) -> ArtifactRecord | None:
        """The output artifact's reference (None until a submitted call finishes)."""
        return self._resolved()._artifact

    def __str__(self) -> str:
        return str(self.load())

    def __format__(self, spec: str) -> str:
        return format(self.load(), spec)

    def __repr__(self) -> str:
        return f"<OutputHandle {self.call_id}>"


def resolve(value: Any) -> Any:
    """Replace handles inside lists, tuples, sets and dicts by their values."""
    cls = type(value)
    if cls is OutputHandle:
        return value.load()
    if cls in (list, tuple, set, frozenset):
        if not any(type(v) is OutputHandle or type(v) in _CONTAINERS for v in value):
            return value
        return cls(resolve(v) for v in value)
    if cls is dict:
        if not any(type(v) is OutputHandle or type(v) in _CONTAINERS for v in value.values()):
            return value
        return {k: resolve(v) for k, v in value.items()}
    return value


_CONTAINERS = (list, tuple, set, frozenset, dict)
