"""`@checkpoint`: a function whose output kitaru records inside a flow."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, overload

from kitaru_core.errors import ConfigError, ContextError
from kitaru_core.interfaces import Resources
from kitaru_core.runtime.handles import OutputHandle
from kitaru_core.runtime.specs import RUNTIMES, CheckpointSpec
from kitaru_core.runtime.state import current_call, current_execution

#: The name of the checkpoint running as a plain function (called outside any flow, e.g. in a
#: unit test); `kitaru.log` and `kitaru.save` are no-ops there instead of errors.
plain_checkpoint: ContextVar[str | None] = ContextVar("kitaru_plain_checkpoint", default=None)


class Checkpoint:
    """A checkpoint function. Inside a flow a call returns an `OutputHandle`;
    outside any flow it is a plain function call."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        retries: int | None = None,
        retry_delay: float = 1.0,
        backoff: float = 2.0,
        type: str | None = None,
        runtime: str = "inline",
        cache: bool | None = None,
        resources: Resources | dict[str, Any] | None = None,
        image: str | None = None,
        timeout: float | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(
                f"@checkpoint(runtime={runtime!r}) on {fn.__qualname__}: expected one of "
                f"{', '.join(RUNTIMES)}"
            )
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise ConfigError(f"@checkpoint(retries={retries!r}) on {fn.__qualname__}: expected an int >= 0")
        if cache is not None and not isinstance(cache, bool):
            raise ConfigError(f"@checkpoint(cache={cache!r}) on {fn.__qualname__}: expected True or False")
        where = f"@checkpoint on {fn.__qualname__}"
        res = _resources(resources, where)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or timeout <= 0):
            raise ConfigError(f"{where}: timeout={timeout!r}, expected a number of seconds > 0")
        if image is not None and (not isinstance(image, str) or not image.strip()):
            raise ConfigError(
                f"{where}: image={image!r}, expected an image reference such as 'acme/agent:1.2'"
            )
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"{where}: options={options!r}, expected a dict of target options")
        if runtime != "isolated" and (not res.is_empty() or image or timeout or options):
            raise ConfigError(
                f"{where}: resources, image, timeout and options apply to runtime='isolated' only; "
                "add runtime='isolated' or drop them"
            )
        functools.update_wrapper(self, fn)
        self._fn = fn
        self.__kitaru_checkpoint__ = CheckpointSpec(
            fn=fn, name=name or fn.__name__, retries=retries or 0, retry_delay=retry_delay,
            backoff=backoff, type=type, runtime=runtime, cache=cache,
            resources=res, image=image, timeout=float(timeout) if timeout else None,
            options=dict(options or {}),
        )

    @property
    def name(self) -> str:
        return self.__kitaru_checkpoint__.name

    def _spec(self) -> CheckpointSpec:
        # The run's `cache` option (`@flow`/`.run`/`configure`) is applied by the runner.
        return self.__kitaru_checkpoint__

    def _context(self) -> Any:
        call = current_call.get()
        if call is not None:
            inner = getattr(getattr(call, "call", None), "call_id", None) or "a checkpoint"
            raise ContextError(
                f"checkpoint {self.name!r} was called inside checkpoint {inner!r}; checkpoints "
                "do not nest. Call it from the flow body, or call the plain function "
                f"({self.name}.__wrapped__) inside the checkpoint"
            )
        return current_execution.get()

    def _plain(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The function itself, outside any flow: nothing is recorded."""
        token = plain_checkpoint.set(self.name)
        try:
            return self._fn(*args, **kwargs)
        finally:
            plain_checkpoint.reset(token)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        ctx = self._context()
        if ctx is None:
            return self._plain(args, kwargs)
        return ctx.call(self._spec(), args, kwargs)

    def with_id(self, call_id: str) -> Callable[..., Any]:
        """This checkpoint with an explicit call id instead of `name#n`."""

        def call(*args: Any, **kwargs: Any) -> Any:
            ctx = self._context()
            if ctx is None:
                return self._plain(args, kwargs)
            return ctx.call(self._spec(), args, kwargs, call_id=call_id)

        return call

    def submit(self, *args: Any, **kwargs: Any) -> OutputHandle:
        """Start the call concurrently; the handle's `.result()` / `.load()` wait for it."""
        ctx = self._context()
        if ctx is None:
            return OutputHandle(self.name, self.name, value=self._plain(args, kwargs))
        return ctx.call(self._spec(), args, kwargs, concurrent=True)

    def map(self, *iterables: Iterable[Any]) -> list[OutputHandle]:
        """Submit one call per item (several iterables are zipped, like `map`)."""
        return [self.submit(*items) for items in zip(*iterables, strict=False)]

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def __repr__(self) -> str:
        return f"<checkpoint {self.name}>"


@overload
def checkpoint(fn: Callable[..., Any], /) -> Checkpoint: ...
@overload
def checkpoint(
    *,
    name: str | None = None,
    retries: int | None = None,
    retry_delay: float = 1.0,
    backoff: float = 2.0,
    type: str | None = None,
    runtime: str = "inline",
    cache: bool | None = None,
    resources: Resources | dict[str, Any] | None = None,
    image: str | None = None,
    timeout: float | None = None,
    options: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Checkpoint]: ...


def checkpoint(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a checkpoint: `@checkpoint` or `@checkpoint(retries=2, ...)`.

    Options: `retries` (with `retry_delay` seconds, growing by `backoff`), `type`
    (a label such as "llm_call"), `runtime` ("inline" or "isolated": the stack's
    execution target), `cache` (reuse a completed call with the same source and
    inputs from any execution; off by default; a run's `cache=False` turns it off,
    a run's `cache=True` turns it on where the checkpoint does not say `cache=False`).
    With `runtime="isolated"`: `resources` (cpu, memory, gpu, accelerator, disk; see
    `kitaru_core.interfaces.Resources`), `image`, `timeout` (seconds) and target
    `options`; the target refuses what it cannot provide when the call is submitted.
    """
    if fn is not None:
        return Checkpoint(fn, **options)
    return lambda f: Checkpoint(f, **options)


def _resources(value: Resources | dict[str, Any] | None, where: str) -> Resources:
    if value is None:
        return Resources()
    if isinstance(value, Resources):
        return value
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: resources={value!r}, expected a dict such as {{'cpu': 2, 'memory': '4Gi'}}"
        )
    from pydantic import ValidationError

    try:
        return Resources(**value)
    except ValidationError as exc:
        err = exc.errors()[0]
        field_name = ".".join(str(p) for p in err["loc"]) or "resources"
        raise ConfigError(
            f"{where}: resources.{field_name}: {err['msg']} (fields: cpu, memory, gpu, accelerator, disk)"
        ) from None
