"""Who continues an execution once one of its waits is answered, and launched resumes.

The runner polling a wait and the input answering it meet in one compare-and-set
(`Registry.suspend_at_wait` against `Registry.answer_wait`): the runner either takes
the answer or has already let go. After answering, `after_input` makes sure a runner
exists: the polling one (it confirms by setting the status back to `running`), or a
resume launched here when nobody holds the execution or its holder is gone (a dead
process on this host, an expired lease elsewhere).

A launched resume is confirmed before it is reported: the runner it starts either
takes the execution (and notes it on the record's `runner`, see `runners.mark_claimed`)
or records why it could not
(`failure` with `resume_failed` and this launch's id, see `record_resume_failure`).
"""

from __future__ import annotations

import os
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..interfaces import Orchestrator
from ..records import ExecutionRecord, LogChunk
from ..status import ExecutionStatus
from .owner import describe_owner, owner_is_alive, process_start_token
from .runners import LAUNCH_ID_ENV

if TYPE_CHECKING:
    from ..stack import Stack

#: How long an input or a background resume waits for the runner to confirm (seconds).
CONFIRM_SECONDS = float(os.environ.get("KITARU_CONFIRM_SECONDS", "60"))
_CHECK_SECONDS = 0.05


@dataclass
class Handover:
    """What became of an execution after an input or a background resume.

    `outcome`:
    - `runner`: the runner that held it took the input and continues (`owner`);
    - `resumed`: a resume was launched and its runner took the execution;
    - `failed`: a resume was launched and could not continue it (`failure`, `log`);
    - `launched`: a resume was launched and had not started when we stopped looking;
    - `held`: a runner elsewhere holds it whose liveness can't be seen from here; it takes
      the input if it is alive, else its lease expires at `lease_expires`;
    - `ended`: the execution ended meanwhile (completed, failed, cancelled);
    - `left`: nothing was started (asked not to resume).
    """

    outcome: str
    record: ExecutionRecord
    failure: dict[str, Any] | None = None
    log: str | None = None
    holder: str | None = None  # the runner that held the execution when the input came

    @property
    def launched(self) -> bool:
        return self.outcome in ("resumed", "failed", "launched")

    @property
    def owner(self) -> str:
        return describe_owner(self.holder or self.record.owner)


def after_input(stack: Stack, exec_id: str, *, confirm_seconds: float | None = None) -> Handover:
    """Once a wait of `exec_id` is answered: see that a runner continues the execution."""
    from .service import launch

    registry = stack.registry
    limit = CONFIRM_SECONDS if confirm_seconds is None else confirm_seconds
    deadline = time.monotonic() + limit
    first = registry.get_execution(exec_id)
    record = first
    while True:
        if ExecutionStatus(record.status).is_finished:
            # Ended meanwhile: the runner that held it took the input (or it was cancelled).
            took = record is not first and first.owner is not None
            return Handover("runner" if took else "ended", record, holder=first.owner)
        if owner_is_alive(record.owner, record.lease_expires):
            if record.status == ExecutionStatus.RUNNING.value or record.version != first.version:
                return Handover("runner", record, holder=first.owner)
        elif record.version == first.version or not _has_pending_wait(stack, exec_id):
            # Nobody holds it (suspended, or its process died): this input starts the resume.
            return launch_and_confirm(record, stack, "resume", launch, deadline=deadline)
        else:
            # It went on and is waiting again (a later wait) with no process: that wait
            # needs its own input, which will launch the resume.
            return Handover("runner", record, holder=first.owner)
        if time.monotonic() >= deadline:
            return Handover("held", record, holder=first.owner)
        time.sleep(_CHECK_SECONDS)
        record = registry.get_execution(exec_id)


def _has_pending_wait(stack: Stack, exec_id: str) -> bool:
    return any(w.status == "pending" for w in stack.registry.get_waits(exec_id))


def launch_and_confirm(
    record: ExecutionRecord, stack: Stack, mode: str, launch: Any, *, deadline: float | None = None
) -> Handover:
    """Launch a resume (or retry) of `record` and wait until its runner takes it or fails."""
    registry = stack.registry
    launch_id = uuid.uuid4().hex
    handle = launch(record, stack, mode, launch_id=launch_id) or {}
    log = handle.get("log")
    deadline = time.monotonic() + CONFIRM_SECONDS if deadline is None else deadline
    exited_seen = 0
    while True:
        now = registry.get_execution(record.exec_id)
        failure = now.failure or {}
        if failure.get("resume_failed") and failure.get("launch") == launch_id:
            return Handover("failed", now, failure=failure, log=failure.get("log") or log)
        runner = now.runner or {}
        if runner.get("launch") == launch_id:
            if runner.get("claimed_at"):  # the launched runner took it (see runners.mark_claimed)
                return Handover("resumed", now, log=log)
            if ExecutionStatus(now.status).is_finished:  # cancelled before it could
                return Handover("ended", now, log=log)
        elif now.owner != record.owner or now.status != record.status:
            # Another process took it first (its runner entry replaced this launch's).
            return Handover("resumed", now, log=log)
        if _exited(handle):
            exited_seen += 1
            if exited_seen > 1:  # read the record once more after the exit: it may just have written
                failure = {
                    "type": "RunnerExited", "resume_failed": True, "launch": launch_id, "log": log,
                    "message": f"the runner exited before it resumed execution {record.exec_id}",
                }
                return Handover("failed", now, failure=failure, log=log)
        if time.monotonic() >= deadline:
            return Handover("launched", now, log=log)
        time.sleep(_CHECK_SECONDS)


def _exited(handle: dict[str, Any]) -> bool:
    """True if the launched runner is a local process that has exited (else unknown: False)."""
    pid = handle.get("pid")
    if not isinstance(pid, int):
        return False
    if process_start_token(pid) is None:
        return True
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it if it has exited
    except ChildProcessError:
        return False
    return waited == pid


def record_resume_failure(stack: Stack, before: ExecutionRecord, exc: BaseException) -> None:
    """Note on the execution that a launched runner could not resume it, and why.

    The execution keeps its status and its answered inputs, so a resume once the
    cause is fixed continues it; `failure` says what happened and where the
    runner's output is, and the error goes to the execution's logs.
    """
    eid = before.exec_id
    log = os.environ.get(Orchestrator.RUNNER_LOG_ENV)
    failure = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc) or type(exc).__name__,
        "traceback": "".join(traceback.format_exception(exc))[-8000:],
        "call_id": None,
        "resume_failed": True,
        "launch": os.environ.get(LAUNCH_ID_ENV),
        "log": log,
        "fix": f"fix the cause, then run `kitaru executions resume {eid}`",
    }
    registry = stack.registry
    registry.update_execution(eid, {"failure": failure}, owner=before.owner,
                              statuses=(before.status,))
    text = (f"[kitaru] the resume of execution {eid} failed: {failure['type'].rsplit('.', 1)[-1]}: "
            f"{failure['message']}\n" + (f"[kitaru] runner log: {log}\n" if log else "")
            + f"[kitaru] {failure['fix']}\n")
    registry.append_logs([LogChunk(eid, None, 0, "stderr", text, time.time())])
