"""`@flow`: a durable function; `.run()` starts an execution and returns a `FlowHandle`."""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, overload

from kitaru_core.errors import (
    ContextError,
    ExecutionCancelledError,
    FlowFailedError,
    FlowInputError,
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

if TYPE_CHECKING:
    from .deployments import Deployment, DeploymentsAPI

_POLL_SECONDS = 0.2
#: How often `wait()` runs the runner watchdog on the execution it waits for (seconds).
_WATCH_SECONDS = 5.0


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
            try:
                joined = run.join(timeout)
            except KeyboardInterrupt:
                self._suspend_at_interrupt()
                raise
            if not joined:
                raise self._timed_out(timeout)
            if run.error is not None:
                self._raise_failed(run.error)
            if not run.suspended:
                return run.result
        next_watch = time.monotonic() + _WATCH_SECONDS
        while True:
            record = self._stack.registry.get_execution(self.exec_id)
            if time.monotonic() >= next_watch:  # a runner launched for it that died is relaunched
                from kitaru_core.runtime import watchdog

                next_watch = time.monotonic() + _WATCH_SECONDS
                record = watchdog.watch(self._stack, [record])[0]
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
                raise self._timed_out(timeout)
            time.sleep(_POLL_SECONDS)

    def _suspend_at_interrupt(self) -> None:
        """Ctrl-C while the body waits for input (at the prompt or polling): suspend the
        execution (it stays `waiting`) before the interrupt ends the program."""
        from kitaru_core.runtime import termination

        ctx = termination.live_body(self.exec_id)
        name = None if ctx is None else ctx.at_wait
        if name is None:
            return
        ctx.suspend_requested.set()
        # Not run.join(): a join that KeyboardInterrupt broke off may think the thread ended.
        ctx.ended.wait(termination.GRACE_SECONDS)
        if ctx.suspended:
            sys.stderr.write(f"[kitaru] execution {self.exec_id} suspended at wait {name!r}; answer it "
                             f"with `kitaru executions input {self.exec_id} --wait {name}`\n")

    def _timed_out(self, timeout: float | None) -> WaitTimeoutError:
        """The error for a `wait(timeout=)` that ended first: what the execution is doing."""
        registry = self._stack.registry
        record = registry.get_execution(self.exec_id)
        eid = self.exec_id
        if record.status != ExecutionStatus.WAITING.value:
            return WaitTimeoutError(
                f"execution {eid} is still {record.status} after {timeout}s; call wait() again"
            )
        pending = [w for w in registry.get_waits(eid) if w.status == "pending"]
        if not pending:
            return WaitTimeoutError(
                f"execution {eid} is waiting after {timeout}s: its input was given and it is "
                f"about to continue; call wait() again"
                + (f" (resume failed: {record.failure.get('message')}; fix it, then run "
                   f"`kitaru executions resume {eid}`)"
                   if (record.failure or {}).get("resume_failed") else "")
            )
        w = pending[0]
        question = f" ({w.question})" if w.question else ""
        return WaitTimeoutError(
            f"execution {eid} is waiting for input at wait {w.name!r}{question} after {timeout}s; "
            f"answer it with `kitaru executions input {eid} --wait {w.name} --value JSON`, "
            "then call wait() again"
        )

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
        retries: int | None = None, cache: bool | None = None,
        image: _settings.ImageSettings | dict[str, Any] | str | None = None,
    ) -> None:
        where = f"@flow on {getattr(fn, '__qualname__', fn)!r}: @flow"
        self._options = {
            "retries": _settings.check_retries(retries, where),
            "cache": _settings.check_cache(cache, where),
            "image": _settings.as_image(image, f"{where}(image=...)"),
        }
        functools.update_wrapper(self, fn)
        self.__kitaru_flow__ = FlowSpec(
            fn=fn, name=name or fn.__name__, retries=retries or 0, stack=stack, cache=cache,
            image=_image_dict(self._options["image"]),
        )
        self._signature: inspect.Signature | None = None

    @property
    def name(self) -> str:
        return self.__kitaru_flow__.name

    def _stack(self, stack: str | None) -> Stack:
        spec = self.__kitaru_flow__
        return get_stack(resolve_stack_name(stack, spec.stack, _settings.current().stack))

    def _resolved(self, image: Any, cache: Any, retries: Any) -> FlowSpec:
        """This flow with the options of one run: `.run` > `@flow` > configure > env > defaults."""
        given = {
            "retries": _settings.check_retries(retries, "run"),
            "cache": _settings.check_cache(cache, "run"),
            "image": _settings.as_image(image, "run(image=...)"),
        }
        options = _settings.resolve(given, self._options)
        return replace(self.__kitaru_flow__, retries=options.retries, cache=options.cache,
                       image=_image_dict(options.image))

    def _check_inputs(self, args: tuple[Any, ...], inputs: dict[str, Any], given: dict[str, Any]) -> None:
        """Refuse arguments the flow can't take, before anything is recorded."""
        if self._signature is None:
            self._signature = inspect.signature(self.__kitaru_flow__.fn)
        try:
            self._signature.bind(*args, **inputs)
        except TypeError as exc:
            clash = [n for n in _RUN_OPTIONS if n in self._signature.parameters and n not in inputs
                     and (given.get(n) is not None or f"'{n}'" in str(exc))]
            hint = (f"; `.run({clash[0]}=...)` sets the run's {clash[0]} option, so pass the "
                    f"flow's own {clash[0]!r} positionally" if clash else "")
            raise FlowInputError(f"flow {self.name!r} can't take these inputs: {exc}{hint}") from None

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

    def run(
        self,
        *args: Any,
        stack: str | None = None,
        image: _settings.ImageSettings | dict[str, Any] | str | None = None,
        cache: bool | None = None,
        retries: int | None = None,
        **inputs: Any,
    ) -> FlowHandle:
        """Start an execution; returns at once with a handle (`.wait()` for the result).

        `stack`, `image`, `cache` and `retries` are this run's options (they override
        `@flow(...)` and `kitaru.configure(...)`); every other argument is a flow input.
        A flow parameter named like an option is passed positionally.
        """
        self._check_can_start()
        spec = self._resolved(image, cache, retries)
        self._check_inputs(args, inputs, {"stack": stack, "image": image, "cache": cache,
                                          "retries": retries})
        built = self._stack(stack)
        record, run = service.start_run(spec, built, args, inputs)
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
        image: _settings.ImageSettings | dict[str, Any] | str | None = None,
        cache: bool | None = None,
        retries: int | None = None,
    ) -> FlowHandle:
        """A new execution linked to `exec_id`: calls before `at` reuse its outputs,
        `at` and later run live with this code (and this run's options, resolved as for
        `.run`)."""
        self._check_can_start()
        spec = self._resolved(image, cache, retries)
        built = self._stack(stack)
        record, run = service.replay(
            built, exec_id, at=at, flow=spec,
            checkpoint_overrides=checkpoint_overrides, flow_overrides=flow_overrides,
        )
        return FlowHandle(record.exec_id, built, run)

    def deploy(
        self,
        *args: Any,
        stack: str | None = None,
        image: _settings.ImageSettings | dict[str, Any] | str | None = None,
        cache: bool | None = None,
        retries: int | None = None,
        tags: dict[str, bool] | list[str] | str | None = None,
        publish_default_on_first_deploy: bool = True,
        **defaults: Any,
    ) -> Deployment:
        """Snapshot this flow as its next deployment version (1, 2, ...) and return it.

        The snapshot holds the project's code package, the flow's entrypoint, the resolved
        stack (frozen), the Python and package versions, the run options and `defaults`
        (flow inputs that invocations start from). `tags` route to it: `{"canary": True}`
        (exclusive: moved here from any other version), `{"nightly": False}` (shared), or
        names (exclusive). The first version also gets the reserved `default` tag unless
        `publish_default_on_first_deploy=False`. See docs/deployments.md.
        """
        from .deployments import deploy_flow

        self._check_can_start()
        return deploy_flow(self, defaults, args=args, stack=stack, image=image, cache=cache,
                           retries=retries, tags=tags, publish_default=publish_default_on_first_deploy)

    def _deployments(self, stack: str | None = None) -> DeploymentsAPI:
        from .client import KitaruClient

        return KitaruClient.for_stack(self._stack(stack)).deployments

    def deployments(self) -> list[Deployment]:
        """This flow's deployment versions, oldest first."""
        return self._deployments().list(flow=self.name)

    def deployment(self, *, version: int | None = None, tag: str | None = None) -> Deployment:
        """One deployment version of this flow: by `version`, `tag`, else `default`."""
        return self._deployments().get(flow=self.name, version=version, tag=tag)

    def invoke(self, *, version: int | None = None, tag: str | None = None, **inputs: Any) -> FlowHandle:
        """Start an execution of a deployed version (by `version`, `tag`, else the `default`
        tag) with `inputs` over its deployed defaults; returns its handle at once.

        It runs the version's snapshot of the code through its frozen stack's orchestrator,
        not this process's code: a changed working tree does not change what runs.
        """
        self._check_can_start()
        return self._deployments().invoke(flow=self.name, version=version, tag=tag, inputs=inputs)

    def __repr__(self) -> str:
        return f"<flow {self.name}>"


_RUN_OPTIONS = ("stack", "image", "cache", "retries")


def _image_dict(image: _settings.ImageSettings | None) -> dict[str, Any] | None:
    return (image.to_dict() or None) if image is not None else None


@overload
def flow(fn: Callable[..., Any], /) -> Flow: ...
@overload
def flow(
    *, name: str | None = None, stack: str | None = None, retries: int | None = None,
    cache: bool | None = None, image: _settings.ImageSettings | dict[str, Any] | str | None = None,
) -> Callable[[Callable[..., Any]], Flow]: ...


def flow(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a flow: `@flow` or `@flow(stack="prod", retries=1, cache=False, image=...)`.

    `retries` runs the whole body again after a failure (completed checkpoints are
    reused, so only what failed runs again); `cache` is the run's cache setting for its
    checkpoints; `image` (`kitaru.ImageSettings`) is recorded for remote runners.
    `.run(...)` options override these, and these override `kitaru.configure(...)`.
    """
    if fn is not None:
        return Flow(fn, **options)
    return lambda f: Flow(f, **options)
