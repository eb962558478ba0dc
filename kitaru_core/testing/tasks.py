"""Functions the conformance suites run as tasks: shipped with kitaru_core, so every image
that has kitaru installed can import them by name (no code package needed)."""

from __future__ import annotations

import os
import time
import uuid

from ..runtime.state import current_call


def echo(value: object) -> object:
    """Return `value` unchanged."""
    return value


def shout(token: str) -> str:
    """Print `token` (for the target's logs) and return it."""
    print(f"conformance says {token}", flush=True)
    return token


def count_run(token: str, seconds: float = 0.0) -> str:
    """Record this run as a blob of its own in the store (`<token>:<uuid>`), then sleep."""
    call = current_call.get()
    data = f"{token}:{uuid.uuid4().hex}:{os.getpid()}".encode()
    import hashlib

    call.store.put_blob(data, hashlib.sha256(data).hexdigest())
    time.sleep(seconds)
    return token


def sleep_then(seconds: float, value: object) -> object:
    """Sleep `seconds`, then return `value` (a task to cancel)."""
    time.sleep(seconds)
    return value


def fail(message: str) -> None:
    """Raise a plain error with `message`."""
    raise RuntimeError(message)


def parent_pid() -> int:
    """The pid of the process that started this worker (the runner, or its fork server)."""
    return os.getppid()
