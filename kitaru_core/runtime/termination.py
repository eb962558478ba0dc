"""SIGTERM while a flow body waits for input: suspend it cleanly, then terminate as asked.

kitaru installs the handler from the main thread when a flow body starts there (or
`flow.run()` is called there), and only if the program has no SIGTERM handler of
its own. When every flow body of the process is blocked at a wait, each is asked
to suspend (status `waiting`, its wait still pending, its process let go) and the
process then terminates with SIGTERM as it would have (within a grace period). If
a body is inside a checkpoint the process terminates at once, as without kitaru:
that execution is resumable once its owner is seen to be gone, and an execution
whose body was at a wait stays `waiting`; an input for it starts the resume.
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
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM terminates at once
    _installed = False
    live = [c for c in list(_bodies) if not c.ended.is_set()]
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
