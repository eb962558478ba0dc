"""Liveness of local processes, for plugins whose components start them (part of the contract).

A pid alone can be reused; a pid with its kernel start token names one process.
"""

from __future__ import annotations

from .runtime.owner import process_is_running, process_start_token

__all__ = ["process_is_running", "process_start_token"]
