"""`@flow`: a durable function; `.run()` starts an execution and returns a `FlowHandle`."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, overload

from kitaru_core.errors import (
    ConfigError,
    ContextError,
    ExecutionCancelledError,
    FlowFailedError,
    KitaruError,
    WaitTimeoutError,
)
from kitaru_core.runtime import loader, service
from kitaru_core.runtime.artifacts import read_value
from kitaru_core.runtime.specs import FlowSpec
from kitaru_core.runtime.state import current_call, current_execution
from kitaru_core.stack import Stack, get_stack, resolve_stack_name
from kitaru_core.status import ExecutionStatus

from . import settings as _settings

_POLL_SECONDS = 0.2


class FlowHandle:
    """A started execution: its id, live status, and its result once it ends."""

    def __init__(self, exec_id: str, stack: Stack, run: service.InProcessRun | None = None) -> None:
        self.exec_id = exec_id
        self._stack = stack
        self._run = run

    @property
    def status(self) -> ExecutionStatus:
        """The execution's status as recorded now."""
        return ExecutionStatus(self._stack.registry.get_execution(self.exec_id).status)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the execution ends; return its result or raise a typed error.

        `FlowFailedError` (the cause chained) if it failed, `ExecutionCancelledError`
        if cancelled, `WaitTimeoutError` if `timeout` seconds pass first. A
        waiting execution keeps this blocked until someone answers its wait.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self._run
        if run is not None:
            if not run.join(timeout):
                raise WaitTimeoutError(
                    f"execution {self.exec_id} still running after {timeout}s; call wait() again"
                )
            if run.error is not None:
                self._raise_failed(run.error)
            if not run.suspended:
                return run.result
        while True:
            record = self._stack.registry.get_execution(self.exec_id)
            if record.status == ExecutionStatus.COMPLETED.value:
                if record.result_artifact is None:
                    return None
                art = self._stack.registry.get_artifact(record.result_artifact)
                return read_value(self._stack.artifact_store, art)
            if record.status == ExecutionStatus.FAILED.value:
                self._raise_failed(None, record.failure)
            if record.status == ExecutionStatus.CANCELLED.value:
                raise ExecutionCancelledError(f"execution {self.exec_id} was cancelled")
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"execution {self.exec_id} is still {record.status} after {timeout}s"
                    + (" (waiting for input: answer it with `kitaru executions input`)"
                       if record.status == ExecutionStatus.WAITING.value else "")
                )
            time.sleep(_POLL_SECONDS)

    def get(self, timeout: float | None = None) -> Any:
        """Same as `wait()`."""
        return self.wait(timeout)

    def _raise_failed(self, cause: BaseException | None, failure: dict | None = None) -> None:
        if isinstance(cause, ExecutionCancelledError):
            raise cause
        record = self._stack.registry.get_execution(self.exec_id)
        if record.status == ExecutionStatus.CANCELLED.value:
            raise ExecutionCancelledError(f"execution {self.exec_id} was cancelled") from cause
        failure = failure or record.failure or {}
        where = f" in checkpoint {failure['call_id']!r}" if failure.get("call_id") else ""
        message = failure.get("message") or (str(cause) if cause else "")
        kind = (failure.get("type") or type(cause).__name__ or "").rsplit(".", 1)[-1]
        raise FlowFailedError(
            f"execution {self.exec_id} failed{where}: {kind}: {message}. Fix the cause and "
            f"continue it with `kitaru executions retry {self.exec_id}`",
            exec_id=self.exec_id, failure=failure,
        ) from cause

    def __repr__(self) -> str:
        return f"<FlowHandle {self.exec_id}>"


class Flow:
    """A flow function. `.run(...)` executes it durably on a stack."""

    def __init__(
        self, fn: Callable[..., Any], *, name: str | None = None, stack: str | None = None,
        retries: int = 0,
    ) -> None:
        if not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"@flow(retries={retries!r}) on {fn.__qualname__}: expected an int >= 0")
        functools.update_wrapper(self, fn)
        self.__kitaru_flow__ = FlowSpec(fn=fn, name=name or fn.__name__, retries=retries, stack=stack)

    @property
    def name(self) -> str:
        return self.__kitaru_flow__.name

    def _stack(self, stack: str | None) -> Stack:
        spec = self.__kitaru_flow__
        return get_stack(resolve_stack_name(stack, spec.stack, _settings.current().stack))

    def _check_can_start(self) -> None:
        if current_call.get() is not None or current_execution.get() is not None:
            raise ContextError(
                f"flow {self.name!r} was started inside another flow or checkpoint; flows do "
                "not nest: call its checkpoints from the outer flow instead"
            )
        if loader.is_importing():
            raise KitaruError(
                f"flow {self.name!r} was started while kitaru imported its module to resume an "
                "execution; guard the script's run call with `if __name__ == \"__main__\":`"
            )

    def run(self, *args: Any, stack: str | None = None, **kwargs: Any) -> FlowHandle:
        """Start an execution; returns at once with a handle (`.wait()` for the result)."""
        self._check_can_start()
        built = self._stack(stack)
        record, run = service.start_run(self.__kitaru_flow__, built, args, kwargs)
        return FlowHandle(record.exec_id, built, run)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow durably and return its result (`run(...).wait()`)."""
        return self.run(*args, **kwargs).wait()

    def replay(
        self,
        exec_id: str,
        *,
        at: str,
        checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
        flow_overrides: dict[str, Any] | None = None,
        stack: str | None = None,
    ) -> FlowHandle:
        """A new execution linked to `exec_id`: calls before `at` reuse its outputs,
        `at` and later run live with this code."""
        self._check_can_start()
        built = self._stack(stack)
        record, run = service.replay(
            built, exec_id, at=at, flow=self.__kitaru_flow__,
            checkpoint_overrides=checkpoint_overrides, flow_overrides=flow_overrides,
        )
        return FlowHandle(record.exec_id, built, run)

    def __repr__(self) -> str:
        return f"<flow {self.name}>"


@overload
def flow(fn: Callable[..., Any], /) -> Flow: ...
@overload
def flow(
    *, name: str | None = None, stack: str | None = None, retries: int = 0
) -> Callable[[Callable[..., Any]], Flow]: ...


def flow(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a flow: `@flow` or `@flow(stack="prod", retries=1)`.

    `retries` re-runs the body after a failure; completed checkpoints are reused.
    """
    if fn is not None:
        return Flow(fn, **options)
    return lambda f: Flow(f, **options)
