"""Task names of the remote protocol, for execution targets (part of the contract)."""

from __future__ import annotations

from .runtime.protocol import MAX_TASK_NAME, is_task_name, task_name

__all__ = ["MAX_TASK_NAME", "is_task_name", "task_name"]
