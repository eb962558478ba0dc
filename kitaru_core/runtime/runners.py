"""The runner an orchestrator launched for an execution, as the record keeps it.

Every background launch (the first run on a remote orchestrator, a resume after an
input, `resume --background`, a replay in the background, a watchdog's relaunch)
records `ExecutionRecord.runner` in three steps:

1. **intent**, before the orchestrator is asked: this launch's id, the number of
   launches so far, the watchdog's relaunches since the last launch a person asked
   for, when, and in which mode; a compare-and-set on the record's version, so of two
   watchdogs that saw the same lost runner exactly one relaunches it;
2. **handle**, once `Orchestrator.launch` returned it (kept only while the record
   still names this launch);
3. **claimed**, written by the launched runner itself right after it took the
   execution (`claimed_at`).

A process the user started (`flow.run()`, a foreground `kitaru executions resume`)
that takes the execution clears `runner`: no launched runner is responsible for it
then, so the watchdog leaves it alone and a cancel never signals it.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, Any

from ..records import ExecutionRecord

if TYPE_CHECKING:
    from ..stack import Stack

#: Environment of a launched runner: its launch's id (see `Orchestrator.RUNNER_LOG_ENV`).
LAUNCH_ID_ENV = "KITARU_LAUNCH_ID"
_CAS_TRIES = 20


def launch_id_for(exec_id: str, launches: int) -> str:
    """The id of the `launches`-th launch of `exec_id`: the same for every process that
    computes it, so a repeated launch of one attempt finds its Job by name."""
    return hashlib.sha256(f"{exec_id}:{launches}".encode()).hexdigest()[:16]


def record_intent(
    stack: Stack,
    record: ExecutionRecord,
    mode: str,
    *,
    launch_id: str | None = None,
    relaunch: bool = False,
    expected_version: int | None = None,
) -> dict[str, Any] | None:
    """Record that a runner is about to be launched for `record`; the new `runner` entry.

    With `expected_version` (a watchdog's relaunch) this is one compare-and-set: None when
    the record moved on since it was read (another watchdog relaunched it, the runner
    came back, it was cancelled). Without, the write is retried on the current record:
    a launch a person asked for always happens.
    """
    registry = stack.registry
    current = record
    for _ in range(_CAS_TRIES):
        before = current.runner or {}
        launches = int(before.get("launches") or 0) + 1
        runner = {
            "launch": launch_id or launch_id_for(current.exec_id, launches),
            "handle": None,
            "mode": mode,
            "launched_at": time.time(),
            "launches": launches,
            "relaunches": int(before.get("relaunches") or 0) + 1 if relaunch else 0,
            "claimed_at": None,
        }
        version = current.version if expected_version is None else expected_version
        if registry.update_execution(current.exec_id, {"runner": runner}, expected_version=version):
            return runner
        if expected_version is not None:
            return None
        current = registry.get_execution(current.exec_id)
    registry.update_execution(record.exec_id, {"runner": runner})
    return runner


def record_handle(stack: Stack, exec_id: str, launch: str, handle: dict[str, Any]) -> None:
    """Keep the orchestrator's handle of launch `launch`, while the record still names it."""
    _merge(stack, exec_id, launch, {"handle": handle})


def mark_claimed(stack: Stack, record: ExecutionRecord, owner: str) -> None:
    """After `owner` took `record`: note it on its runner entry if `owner` is that launched
    runner (its launch id is in this process's environment), else clear the entry."""
    runner = record.runner
    if runner is None:
        return
    mine = os.environ.get(LAUNCH_ID_ENV)
    if mine and runner.get("launch") == mine:
        fields = {"runner": {**runner, "claimed_at": time.time()}}
    else:
        fields = {"runner": None}
    stack.registry.update_execution(record.exec_id, fields, owner=owner)


def _merge(stack: Stack, exec_id: str, launch: str, changes: dict[str, Any]) -> None:
    registry = stack.registry
    for _ in range(_CAS_TRIES):
        current = registry.get_execution(exec_id)
        runner = current.runner
        if runner is None or runner.get("launch") != launch:
            return  # superseded: a later launch, or a process the user started took over
        if registry.update_execution(
            exec_id, {"runner": {**runner, **changes}}, expected_version=current.version
        ):
            return


def runner_log(runner: dict[str, Any] | None) -> str | None:
    """Where a launched runner's output is (a file, or how to read it), if the handle says."""
    handle = (runner or {}).get("handle") or {}
    log = handle.get("log")
    return str(log) if log else None
