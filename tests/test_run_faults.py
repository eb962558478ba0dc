"""Registry faults while a flow runs: the execution ends failed, or resumable, never stuck
`running` under a live owner; the run's own error is what the caller sees."""

from __future__ import annotations

import sqlite3

import pytest
from kitaru_local.sqlite_registry import SqliteRegistry

from kitaru import KitaruClient, checkpoint, flow
from kitaru.client import ExecutionStatus
from kitaru_core.errors import FlowFailedError
from kitaru_core.runtime import service

calls: list[str] = []


@checkpoint
def step(name: str) -> str:
    calls.append(name)
    return f"did {name}"


@flow
def two_steps() -> str:
    return step("one").load() + ", " + step("two").load()


def _fail_on(monkeypatch, method: str, *, when=lambda *a, **k: True, times: int = 1) -> list[int]:
    """Make `SqliteRegistry.<method>` raise a DatabaseError `times` times where `when` holds."""
    real = getattr(SqliteRegistry, method)
    left = [times]

    def broken(self, *args, **kwargs):
        if left[0] > 0 and when(*args, **kwargs):
            left[0] -= 1
            raise sqlite3.DatabaseError(f"injected into {method}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SqliteRegistry, method, broken)
    return left


def _result(exec_id: str) -> str:
    e = KitaruClient().executions.get(exec_id)
    assert e.status.value == "completed", e.failure
    return e.result_artifact.load()


def _state(exec_id: str) -> tuple[str, bool]:
    e = KitaruClient().executions.get(exec_id)
    return e.status.value, e.resumable


def test_recording_a_call_fails_then_the_execution_is_failed_and_retry_finishes_it(monkeypatch):
    calls.clear()
    with monkeypatch.context() as m:
        _fail_on(m, "save_call", when=lambda call, *a, **k: call.call_id == "step#2"
                 and call.status == "completed")
        handle = two_steps.run()
        with pytest.raises(FlowFailedError, match="injected into save_call"):
            handle.wait()
    assert _state(handle.exec_id) == ("failed", False)
    KitaruClient().executions.retry(handle.exec_id, background=False)
    assert _result(handle.exec_id) == "did one, did two"
    assert calls == ["one", "two", "two"]  # only the call whose record was lost ran again


def test_recording_the_failure_fails_too_then_the_execution_is_resumable(monkeypatch):
    calls.clear()
    with monkeypatch.context() as m:
        _fail_on(m, "save_call", when=lambda call, *a, **k: call.call_id == "step#2"
                 and call.status == "completed")
        # The outcome (a finished run's status) is recorded by `record_outcome`.
        _fail_on(m, "record_outcome", when=lambda exec_id, fields, *a, **k: "status" in fields)
        handle = two_steps.run()
        with pytest.raises(FlowFailedError, match="injected into save_call"):
            handle.wait()
    status, resumable = _state(handle.exec_id)
    assert (status, resumable) == ("running", True)  # owner given up: shown as resumable
    service.resume_here(service.environment_stack(), handle.exec_id)
    assert _result(handle.exec_id) == "did one, did two"


def test_reading_the_record_fails_as_a_retry_starts_then_it_is_failed_not_running(monkeypatch):
    # A run started here reads nothing back (it has just written its record); a retry or
    # resume starts by reading the calls recorded so far.
    calls.clear()
    with monkeypatch.context() as m:
        _fail_on(m, "save_call", when=lambda call, *a, **k: call.call_id == "step#2"
                 and call.status == "completed")
        handle = two_steps.run()
        with pytest.raises(FlowFailedError):
            handle.wait()
    with monkeypatch.context() as m:
        reads = _fail_on(m, "get_calls")
        KitaruClient().executions.retry(handle.exec_id, background=False)
    assert reads == [0]  # the injected failure was met: the retry's first read of its record
    e = KitaruClient().executions.get(handle.exec_id)
    assert e.status.value == ExecutionStatus.FAILED.value
    assert "injected into get_calls" in str(e.failure)
    KitaruClient().executions.retry(handle.exec_id, background=False)
    assert _result(handle.exec_id) == "did one, did two"
