"""The runner watchdog: an execution whose launched runner is gone gets a new one, or fails.

An execution needs a runner while it is `running`, or `waiting` with its waits
answered by an input that launched a runner (or answered while its runner held
it). When the record names a runner an orchestrator launched for it
(`ExecutionRecord.runner`, see `runners`), no live owner holds it, and the
orchestrator reports that runner ended or lost, or it has not started within the
grace period, the watchdog relaunches it through the execution's own stack. The
relaunch is a compare-and-set on the version read, so of two watchdogs that
noticed the same runner exactly one relaunches it. After
`relaunch_limit` relaunches with no launch asked for in between, the execution is
marked `failed` with the reason and where the runner's log is.

The watchdog never relaunches what no orchestrator launched (a `flow.run()` in the
user's own process, a foreground resume: `kitaru executions resume` continues
those), nor a runner that recorded why it could not resume (fix the cause first).
It runs where executions are looked at (`kitaru executions list/get`, `resume`),
on demand (`kitaru executions recover`, `KitaruClient().executions.recover`), and a
server calls `sweep` periodically.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..errors import RunnerLostError
from ..records import ExecutionRecord, LogChunk
from ..status import ExecutionStatus
from .owner import owner_is_alive
from .runners import runner_log

if TYPE_CHECKING:
    from ..stack import Stack

#: Relaunches of a lost runner before the execution is marked failed
#: (counted since the last launch a person asked for: an input, a resume, a retry).
RELAUNCH_LIMIT = int(os.environ.get("KITARU_RUNNER_RELAUNCHES", "3"))
#: Seconds a launched runner may take to start (a Kubernetes Job pulling its image and
#: being scheduled) before it is treated as never started.
START_GRACE_SECONDS = float(os.environ.get("KITARU_RUNNER_START_GRACE", "300"))

_RUNNING = ExecutionStatus.RUNNING.value
_WAITING = ExecutionStatus.WAITING.value


@dataclass
class RunnerCheck:
    """What the watchdog found for one execution, and what it did.

    `action`: "relaunched", "failed" (given up: marked failed), "none" (it has a runner,
    or is not the watchdog's to continue) or "error" (the orchestrator could not be asked).
    """

    exec_id: str
    action: str
    reason: str
    state: str | None = None  # the orchestrator's report on the runner, when asked
    log: str | None = None
    relaunches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate(record: ExecutionRecord) -> bool:
    """True if `record` may need the watchdog, judged from the record alone (no I/O but
    a same-host liveness check): live status, a launched runner, no live owner."""
    if record.status not in (_RUNNING, _WAITING) or record.runner is None:
        return False
    if owner_is_alive(record.owner, record.lease_expires):
        return False
    failure = record.failure or {}
    # That runner started and said why it cannot resume: another runner would fail alike.
    return not (failure.get("resume_failed") and failure.get("launch") == record.runner.get("launch"))


#: Seconds a running execution created without an owner (for a launcher to claim) is left
#: to its launcher before it counts as orphaned.
UNCLAIMED_GRACE_SECONDS = 60.0


def orphaned(record: ExecutionRecord, now: float | None = None) -> bool:
    """A running execution with no launched runner whose owner is gone and whose owner's
    lease expired, and whose last resume recorded no reason it cannot continue: a
    `flow.run()` whose process was killed, which nobody will continue unless resumed.

    The lease (`KITARU_LEASE_SECONDS`, 30 s by default), not the owner's death alone: a
    person who saw the runner crash has that long to resume it themselves first.
    """
    if record.status != _RUNNING or record.runner is not None:
        return False
    now = time.time() if now is None else now
    if owner_is_alive(record.owner, record.lease_expires, now):
        return False
    if record.owner is None:
        expired = now - (record.created_at or 0.0) >= UNCLAIMED_GRACE_SECONDS
    else:
        expired = record.lease_expires is None or record.lease_expires <= now
    return expired and not (record.failure or {}).get("resume_failed")


def check(
    stack: Stack,
    record: ExecutionRecord,
    *,
    relaunch_limit: int | None = None,
    grace_seconds: float | None = None,
    now: float | None = None,
) -> RunnerCheck:
    """Look at `record`'s launched runner; relaunch it or fail the execution if it is gone."""
    eid = record.exec_id
    runner = record.runner or {}
    relaunches = int(runner.get("relaunches") or 0)
    log = runner_log(runner)
    if not candidate(record):
        return RunnerCheck(eid, "none", _why_not(record), log=log, relaunches=relaunches)
    if record.status == _WAITING:
        waits = stack.registry.get_waits(eid)
        if any(w.status == "pending" for w in waits):
            return RunnerCheck(eid, "none", "waiting for input", log=log, relaunches=relaunches)
        answered = max((w.answered_at or 0.0 for w in waits), default=0.0)
        if record.owner is None and float(runner.get("launched_at") or 0) < answered:
            # Its runner let go at a wait (suspended) and the answer came later without a
            # resume (`input --no-resume`): continuing it is the user's call.
            return RunnerCheck(eid, "none", "its input was recorded without a resume; "
                               f"`kitaru executions resume {eid}` continues it", log=log,
                               relaunches=relaunches)
    from .service import stack_for_record

    run_stack = stack_for_record(record, stack)
    now = time.time() if now is None else now
    grace = START_GRACE_SECONDS if grace_seconds is None else grace_seconds
    age = now - float(runner.get("launched_at") or 0)
    handle = runner.get("handle")
    state = None
    if not handle:
        if age < grace:
            return RunnerCheck(eid, "none", "its runner is being launched", log=log, relaunches=relaunches)
        lost = f"its runner launched {age:.0f} s ago never got a handle (the launcher stopped)"
    else:
        try:
            report = run_stack.orchestrator.poll(handle)
        except Exception as exc:
            return RunnerCheck(eid, "error", f"cannot ask the orchestrator about its runner: {exc}",
                               log=log, relaunches=relaunches)
        state = report.state
        detail = f" ({report.message})" if report.message else ""
        if report.ended:
            lost = f"its runner is {state}{detail}" + ("" if runner.get("claimed_at") else
                                                     ", before it took the execution")
        elif state == "pending" and age >= grace:
            lost = f"its runner has not started within {grace:.0f} s{detail}"
            try:  # it must not start later beside its replacement
                run_stack.orchestrator.cancel(handle)
            except Exception as exc:
                return RunnerCheck(eid, "error", f"{lost}, and cannot be cancelled: {exc}",
                                   state=state, log=log, relaunches=relaunches)
        else:
            why = "its runner is starting" if state == "pending" else f"its runner is {state}{detail}"
            return RunnerCheck(eid, "none", why, state=state, log=log, relaunches=relaunches)
    limit = RELAUNCH_LIMIT if relaunch_limit is None else relaunch_limit
    if relaunches >= limit:
        return _give_up(stack, record, lost, state, log, relaunches)
    return _relaunch(stack, record, lost, state, log, relaunches)


def _why_not(record: ExecutionRecord) -> str:
    if record.status not in (_RUNNING, _WAITING):
        return f"{record.status}"
    if record.runner is None:
        return "no launched runner (a process the user started runs it, or ran it last)"
    if owner_is_alive(record.owner, record.lease_expires):
        return "its runner holds it"
    return "its runner could not resume it; fix the cause, then `kitaru executions resume`"


def _relaunch(
    stack: Stack, record: ExecutionRecord, lost: str, state: str | None, log: str | None,
    relaunches: int,
) -> RunnerCheck:
    from .service import launch

    eid = record.exec_id
    try:
        handle = launch(record, stack, "resume", relaunch=True, expected_version=record.version)
    except Exception as exc:
        return RunnerCheck(eid, "error", f"{lost}; relaunching it failed: {exc}", state=state,
                           log=log, relaunches=relaunches)
    if handle is None:
        return RunnerCheck(eid, "none", "another process relaunched it or it moved on meanwhile",
                           state=state, log=log, relaunches=relaunches)
    _note(stack, eid, f"[kitaru] {lost}; relaunched it (relaunch {relaunches + 1})\n")
    return RunnerCheck(eid, "relaunched", lost, state=state, log=handle.get("log") or log,
                       relaunches=relaunches + 1)


def _give_up(
    stack: Stack, record: ExecutionRecord, lost: str, state: str | None, log: str | None,
    relaunches: int,
) -> RunnerCheck:
    eid = record.exec_id
    where = f"; runner log: {log}" if log else ""
    message = f"{lost}, after {relaunches} relaunch{'es' if relaunches != 1 else ''}: gave up{where}"
    failure = {
        "type": f"{RunnerLostError.__module__}.{RunnerLostError.__qualname__}",
        "message": message, "call_id": None, "log": log,
        "runner_state": state,
        "fix": f"read the runner's log, fix the cause, then `kitaru executions retry {eid}`",
    }
    done = stack.registry.update_execution(eid, {
        "status": ExecutionStatus.FAILED.value, "failure": failure, "ended_at": time.time(),
        "owner": None, "lease_expires": None,
    }, expected_version=record.version)
    if not done:
        return RunnerCheck(eid, "none", "another process acted on it meanwhile", state=state,
                           log=log, relaunches=relaunches)
    _note(stack, eid, f"[kitaru] {message}\n[kitaru] {failure['fix']}\n")
    return RunnerCheck(eid, "failed", message, state=state, log=log, relaunches=relaunches)


def _note(stack: Stack, exec_id: str, text: str) -> None:
    try:
        stack.registry.append_logs([LogChunk(exec_id, None, 0, "stderr", text, time.time())])
    except Exception:  # the action is recorded on the execution; the log line is a courtesy
        pass


def recover(stack: Stack, exec_id: str, **options: Any) -> RunnerCheck:
    """The watchdog on one execution (id or unique prefix)."""
    return check(stack, stack.registry.get_execution(exec_id), **options)


def sweep(stack: Stack, **options: Any) -> list[RunnerCheck]:
    """The watchdog on every running or waiting execution of the stack's registry (what a
    server calls periodically); one check per execution that may need it."""
    registry = stack.registry
    records = registry.list_executions(status=_RUNNING) + registry.list_executions(status=_WAITING)
    return [check(stack, r, **options) for r in records if candidate(r)]


def watch(stack: Stack, records: list[ExecutionRecord]) -> list[ExecutionRecord]:
    """`records` after the watchdog looked at those that may need it (refreshed where it
    acted): what reads (`executions list/get`) call. Never raises."""
    out = []
    for record in records:
        if candidate(record):
            try:
                if check(stack, record).action in ("relaunched", "failed"):
                    record = stack.registry.get_execution(record.exec_id)
            except Exception:  # a read must not fail because the watchdog could not act
                pass
        out.append(record)
    return out
