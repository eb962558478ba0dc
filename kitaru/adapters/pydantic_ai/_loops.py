"""Where a `KitaruAgent` run's coroutines run, and the guards around flow-body runs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import weakref
from typing import Any

from kitaru_core.errors import ContextError
from kitaru_core.runtime.state import current_execution, where

from ._toolset import in_unrecorded_tool

_POLL_SECONDS = 0.2


def result_resuming_here(handle: Any, spec: Any) -> Any:
    """The run's result; a suspended run is resumed in this process once its wait is answered."""
    from kitaru_core.errors import ExecutionOwnedError
    from kitaru_core.runtime import service

    run = handle._run
    run.join(None)
    if run.error is not None or not run.suspended:
        return handle.wait()
    stack, exec_id = handle._stack, handle.exec_id
    while True:
        record = stack.registry.get_execution(exec_id)
        if record.status in ("completed", "failed", "cancelled"):
            return handle.wait()
        answered = not any(w.status == "pending" for w in stack.registry.get_waits(exec_id))
        if record.status == "waiting" and record.owner is None and answered:
            # A background resume (the default of `executions input`) can't import this
            # closure and hands the execution back; this process can, with the flow in hand.
            with contextlib.suppress(ExecutionOwnedError):
                service.resume_here(stack, exec_id, flow=spec)
            continue
        time.sleep(_POLL_SECONDS)


_active_runs: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_active_runs_lock = threading.Lock()


@contextlib.contextmanager
def one_run_at_a_time() -> Any:
    """Refuse a flow-body agent run that overlaps another one of the same execution.

    Calls are identified by their position (`model_request#3`), so two runs that overlap
    (`asyncio.gather`, threads) would interleave their calls in a different order on a
    resume, and one run would be handed the other's recorded responses. A run started from
    a tool of another run (delegation) is nested, not concurrent, and is allowed.
    """
    execution = current_execution.get() if where() == "flow" else None
    if execution is None:
        yield
        return
    with _active_runs_lock:
        if _active_runs.get(execution, 0) and not in_unrecorded_tool.get():
            raise ContextError(
                f"another KitaruAgent run is already in progress in the flow body of execution "
                f"{execution.exec_id}; kitaru identifies model requests and tool calls by their "
                "order, so overlapping runs (asyncio.gather, threads) would be numbered "
                "differently on a resume. Run them one after the other, or give each its own "
                "@kitaru.checkpoint (its calls then become child events), e.g. with .submit()"
            )
        _active_runs[execution] = _active_runs.get(execution, 0) + 1
    try:
        yield
    finally:
        with _active_runs_lock:
            _active_runs[execution] -= 1


_thread_loops = threading.local()


def flow_run_loop(execution: Any) -> asyncio.AbstractEventLoop:
    """This thread's loop for agent runs, closed when `execution`'s run of the body ends."""
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_loops.loop = loop
        execution.at_end(functools.partial(_shut_down, loop))
    return loop


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on `loop`, let it unwind, and close it (as `asyncio.run` does)."""
    if loop.is_closed() or loop.is_running():
        return
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def check_no_nested_sync_run() -> None:
    # Pydantic AI refuses a sync run inside a sync tool of another run (it can deadlock).
    try:
        from pydantic_ai._utils import check_no_nested_sync_run
    except ImportError:  # a private helper; without it the check is skipped
        return
    check_no_nested_sync_run()
