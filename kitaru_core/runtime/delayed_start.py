"""Start an execution's background ticker only once the execution has run for a tick.

A ticker (lease renewal, running records, log flushing, cancel checks) does its first work
one tick after the execution starts, so an execution that ends sooner never needs one. Most
flows end within a tick, and a thread of their own cost each ~0.2 ms to start and join,
more than the rest of a short flow's bookkeeping. One thread per process waits here for
every execution's first tick instead, and hands those still running their own ticker then;
each ticker still runs in its own thread, so one execution's slow registry never delays
another's lease renewal.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable


class DelayedStarter:
    """Calls `start(key)` for each added key `delay` seconds after it was added, unless it
    was discarded first. Keys are started in the order they were added."""

    def __init__(self, delay: float, start: Callable[[Hashable], None]) -> None:
        self._delay = delay
        self._start = start
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        # Every key waits the same delay, so insertion order is deadline order.
        self._due: dict[Hashable, float] = {}
        self._thread: threading.Thread | None = None

    def add(self, key: Hashable) -> None:
        # No notify: waking the waiting thread costs the adding thread a GIL hand-off, more
        # than the thread start this saves. Waiting with nothing due, the thread looks again
        # after one delay at the most, so it is awake by the time a key added meanwhile is due.
        with self._cond:
            self._due[key] = time.monotonic() + self._delay
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="kitaru-tick-starter", daemon=True
                )
                self._thread.start()

    def discard(self, key: Hashable) -> None:
        """Forget `key` if it was not started yet; once this returns, it never will be."""
        with self._cond:
            self._due.pop(key, None)

    def pending(self) -> int:
        with self._cond:
            return len(self._due)

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._due:
                    self._cond.wait(self._delay)
                    continue
                key, deadline = next(iter(self._due.items()))
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                del self._due[key]
                try:  # with the lock held: `discard` returns only after a start it raced
                    self._start(key)
                except Exception:  # one execution's failed start must not stop the others'
                    pass

    def after_fork(self) -> None:
        """In a forked child: no thread waits here, and the lock may have been held."""
        self._reset()


def register_after_fork(starter: DelayedStarter) -> None:
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=starter.after_fork)
