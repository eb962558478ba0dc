"""Per-call capture of stdout, stderr and `logging` output.

`sys.stdout`/`sys.stderr` are replaced once by proxies that pass every write
through to the real stream and, when a capture is active in the current
context (thread or task), also append it to that capture. A log record
factory hook captures log records the same way; writes that a logging
StreamHandler makes to a proxied stream are not captured twice.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any, TextIO

_active: ContextVar[Capture | None] = ContextVar("kitaru_capture", default=None)
_install_lock = threading.Lock()
_installed = False
_STREAM_EMIT = logging.StreamHandler.emit.__code__


class Capture:
    """Collected output of one call; `drain()` hands out what arrived since last time."""

    __slots__ = ("_lock", "_parts", "call_id")

    def __init__(self, call_id: str | None) -> None:
        self.call_id = call_id
        self._parts: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()

    def add(self, stream: str, text: str) -> None:
        with self._lock:
            self._parts.append((stream, text, time.time()))

    def drain(self) -> list[tuple[str, str, float]]:
        """Pending parts, merged per stream run, and forgotten here."""
        with self._lock:
            parts, self._parts = self._parts, []
        merged: list[tuple[str, str, float]] = []
        for stream, text, ts in parts:
            if merged and merged[-1][0] == stream:
                merged[-1] = (stream, merged[-1][1] + text, merged[-1][2])
            else:
                merged.append((stream, text, ts))
        return merged

    def pending(self) -> bool:
        """True while it holds output not drained yet."""
        return bool(self._parts)

    def __bool__(self) -> bool:
        return True


class _Proxy:
    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._name = name

    def write(self, text: str) -> int:
        cap = _active.get()
        if cap is not None and text and sys._getframe(1).f_code is not _STREAM_EMIT:
            cap.add(self._name, text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _wrap_record_factory() -> None:
    # Records are captured as they are made, so handlers and `basicConfig` stay
    # the user's own; a record exists only when its logger's level lets it through.
    base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        cap = _active.get()
        if cap is not None:
            try:
                cap.add("log", f"{record.levelname} {record.name}: {record.getMessage()}\n")
            except Exception:  # a bad format string is logging's error to report
                pass
        return record

    logging.setLogRecordFactory(factory)


def install() -> None:
    """Install the stream proxies and the log record hook (idempotent).

    Checked on every capture: whoever swapped `sys.stdout`/`sys.stderr` since
    the last call (pytest, IPython, `redirect_stdout`) gets their stream wrapped
    too, so output is still captured.
    """
    global _installed
    if _installed and isinstance(sys.stdout, _Proxy) and isinstance(sys.stderr, _Proxy):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Proxy) and sys.stdout is not None:
            sys.stdout = _Proxy(sys.stdout, "stdout")  # type: ignore[assignment]
        if not isinstance(sys.stderr, _Proxy) and sys.stderr is not None:
            sys.stderr = _Proxy(sys.stderr, "stderr")  # type: ignore[assignment]
        if not _installed:
            _wrap_record_factory()
            _installed = True


def start(call_id: str | None) -> tuple[Capture, Any]:
    """Begin capturing in the current context; returns (capture, token for `stop`)."""
    install()
    cap = Capture(call_id)
    return cap, _active.set(cap)


def stop(token: Any) -> None:
    _active.reset(token)


def active() -> Capture | None:
    return _active.get()
