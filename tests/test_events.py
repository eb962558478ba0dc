"""Live events as in Kitaru 0.21: `kitaru.progress(...)` and `kitaru.events.publish(...)`,
recorded with the call, visible while it runs (`executions.events`, `logs --follow`)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

import kitaru
from kitaru import checkpoint, flow
from kitaru.events import InvalidEventError

#: Released by a test to let a blocked checkpoint finish.
gate = threading.Event()
runs: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    gate.clear()
    runs.clear()


def _until(found: Any, what: str, timeout: float = 30) -> Any:
    """Poll `found()` until it returns something truthy (a generous safety deadline only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}")


@checkpoint
def build_report(topic: str) -> str:
    kitaru.progress("Collecting notes", percent=0.25, topic=topic)
    kitaru.events.publish("training.batch.completed", {"batch": 1, "rows": 10},
                          message="First batch finished")
    kitaru.progress("Writing draft", percent=0.75)
    return f"Report: {topic}"


@flow
def report_flow(topic: str) -> str:
    kitaru.progress("starting", step=1)
    return build_report(topic).load()


def test_events_are_recorded_with_the_call_in_order(client):
    handle = report_flow.run("agents")
    assert handle.wait() == "Report: agents"
    events = list(client.executions.events(handle.exec_id))
    assert [(e.kind, e.checkpoint_name, e.message) for e in events] == [
        ("kitaru.flow.progress", None, "starting"),
        ("kitaru.checkpoint.progress", "build_report", "Collecting notes"),
        ("training.batch.completed", "build_report", "First batch finished"),
        ("kitaru.checkpoint.progress", "build_report", "Writing draft"),
    ]
    first, batch = events[1], events[2]
    assert first.data == {"topic": "agents", "percent": 0.25}
    assert batch.data == {"batch": 1, "rows": 10}
    assert batch.payload["kitaru"] == {
        "source": "kitaru", "execution_id": handle.exec_id, "checkpoint_id": "build_report#1",
        "checkpoint_name": "build_report", "checkpoint_type": None,
        "correlation_id": "kitaru.checkpoint:build_report#1:1",
    }
    assert {e.correlation_id for e in events[1:]} == {"kitaru.checkpoint:build_report#1:1"}
    assert [e.index for e in events[1:]] == [0, 1, 2]
    # The same events are child events of the call in the execution's record.
    call = client.executions.get(handle.exec_id).checkpoints[0]
    assert list(call.events) == ["progress#1", "training.batch.completed#1", "progress#2"]


def test_filters_and_cursor(client):
    handle = report_flow.run("robots")
    handle.wait()
    executions = client.executions
    kinds = [e.message for e in executions.events(handle.exec_id, kinds=["kitaru.checkpoint.progress"])]
    assert kinds == ["Collecting notes", "Writing draft"]
    assert len(list(executions.events(handle.exec_id, checkpoint="build_report#1"))) == 3
    assert list(executions.events(handle.exec_id, correlation_ids=["nope"])) == []
    everything = list(executions.events(handle.exec_id))
    after = list(executions.events(handle.exec_id, since=everything[1].cursor))
    assert [e.event_id for e in after] == [e.event_id for e in everything[2:]]


@checkpoint
def long_step(n: int) -> int:
    kitaru.progress("halfway", percent=0.5)
    assert gate.wait(60), "the test never released the gate"
    print("after the gate")
    return n


@flow
def long_flow(n: int) -> int:
    return long_step(n).load()


def _call_status(client: Any, exec_id: str) -> str | None:
    calls = client._stack.registry.get_calls(exec_id)
    return calls[0].status if calls else None


def test_events_are_visible_while_the_checkpoint_runs(client):
    handle = long_flow.run(1)
    try:
        seen = _until(lambda: list(client.executions.events(handle.exec_id, follow=False)),
                      "the progress event of the running checkpoint")
        assert [e.message for e in seen] == ["halfway"]
        assert _call_status(client, handle.exec_id) == "running"  # not ended: still blocked
    finally:
        gate.set()
    assert handle.wait() == 1
    assert len(list(client.executions.events(handle.exec_id))) == 1  # recorded once


