"""Server-side recovery: a background thread that continues executions nobody runs.

Every `ServerSettings.recovery_seconds` it
- runs the runner watchdog (`kitaru_core.runtime.watchdog.sweep`): an execution whose
  launched runner the orchestrator reports ended or lost gets a new one, or fails after
  `KITARU_RUNNER_RELAUNCHES` relaunches;
- resumes, through the stack's orchestrator, every `running` execution that no launched
  runner is responsible for, whose owner is gone and whose owner's lease expired: a
  `flow.run()` whose process was killed. An execution whose last
  resume failed with a recorded reason is left alone (fix the cause, then resume it); one
  whose resume could not be launched is tried again after a back-off, at most
  `MAX_ATTEMPTS` times per server process.

Several servers on one registry may sweep at once: the runner a resume launches takes the
execution by compare-and-set, so at most one continues it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kitaru_core.runtime import service, watchdog
from kitaru_core.runtime.owner import owner_is_alive
from kitaru_core.status import ExecutionStatus

if TYPE_CHECKING:
    from kitaru_core.records import ExecutionRecord
    from kitaru_core.stack import Stack

log = logging.getLogger("kitaru.server.recovery")
#: Resumes of one execution this server launches before it leaves it to a person.
MAX_ATTEMPTS = 3


#: Seconds a running execution created without an owner (for a launcher to claim) is left
#: to its launcher before the server treats it as orphaned.
UNCLAIMED_GRACE_SECONDS = 60.0


def orphaned(record: ExecutionRecord, now: float | None = None) -> bool:
    """A running execution with no launched runner whose owner is gone and whose owner's
    lease expired, and whose last resume recorded no reason it cannot continue.

    The lease (`KITARU_LEASE_SECONDS`, 30 s by default), not the owner's death alone: a
    person who saw the runner crash has that long to resume it themselves first.
    """
    if record.status != ExecutionStatus.RUNNING.value or record.runner is not None:
        return False
    now = time.time() if now is None else now
    if owner_is_alive(record.owner, record.lease_expires, now):
        return False
    if record.owner is None:
        expired = now - (record.created_at or 0.0) >= UNCLAIMED_GRACE_SECONDS
    else:
        expired = record.lease_expires is None or record.lease_expires <= now
    return expired and not (record.failure or {}).get("resume_failed")


@dataclass
class RecoveryLoop:
    """The sweeps of one server process (`start`/`stop` from the app's lifespan)."""

    stack: Stack
    interval: float
    #: exec_id -> (attempts, monotonic time before which it is not tried again)
    attempts: dict[str, tuple[int, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sweep(self) -> list[dict[str, Any]]:
        """One pass: what was done, one entry per execution acted on."""
        done: list[dict[str, Any]] = []
        for check in watchdog.sweep(self.stack):
            if check.action != "none":
                done.append(check.to_dict())
        now = time.monotonic()
        found = [r for r in self.stack.registry.list_executions(status=ExecutionStatus.RUNNING.value)
                 if orphaned(r)]
        self.attempts = {r.exec_id: self.attempts[r.exec_id] for r in found if r.exec_id in self.attempts}
        for record in found:
            tried, not_before = self.attempts.get(record.exec_id, (0, 0.0))
            if tried >= MAX_ATTEMPTS or now < not_before:
                continue
            self.attempts[record.exec_id] = (tried + 1, now + self.interval * 2 ** (tried + 1))
            try:
                service.resume_background(self.stack, record.exec_id, mode="resume")
            except Exception as exc:  # recorded on the execution when the runner said why
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                log.warning("could not resume execution %s: %s", record.exec_id, reason)
                done.append({"exec_id": record.exec_id, "action": "error", "reason": reason})
            else:
                log.info("resumed execution %s: its owner is gone", record.exec_id)
                done.append({"exec_id": record.exec_id, "action": "resumed",
                             "reason": "its owner is gone and no runner was launched for it"})
        return done

    def _run(self) -> None:
        while not self._stop.is_set():  # the first sweep at once: a restarted server catches up
            try:
                self.sweep()
            except Exception:  # the registry may be away for a while: try again next time
                log.exception("recovery sweep failed")
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kitaru-recovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def lifespan(interval: float) -> Any:
    """The app's lifespan: the recovery loop runs while the server serves (`interval` 0: never)."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def run(app: Any) -> Any:
        loop = None
        if interval > 0:
            loop = RecoveryLoop(app.state.kitaru.stack, interval)
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()

    return run
