"""Execution and checkpoint-call states."""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    """The state of one execution; `.value` is the lower-case word stored in records."""

    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """True for the terminal states (completed, failed, cancelled)."""
        return self in _FINISHED

    def __str__(self) -> str:
        return self.value


_FINISHED = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})


class CallStatus(StrEnum):
    """The state of one checkpoint call."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value
