"""The runner watchdog's decisions, on the local stack with a stand-in for the orchestrator's
launch and poll (no process is started): what it relaunches, what it leaves alone, when it
gives up, and that watchdogs racing over the same lost runner relaunch it once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kitaru import KitaruClient
from kitaru_core.interfaces import TaskState
from kitaru_core.records import ExecutionRecord, WaitRecord
from kitaru_core.runtime import service, watchdog
from kitaru_core.runtime.artifacts import new_id
from kitaru_core.runtime.runners import LAUNCH_ID_ENV, record_intent
from kitaru_core.stack import Stack, get_stack


class FakeOrchestrator:
    """Stands in for the local orchestrator's launch/poll/cancel: counts and scripts them."""

    def __init__(self, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
        self.launched: list[tuple[str, dict[str, str]]] = []
        self.cancelled: list[dict[str, Any]] = []
        self.states: dict[int, TaskState] = {}
        self._lock = threading.Lock()
        orch = stack.orchestrator
        monkeypatch.setattr(orch, "launch", self.launch)
        monkeypatch.setattr(orch, "poll", self.poll)
        monkeypatch.setattr(orch, "cancel", self.cancelled.append)

    def launch(self, exec_id: str, *, command: list[str], env: dict[str, str], cwd: str | None) -> dict:
        with self._lock:
            self.launched.append((exec_id, env))
            pid = 1000 + len(self.launched)
        time.sleep(0.05)  # a real launch takes a while: racing watchdogs overlap here
        return {"pid": pid, "start": "1", "log": f"/logs/{exec_id}-{pid}.log"}

    def poll(self, handle: dict[str, Any]) -> TaskState:
        return self.states.get(handle["pid"], TaskState("running"))


@pytest.fixture
def stack() -> Stack:
    return get_stack()


@pytest.fixture
def orchestrator(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> FakeOrchestrator:
    return FakeOrchestrator(stack, monkeypatch)


def launched_execution(
    stack: Stack, *, status: str = "running", handle: dict[str, Any] | None = None,
    relaunches: int = 0, launched_ago: float = 1.0, owner: str | None = None, claimed: bool = True,
) -> ExecutionRecord:
    """An execution whose runner was launched `launched_ago` seconds ago with `handle`."""
    now = time.time()
    record = ExecutionRecord(
        exec_id=new_id(), flow_name="pipeline", status=status, stack=stack.spec,
        flow_ref={"module": "app", "qualname": "pipeline"}, owner=owner,
        lease_expires=now + 30 if owner else None, created_at=now, started_at=now,
    )
    stack.registry.create_execution(record)
    runner = {"launch": "first", "handle": handle, "mode": "resume", "launched_at": now - launched_ago,
              "launches": 1 + relaunches, "relaunches": relaunches,
              "claimed_at": now if claimed else None}
    assert stack.registry.update_execution(record.exec_id, {"runner": runner})
    return stack.registry.get_execution(record.exec_id)


def test_a_lost_runner_is_relaunched_once_when_watchdogs_race(
    stack: Stack, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.states[7] = TaskState("lost", "the runner process is gone")
    record = launched_execution(stack, handle={"pid": 7, "start": "1", "log": "/logs/first.log"})
    checks: list[watchdog.RunnerCheck] = []
    barrier = threading.Barrier(4)

    def look() -> None:
        barrier.wait()
        checks.append(watchdog.check(stack, record))

    threads = [threading.Thread(target=look) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(c.action for c in checks) == ["none", "none", "none", "relaunched"]
    assert len(orchestrator.launched) == 1
    relaunched = next(c for c in checks if c.action == "relaunched")
    assert "lost" in relaunched.reason and relaunched.relaunches == 1
    after = stack.registry.get_execution(record.exec_id)
    runner = after.runner
    assert (runner["launches"], runner["relaunches"], runner["claimed_at"]) == (2, 1, None)
    assert runner["handle"]["pid"] == 1001  # the new runner's handle is recorded
    # The relaunch's id is deterministic (exec id, launch number) and is what the runner is told.
    assert orchestrator.launched[0][1][LAUNCH_ID_ENV] == runner["launch"] != "first"
    assert "relaunched it (relaunch 1)" in "".join(c.text for c in stack.registry.get_logs(record.exec_id))


def test_after_the_limit_the_execution_fails_with_the_reason_and_the_runner_log(
    stack: Stack, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.states[7] = TaskState("failed", "exit code 137")
    record = launched_execution(stack, handle={"pid": 7, "start": "1", "log": "/logs/runner.log"},
                                relaunches=2)
    check = watchdog.check(stack, record, relaunch_limit=2)
    assert check.action == "failed" and not orchestrator.launched
    after = stack.registry.get_execution(record.exec_id)
    assert (after.status, after.owner) == ("failed", None) and after.ended_at
    failure = after.failure
    assert failure["type"].endswith("RunnerLostError")
    assert "failed (exit code 137)" in failure["message"] and "after 2 relaunches" in failure["message"]
    assert failure["log"] == "/logs/runner.log" and "/logs/runner.log" in failure["message"]
    assert f"kitaru executions retry {record.exec_id}" in failure["fix"]
    assert "gave up" in "".join(c.text for c in stack.registry.get_logs(record.exec_id))


def test_what_the_watchdog_leaves_alone(stack: Stack, orchestrator: FakeOrchestrator) -> None:
    orchestrator.states[7] = TaskState("lost")
    lost = {"pid": 7, "start": "1"}
    # A live owner holds it (this very process).
    owned = launched_execution(stack, handle=lost, owner=service.self_owner())
    assert watchdog.check(stack, owned).reason == "its runner holds it"
    # Waiting for input (a pending wait): the runner suspended as it should.
    waiting = launched_execution(stack, status="waiting", handle=lost)
    stack.registry.create_wait(WaitRecord(waiting.exec_id, "go", 1, "pending", created_at=time.time()))
    assert watchdog.check(stack, waiting).reason == "waiting for input"
    # Its runner suspended at a wait, whose answer came later with `input --no-resume`.
    answered_later = launched_execution(stack, status="waiting", handle=lost, launched_ago=60)
    stack.registry.create_wait(WaitRecord(answered_later.exec_id, "go", 1, "pending",
                                          created_at=time.time()))
    stack.registry.answer_wait(answered_later.exec_id, "go", True)
    assert "without a resume" in watchdog.check(stack, answered_later).reason
    # Ran (last) in a process the user started: not the watchdog's to continue.
    mine = launched_execution(stack, handle=lost)
    stack.registry.update_execution(mine.exec_id, {"runner": None})
    assert "no launched runner" in watchdog.check(stack, stack.registry.get_execution(mine.exec_id)).reason
    # Its runner said why it could not resume: another would fail alike.
    refused = launched_execution(stack, handle=lost)
    stack.registry.update_execution(refused.exec_id, {"failure": {"resume_failed": True, "launch": "first"}})
    assert "could not resume" in watchdog.check(stack, stack.registry.get_execution(refused.exec_id)).reason
    # Finished executions.
    done = launched_execution(stack, status="completed", handle=lost)
    assert watchdog.check(stack, done).action == "none"
    # Its runner still runs, or starts (within the grace period), or is being launched.
    orchestrator.states[8] = TaskState("running")
    orchestrator.states[9] = TaskState("pending", "ContainerCreating")
    running = launched_execution(stack, handle={"pid": 8})
    assert watchdog.check(stack, running).reason == "its runner is running"
    starting = launched_execution(stack, handle={"pid": 9}, claimed=False)
    assert watchdog.check(stack, starting, grace_seconds=60).reason == "its runner is starting"
    launching = launched_execution(stack, handle=None, claimed=False)
    assert watchdog.check(stack, launching, grace_seconds=60).reason == "its runner is being launched"
    assert not orchestrator.launched and not orchestrator.cancelled


def test_a_runner_that_never_starts_is_cancelled_and_replaced_after_the_grace_period(
    stack: Stack, orchestrator: FakeOrchestrator
) -> None:
    orchestrator.states[9] = TaskState("pending", "ImagePullBackOff")
    record = launched_execution(stack, handle={"pid": 9}, launched_ago=120, claimed=False)
    check = watchdog.check(stack, record, grace_seconds=60)
    assert check.action == "relaunched" and "not started within 60 s" in check.reason
    assert orchestrator.cancelled == [{"pid": 9}]  # it must not start later beside its replacement
    # A launch whose launcher stopped before recording a handle counts as never started too.
    orphan = launched_execution(stack, handle=None, launched_ago=120, claimed=False)
    assert watchdog.check(stack, orphan, grace_seconds=60).action == "relaunched"
    assert len(orchestrator.launched) == 2


def test_a_launch_a_person_asks_for_resets_the_relaunch_count(stack: Stack) -> None:
    record = launched_execution(stack, handle={"pid": 7}, relaunches=3)
    runner = record_intent(stack, record, "resume")
    assert runner is not None and (runner["launches"], runner["relaunches"]) == (5, 0)
    # A watchdog's relaunch is a compare-and-set on the version it read: stale, it does nothing.
    assert record_intent(stack, record, "resume", relaunch=True, expected_version=record.version) is None


def test_the_launched_runner_notes_its_claim_and_a_foreground_claim_clears_the_runner(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = launched_execution(stack, handle={"pid": 7}, claimed=False)
    monkeypatch.setenv(LAUNCH_ID_ENV, "first")
    claimed = service.claim(stack, record.exec_id)
    assert claimed.owner == service.self_owner() and claimed.runner["claimed_at"]
    other = launched_execution(stack, handle={"pid": 7}, claimed=False)
    monkeypatch.delenv(LAUNCH_ID_ENV)
    assert service.claim(stack, other.exec_id).runner is None  # `kitaru executions resume` in a terminal


def test_a_claim_that_loses_only_to_a_handle_write_tries_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = launched_execution(stack, handle=None, claimed=False)
    registry = stack.registry
    real = registry.claim_execution
    calls = []

    def claim_after_a_handle_write(exec_id: str, **kwargs: Any) -> bool:
        if not calls:  # the launcher records the handle between the runner's read and its claim
            registry.update_execution(exec_id, {"runner": {**record.runner, "handle": {"pid": 7}}})
        calls.append(kwargs["expected_version"])
        return real(exec_id, **kwargs)

    monkeypatch.setattr(registry, "claim_execution", claim_after_a_handle_write)
    claimed = service.claim(stack, record.exec_id)
    assert calls == [record.version, record.version + 1]
    assert claimed.owner == service.self_owner()


def test_list_get_and_recover_run_the_watchdog(
    stack: Stack, orchestrator: FakeOrchestrator, cli: Any
) -> None:
    orchestrator.states[7] = TaskState("lost")
    client = KitaruClient()
    listed = launched_execution(stack, handle={"pid": 7})
    assert [e.runner["relaunches"] for e in client.executions.list() if e.exec_id == listed.exec_id] == [1]
    got = launched_execution(stack, handle={"pid": 7})
    shown = client.executions.get(got.exec_id)
    assert shown.runner["relaunches"] == 1 and shown.runner["handle"]["log"]
    one = launched_execution(stack, handle={"pid": 7})
    result = cli("executions", "recover", one.exec_id)
    assert result.exit_code == 0, result.stderr
    assert f"{one.exec_id}: its runner is lost" in result.stdout
    assert "relaunched (relaunch 1)" in result.stdout
    again = cli("executions", "recover", "--all", "-o", "json")
    assert again.exit_code == 0 and all(c["action"] == "none" for c in again.json())
    refused = cli("executions", "recover")
    assert refused.exit_code != 0 and "--all" in refused.stderr
    assert len(orchestrator.launched) == 3


def test_a_version_6_registry_file_gains_the_runner_column(tmp_path: Any) -> None:
    import sqlite3

    from kitaru_local.configs import SqliteRegistryConfig
    from kitaru_local.sqlite_registry import SCHEMA_VERSION, SqliteRegistry

    from kitaru_core.interfaces import ComponentContext

    context = ComponentContext(tmp_path, "local")
    SqliteRegistry(SqliteRegistryConfig(), context).close()
    with sqlite3.connect(tmp_path / "kitaru.db") as conn:  # back to the version-6 layout
        conn.execute("ALTER TABLE executions DROP COLUMN runner")
        conn.execute("PRAGMA user_version=6")
    reopened = SqliteRegistry(SqliteRegistryConfig(), context)
    record = ExecutionRecord(exec_id=new_id(), flow_name="f", status="running", created_at=1.0)
    reopened.create_execution(record)
    assert reopened.update_execution(record.exec_id, {"runner": {"launch": "x"}}, expected_version=0)
    assert reopened.get_execution(record.exec_id).runner == {"launch": "x"}
    assert reopened._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    reopened.close()


def test_waiting_on_a_flow_handle_runs_the_watchdog(
    stack: Stack, orchestrator: FakeOrchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kitaru.flows as flows
    from kitaru_core.errors import WaitTimeoutError

    monkeypatch.setattr(flows, "_WATCH_SECONDS", 0.0)
    orchestrator.states[7] = TaskState("lost")
    record = launched_execution(stack, handle={"pid": 7})
    with pytest.raises(WaitTimeoutError, match="still running"):
        flows.FlowHandle(record.exec_id, stack).wait(timeout=0.5)
    assert len(orchestrator.launched) == 1  # relaunched once; the new runner (a stand-in) runs
