"""The hand-over between a runner polling a wait and the input that answers it.

Either the polling runner takes the answer, or it had already let go and the input
launches a resume: an answer is never left without a runner. These run in process
with short timeouts; answers are timed around the end of the poll timeout, where a
runner that suspends and an input that arrives race.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from kitaru import flow, wait
from kitaru.errors import WaitTimeoutError
from kitaru_core.runtime import service, waits
from kitaru_core.stack import get_stack

POLL = 0.01
RESUMER = "resumer-host:4242:1"
TIMEOUT = 0.05


@flow
def gate(timeout: float) -> str:
    answer = wait(name="go", question="Go?", schema=bool, timeout=timeout)
    return f"taken: {answer}"


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Resumes that inputs launched (recorded, not started: the invariant is what counts)."""
    launched: list[str] = []

    def fake_launch(record: Any, stack: Any, mode: str, **_: Any) -> dict[str, Any]:
        # A runner elsewhere that takes the execution over at once.
        launched.append(record.exec_id)
        assert stack.registry.claim_execution(
            record.exec_id, owner=RESUMER, lease_expires=time.time() + 60,
            expected_version=record.version,
        )
        return {}

    monkeypatch.setattr(service, "launch", fake_launch)
    monkeypatch.setattr(waits, "_POLL_SECONDS", POLL)
    return launched


def _wait_seen(stack: Any, exec_id: str) -> float:
    """The moment the execution's wait is recorded (its poll timeout runs from about here)."""
    deadline = time.monotonic() + 30
    while not stack.registry.get_waits(exec_id):
        assert time.monotonic() < deadline, "the wait was never recorded"
        time.sleep(0.001)
    return time.monotonic()


def test_answers_timed_around_the_suspension_are_never_lost(launches: list[str]) -> None:
    stack = get_stack()
    rng = random.Random(7)
    lost, taken, resumed = [], 0, 0
    for _ in range(40):
        handle = gate.run(TIMEOUT)
        seen = _wait_seen(stack, handle.exec_id)
        # Aimed at the end of the poll timeout, a few polls either side of it.
        time.sleep(max(0.0, seen + TIMEOUT + rng.uniform(-3 * POLL, 3 * POLL) - time.monotonic()))
        _, name, launched = service.provide_input(stack, handle.exec_id, "go", True)
        assert name == "go"
        assert handle._run.join(30)
        record = stack.registry.get_execution(handle.exec_id)
        if record.status == "completed":
            assert not launched, "the runner took the answer and a resume was launched too"
            assert handle.wait() == "taken: True"
            taken += 1
        elif launched:
            assert (record.status, record.owner) == ("running", RESUMER)
            resumed += 1
        else:
            lost.append((record.status, record.owner))
    assert not lost, f"{len(lost)} of 40 answers were left without a runner: {lost[:3]}"
    assert len(launches) == resumed and taken + resumed == 40


def test_status_is_waiting_while_the_runner_polls_and_running_once_it_takes_the_answer(
    launches: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = get_stack()
    handle = gate.run(60)
    _wait_seen(stack, handle.exec_id)
    deadline = time.monotonic() + 30
    while (record := stack.registry.get_execution(handle.exec_id)).status != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert record.owner is not None  # still polling in this process
    from kitaru import KitaruClient

    shown = KitaruClient().executions.get(handle.exec_id)
    assert shown.status.value == "waiting" and shown.pending_wait.name == "go"
    assert [e.exec_id for e in KitaruClient().executions.list(status="waiting")] == [handle.exec_id]

    statuses: list[str] = []
    original = stack.registry.update_execution

    def spy(exec_id: str, fields: dict[str, Any], **kw: Any) -> bool:
        if "status" in fields:
            statuses.append(fields["status"])
        return original(exec_id, fields, **kw)

    original_outcome = stack.registry.record_outcome

    def spy_outcome(exec_id: str, fields: dict[str, Any], *args: Any, **kw: Any) -> bool:
        statuses.append(fields["status"])  # a finished run's status
        return original_outcome(exec_id, fields, *args, **kw)

    monkeypatch.setattr(stack.registry, "update_execution", spy)
    monkeypatch.setattr(stack.registry, "record_outcome", spy_outcome)
    _, _, launched = service.provide_input(stack, handle.exec_id, "go", False)
    assert not launched
    assert handle.wait(30) == "taken: False"
    assert statuses == ["running", "completed"]
    assert launches == []


def test_a_runner_whose_wait_is_answered_as_it_suspends_keeps_the_execution(
    launches: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer lands between the runner's last poll and its suspension: the suspension
    is refused (the wait is no longer pending) and the runner takes the answer."""
    stack = get_stack()
    registry = stack.registry
    original = registry.suspend_at_wait
    answered = threading.Event()

    def answer_first(exec_id: str, *, owner: str, wait_name: str) -> bool:
        if not answered.is_set():
            answered.set()
            assert registry.answer_wait(exec_id, wait_name, True)
        return original(exec_id, owner=owner, wait_name=wait_name)

    monkeypatch.setattr(registry, "suspend_at_wait", answer_first)
    handle = gate.run(TIMEOUT)
    assert handle.wait(30) == "taken: True"
    assert answered.is_set()
    assert launches == []


def test_a_handle_wait_that_ends_at_a_wait_says_which_wait_is_pending(launches: list[str]) -> None:
    stack = get_stack()
    handle = gate.run(60)
    _wait_seen(stack, handle.exec_id)
    with pytest.raises(WaitTimeoutError, match=(
        rf"execution {handle.exec_id} is waiting for input at wait 'go' \(Go\?\) after 0.05s; "
        rf"answer it with `kitaru executions input {handle.exec_id} --wait go --value JSON`"
    )):
        handle.wait(timeout=0.05)
    service.provide_input(stack, handle.exec_id, "go", True)
    assert handle.wait(30) == "taken: True"
