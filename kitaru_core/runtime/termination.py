"""SIGTERM while a flow body waits for input: suspend it cleanly, then terminate as asked.

kitaru installs the handler from the main thread when a flow body starts there (or
`flow.run()` is called there), and only if the program has no SIGTERM handler of
its own. When every flow body of the process is blocked at a wait, each is asked
to suspend (status `waiting`, its wait still pending, its process let go) and the
process then terminates with SIGTERM as it would have (within a grace period). If
a body is inside a checkpoint the process terminates at once, as without kitaru:
that execution is resumable once its owner is seen to be gone, and an execution
whose body was at a wait stays `waiting`; an input for it starts the resume.

A runner an orchestrator launched (`python -m kitaru_core.entrypoint`, see
`launched_runner`) is kitaru's own process, so it stops in order instead: SIGTERM
(what `kitaru executions cancel` sends it through the `local` orchestrator, and what
Kubernetes sends a pod it deletes or evicts) interrupts the checkpoint function
running in the main thread, records that call as stopped with the output it printed,
records the outcome (a cancelled execution stays `cancelled`; otherwise it is let go,
resumable at once) and exits. The checkpoint is interrupted only while the main thread
runs the function's own code, never inside kitaru's bookkeeping (a signal that lands
there is sent again a moment later); after the grace period the process exits anyway.
A user's own process (`flow.run()` in a script or notebook) is never stopped this way:
a cancel reaches it at its next step.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import weakref
from typing import Any

#: How long a suspension may take before the process terminates anyway (seconds).
GRACE_SECONDS = 10.0

_bodies: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False
_launched = False  # this process is a runner an orchestrator launched
_stopping = threading.Event()  # a launched runner was asked to stop
_RESIGNAL_SECONDS = 0.2


def launched_runner() -> None:
    """Mark this process as a runner an orchestrator launched (see the module doc)."""
    global _launched
    _launched = True


def stopping() -> bool:
    """True once a launched runner was asked to stop (SIGTERM)."""
    return _stopping.is_set()


def track(ctx: Any) -> None:
    """Count `ctx` (an ExecutionContext whose body runs now) among this process's bodies."""
    _bodies.add(ctx)
    install()


def live_body(exec_id: str) -> Any:
    """The context of the body of `exec_id` running in this process, if any."""
    return next((c for c in list(_bodies) if c.exec_id == exec_id and not c.ended.is_set()), None)


def install() -> None:
    """Handle SIGTERM (main thread only, and only where nobody else handles it)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not supported here (e.g. an embedded interpreter)
        return
    _installed = True


def _on_sigterm(signum: int, frame: Any) -> None:
    global _installed
    live = [c for c in list(_bodies) if not c.ended.is_set()]
    if _launched and live and any(c.at_wait is None for c in live):
        _stop_launched_runner(live, frame)
        return
    if _stopping.is_set() and not live:
        return  # stopping already, and the body has ended: the runner exits by itself
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM terminates at once
    _installed = False
    if not live or any(c.at_wait is None for c in live):
        os.kill(os.getpid(), signal.SIGTERM)
        return
    for ctx in live:
        ctx.suspend_requested.set()
    threading.Thread(target=_terminate_when_suspended, args=(live,), daemon=True,
                     name="kitaru-sigterm").start()


def _terminate_when_suspended(bodies: list[Any]) -> None:
    deadline = time.monotonic() + GRACE_SECONDS
    for ctx in bodies:
        ctx.ended.wait(max(0.0, deadline - time.monotonic()))
    os.kill(os.getpid(), signal.SIGTERM)


def _stop_launched_runner(live: list[Any], frame: Any) -> None:
    """SIGTERM in a launched runner with a body outside a wait: stop it in order."""
    from .execution import RunnerStopped, interrupted_in_call

    first = not _stopping.is_set()
    _stopping.set()
    for ctx in live:
        ctx.stop_requested = True
        ctx.cancelled = True  # every later step of the body stops (check_cancelled)
    if first:
        threading.Thread(target=_resignal_until_ended, args=(live,), daemon=True,
                         name="kitaru-stop").start()
    if interrupted_in_call(frame):
        raise RunnerStopped()


def _resignal_until_ended(bodies: list[Any]) -> None:
    """Send SIGTERM again while the bodies run (one that landed inside kitaru's own code was
    deferred); after the grace period, exit without waiting any longer."""
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline:
        if all(ctx.ended.wait(_RESIGNAL_SECONDS) for ctx in bodies):
            return
        if any(not ctx.ended.is_set() for ctx in bodies):
            os.kill(os.getpid(), signal.SIGTERM)
    os._exit(128 + signal.SIGTERM)
