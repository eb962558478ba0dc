"""Capabilities a flavor declares to the conformance suites: optional features default off,
so a new optional test never breaks an existing plugin."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreCaps:
    """What an artifact store flavor supports beyond the mandatory interface."""

    #: Another process on this machine, building the store from the same flavor and config,
    #: sees what this one wrote (False for `memory://`). Tests marked
    #: `@pytest.mark.requires("shared_between_processes")` run only when True.
    shared_between_processes: bool = False
    #: What `store.process_local` must say; None accepts the store's own declaration.
    process_local: bool | None = None
    #: `list_blobs`, `delete_blob` and `delete_files` (what `kitaru gc` needs) are implemented;
    #: without them they must raise `ConfigError` (`delete_files` may do nothing).
    housekeeping: bool = False