def test_follow_yields_events_as_they_come_and_ends_with_the_execution(client):
    handle = long_flow.run(2)
    got: list[Any] = []

    def follow() -> None:
        got.extend(client.executions.events(handle.exec_id, poll_interval=0.05))

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        _until(lambda: got, "the followed event")
        assert follower.is_alive()  # still following: the execution is running
    finally:
        gate.set()
    follower.join(60)
    assert not follower.is_alive() and [e.message for e in got] == ["halfway"]
    assert handle.wait() == 2


@checkpoint
def quiet_step(n: int) -> int:
    kitaru.log(rows=n)  # metadata, not an event: written with the call's record, as before
    assert gate.wait(60)
    return n


@flow
def quiet_flow(n: int) -> int:
    return quiet_step(n).load()


def test_a_checkpoint_that_publishes_nothing_writes_nothing_while_it_runs(client, monkeypatch):
    registry = client._stack.registry
    writes: list[int] = []
    original = registry.add_metadata
    monkeypatch.setattr(registry, "add_metadata", lambda entries: (writes.append(len(entries)),
                                                                   original(entries)))
    handle = quiet_flow.run(3)
    try:
        # The ticker writes a long call's `running` record and its live events in the same
        # tick: once the record is there, a tick has passed.
        _until(lambda: _call_status(client, handle.exec_id) == "running", "the running record")
        assert writes == []
    finally:
        gate.set()
    assert handle.wait() == 3
    assert writes == []
    assert client.executions.get(handle.exec_id).checkpoints[0].metadata == {"rows": 3}


@checkpoint(retries=1, retry_delay=0.01)
def flaky_step() -> str:
    runs["flaky_step"] += 1
    kitaru.progress(f"attempt {runs['flaky_step']}")
    kitaru.events.flush()
    if runs["flaky_step"] == 1:
        raise ConnectionError("first attempt fails")
    return "ok"


@flow
def flaky_flow() -> str:
    return flaky_step().load()


def test_each_attempt_has_its_own_correlation_id(client):
    handle = flaky_flow.run()
    assert handle.wait() == "ok"
    events = list(client.executions.events(handle.exec_id))
    assert [(e.message, e.correlation_id) for e in events] == [
        ("attempt 1", "kitaru.checkpoint:flaky_step#1:1"),
        ("attempt 2", "kitaru.checkpoint:flaky_step#1:2"),
    ]


def test_outside_any_flow_publishing_does_nothing(client):
    assert build_report("plain") == "Report: plain"  # a checkpoint called as a function
    assert kitaru.progress("nobody listens") is None
    assert kitaru.events.flush() is True
    assert client.executions.list() == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda: kitaru.events.publish("end"), "reserved"),
    (lambda: kitaru.events.publish(" "), "non-empty"),
    (lambda: kitaru.events.publish("a\nb"), "one line"),
    (lambda: kitaru.events.publish("x", correlation_id=" "), "correlation_id"),
    (lambda: kitaru.events.publish("x", ["not", "a", "mapping"]), "mapping"),
    (lambda: kitaru.events.publish("x", index=-1), "index"),
    (lambda: kitaru.progress(""), "non-empty"),
    (lambda: kitaru.progress("x", percent=2), "from 0 to 1"),
])
def test_bad_events_are_refused(call, message):
    with pytest.raises(InvalidEventError, match=message):
        call()


def test_logs_follow_prints_events_while_the_checkpoint_runs(client, cli):
    handle = long_flow.run(4)

    def release_once_recorded() -> None:
        _until(lambda: list(client.executions.events(handle.exec_id, follow=False)), "the event")
        gate.set()

    releaser = threading.Thread(target=release_once_recorded)
    releaser.start()
    try:
        result = cli("executions", "logs", handle.exec_id, "--follow")
    finally:
        releaser.join(60)
        gate.set()
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    event = lines.index("[long_step#1] * progress 50%: halfway")
    assert lines.index("[long_step#1] after the gate") > event
    shown = cli("executions", "get", handle.exec_id)
    assert "halfway" in shown.stdout
