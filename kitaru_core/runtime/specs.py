"""What the decorators tell the runner about a flow or a checkpoint."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..interfaces import Resources

RUNTIMES = ("inline", "isolated")


@dataclass
class FlowSpec:
    """A flow function and the options of a run of it.

    `retries` re-runs the whole body after a failure (completed calls are reused);
    `cache` is the run's cache setting for its checkpoints (None: each checkpoint's
    own; False: none is cached; True: every checkpoint that does not say
    `cache=False` itself); `image` is recorded for remote runners. The options a run
    resolved are frozen into its execution (see `service.create_execution`).
    """

    fn: Callable[..., Any]
    name: str
    retries: int = 0
    stack: str | None = None
    cache: bool | None = None
    image: dict[str, Any] | None = None

    def options(self) -> dict[str, Any]:
        """The run options that differ from the defaults (what an execution records)."""
        out: dict[str, Any] = {}
        if self.retries:
            out["retries"] = self.retries
        if self.cache is not None:
            out["cache"] = self.cache
        if self.image:
            out["image"] = dict(self.image)
        return out

    def with_options(self, options: dict[str, Any]) -> FlowSpec:
        """This flow with the run options an execution recorded (absent ones: defaults)."""
        return replace(self, retries=int(options.get("retries") or 0),
                       cache=options.get("cache"), image=options.get("image") or None)


@dataclass
class CheckpointSpec:
    """A checkpoint function and its options, as `@checkpoint` declares them."""

    fn: Callable[..., Any]
    name: str
    retries: int = 0
    retry_delay: float = 1.0
    backoff: float = 2.0
    type: str | None = None
    runtime: str = "inline"
    cache: bool | None = None  # None: not set (off, unless the run's `cache` is True)
    #: For runtime="isolated": what the task asks of the execution target (over the
    #: target config's `resources`), its container image, a time limit in seconds and
    #: target-specific options (see `interfaces.TaskRequest`).
    resources: Resources = field(default_factory=Resources)
    image: str | None = None
    timeout: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    _source_hash: str | None = field(default=None, repr=False)
    _signature: inspect.Signature | None = field(default=None, repr=False)
    _positional: tuple[tuple[str, ...], int] | None = field(default=None, repr=False)

    @property
    def source_hash(self) -> str:
        """sha256 of the function's source (its code object's bytes if no source)."""
        if self._source_hash is None:
            try:
                text = inspect.getsource(self.fn).encode()
            except (OSError, TypeError):
                code = getattr(self.fn, "__code__", None)
                text = code.co_code if code is not None else repr(self.fn).encode()
            self._source_hash = hashlib.sha256(text).hexdigest()
        return self._source_hash

    @property
    def signature(self) -> inspect.Signature:
        if self._signature is None:
            self._signature = inspect.signature(self.fn)
        return self._signature

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map call arguments to parameter names (for input artifacts and cache keys).

        Same result as `Signature.bind(...).arguments`; positional-only calls
        take a fast path (this runs on every checkpoint call).
        """
        if not kwargs:
            names, required = self._positional or self._positional_params()
            if required <= len(args) <= len(names):
                return dict(zip(names, args, strict=False))
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return {f"arg{i}": a for i, a in enumerate(args)} | dict(kwargs)
        return dict(bound.arguments)

    def _positional_params(self) -> tuple[tuple[str, ...], int]:
        """(names that take positional arguments, how many of them are required).

        ((), 1) when a required keyword-only parameter makes every positional-only
        call fail to bind, so `bind` always takes its general path.
        """
        names: list[str] = []
        required = 0
        for param in self.signature.parameters.values():
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                names.append(param.name)
                required += param.default is param.empty
            elif param.kind == param.KEYWORD_ONLY and param.default is param.empty:
                names, required = [], 1
                break
        self._positional = (tuple(names), required)
        return self._positional


def flow_spec_of(obj: Any) -> FlowSpec | None:
    """The FlowSpec behind a decorated object (or None)."""
    return getattr(obj, "__kitaru_flow__", None)


def checkpoint_spec_of(obj: Any) -> CheckpointSpec | None:
    """The CheckpointSpec behind a decorated object (or None)."""
    return getattr(obj, "__kitaru_checkpoint__", None)
