"""Server-side recovery: a background thread that continues executions nobody runs.

Every `ServerSettings.recovery_seconds` it
- runs the runner watchdog (`KitaruClient().executions.recover()`): an execution whose
  launched runner the orchestrator reports ended or lost gets a new one, or fails after
  `KITARU_RUNNER_RELAUNCHES` relaunches;
- resumes, through the stack's orchestrator, every execution `executions.orphaned()` lists
  (running, no launched runner, its owner gone and the owner's lease expired): a
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

if TYPE_CHECKING:
    from kitaru import KitaruClient

log = logging.getLogger("kitaru.server.recovery")
#: Resumes of one execution this server launches before it leaves it to a person.
MAX_ATTEMPTS = 3


@dataclass
class RecoveryLoop:
    """The sweeps of one server process (`start`/`stop` from the app's lifespan)."""

    client: KitaruClient
    interval: float
    #: exec_id -> (attempts, monotonic time before which it is not tried again)
    attempts: dict[str, tuple[int, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sweep(self) -> list[dict[str, Any]]:
        """One pass: what was done, one entry per execution acted on."""
        done: list[dict[str, Any]] = []
        executions = self.client.executions
        for check in executions.recover():
            if check.action != "none":
                done.append(check.to_dict())
        now = time.monotonic()
        found = executions.orphaned()
        self.attempts = {r.exec_id: self.attempts[r.exec_id] for r in found if r.exec_id in self.attempts}
        for record in found:
            tried, not_before = self.attempts.get(record.exec_id, (0, 0.0))
            if tried >= MAX_ATTEMPTS or now < not_before:
                continue
            self.attempts[record.exec_id] = (tried + 1, now + self.interval * 2 ** (tried + 1))
            try:
                executions.resume(record.exec_id)
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
            loop = RecoveryLoop(app.state.kitaru.client, interval)
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()

    return run
