"""Replay, retry, divergence and cancel through the Python API, in this process."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from conftest import until_suspended

import kitaru
from kitaru import checkpoint, flow, wait
from kitaru.client import ExecutionStatus, ReplaySubmission
from kitaru.errors import (
    ExecutionCancelledError,
    FlowFailedError,
    InvalidStateError,
    KitaruDivergenceError,
    KitaruError,
    WaitInputError,
    WaitTimeoutError,
)

#: Real executions of each checkpoint function.
calls: Counter[str] = Counter()
#: Switches the tests flip to change what the flow code does between runs.
flags = {"fail_publish": False, "flipped": False}


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    flags.update(fail_publish=False, flipped=False)


@checkpoint
def fetch(topic: str) -> str:
    calls["fetch"] += 1
    return f"notes on {topic}"


@checkpoint
def draft(notes: str) -> str:
    calls["draft"] += 1
    return f"draft({notes})"


@checkpoint
def publish(text: str) -> str:
    calls["publish"] += 1
    if flags["fail_publish"]:
        raise RuntimeError("publishing service is down")
    return f"published {text}"


@flow
def pipeline(topic: str) -> str:
    notes = fetch(topic)
    text = draft(notes)
    return publish(text).load()


def _original(topic: str = "agents") -> str:
    handle = pipeline.run(topic)
    assert handle.wait() == f"published draft(notes on {topic})"
    calls.clear()
    return handle.exec_id


# -- replay ------------------------------------------------------------------------------


@pytest.mark.parametrize("at", ["draft", "draft#1"])
def test_replay_reuses_calls_before_at_and_runs_the_rest_live(at, client):
    original = _original()
    handle = pipeline.replay(original, at=at)
    assert handle.exec_id != original
    assert handle.wait() == "published draft(notes on agents)"
    assert calls == {"draft": 1, "publish": 1}
    replayed = client.executions.get(handle.exec_id)
    assert replayed.original_exec_id == original
    assert replayed.status is ExecutionStatus.COMPLETED
    by_id = {c.call_id: c for c in replayed.checkpoints}
    assert list(by_id) == ["fetch#1", "draft#1", "publish#1"]
    assert by_id["fetch#1"].attempts == 0
    assert by_id["fetch#1"].output.metadata["replayed_from"] == original
    assert by_id["draft#1"].attempts == 1


def test_replay_leaves_the_original_untouched(client):
    original = _original()
    before = client.executions.get(original)
    pipeline.replay(original, at="fetch").wait()
    after = client.executions.get(original)
    assert after.status is ExecutionStatus.COMPLETED
    assert [(c.call_id, c.status, c.output.load()) for c in after.checkpoints] == [
        (c.call_id, c.status, c.output.load()) for c in before.checkpoints
    ]


def test_replay_with_a_checkpoint_override(client):
    original = _original()
    handle = pipeline.replay(original, at="publish", checkpoint_overrides={"draft": {"output": "edited"}})
    assert handle.wait() == "published edited"
    assert calls == {"publish": 1}
    draft_call = client.executions.get(handle.exec_id).checkpoints[1]
    assert draft_call.output.load() == "edited"
    assert draft_call.output.metadata["override"] is True
    # the override value is recorded with the replay, the original is left as it was
    assert [a.name for a in client.artifacts.list(handle.exec_id) if a.name.startswith("override:")] == [
        "override:draft"
    ]
    assert not [a for a in client.artifacts.list(original) if a.name.startswith("override:")]


def test_an_override_after_at_replaces_that_call_too():
    original = _original()
    handle = pipeline.replay(original, at="fetch", checkpoint_overrides={"draft#1": {"output": "fixed"}})
    assert handle.wait() == "published fixed"
    assert calls == {"fetch": 1, "publish": 1}


def test_replay_with_a_flow_override():
    original = _original("agents")
    handle = pipeline.replay(original, at="fetch", flow_overrides={"topic": "robots"})
    assert handle.wait() == "published draft(notes on robots)"
    assert calls == {"fetch": 1, "draft": 1, "publish": 1}


def test_client_replay_returns_a_submission(client):
    original = _original()
    submission = client.executions.replay(original, at="publish", wait=True)
    assert isinstance(submission, ReplaySubmission)
    result = submission.results[0]
    assert result.original_exec_id == original
    replayed = client.executions.get(result.replay_exec_id)
    assert replayed.status is ExecutionStatus.COMPLETED
    assert replayed.original_exec_id == original
    assert kitaru.load(replayed.exec_id, "output") == "published draft(notes on agents)"
    assert calls == {"publish": 1}
    assert submission.to_dict() == {"results": [
        {"original_exec_id": original, "replay_exec_id": result.replay_exec_id, "error": None}
    ]}


def test_client_replay_of_several_executions(client):
    first, second = _original("a"), _original("b")
    submission = client.executions.replay(
        [first, second], at="draft", checkpoint_overrides={"fetch": {"output": "same notes"}},
        wait=True,
    )
    outputs = [kitaru.load(r.replay_exec_id, "output") for r in submission.results]
    assert outputs == ["published draft(same notes)"] * 2
    assert [r.original_exec_id for r in submission.results] == [first, second]


# -- retry ---------------------------------------------------------------------------------


def _failed_run() -> str:
    flags["fail_publish"] = True
    handle = pipeline.run("agents")
    with pytest.raises(FlowFailedError, match="publishing service is down"):
        handle.wait()
    assert calls == {"fetch": 1, "draft": 1, "publish": 1}
    calls.clear()
    return handle.exec_id


def test_retry_continues_a_failed_execution_in_place(client):
    exec_id = _failed_run()
    flags["fail_publish"] = False  # "fix the bug"
    execution = client.executions.retry(exec_id, background=False)
    assert execution.exec_id == exec_id
    assert execution.status is ExecutionStatus.COMPLETED
    assert execution.failure is None
    assert calls == {"publish": 1}
    by_id = {c.call_id: c for c in execution.checkpoints}
    assert [by_id[c].attempts for c in ("fetch#1", "draft#1", "publish#1")] == [1, 1, 2]
    assert by_id["publish#1"].status == "completed"
    assert kitaru.load(exec_id, "output") == "published draft(notes on agents)"
    assert client.executions.list() == [client.executions.list()[0]]  # no new execution


def test_retry_that_fails_again_stays_failed(client):
    exec_id = _failed_run()
    execution = client.executions.retry(exec_id, background=False)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.failure["call_id"] == "publish#1"
    assert calls == {"publish": 1}
    assert execution.checkpoints[2].attempts == 2


@checkpoint
def flaky_step() -> str:
    raise RuntimeError("step failed")


body_fails_first = {"on": False}


@flow
def body_then_step() -> str:
    if body_fails_first["on"]:
        raise ValueError("the flow body itself failed")
    return flaky_step().load()


def test_a_failure_blames_only_a_call_that_failed_in_that_run(client):
    body_fails_first["on"] = False
    handle = body_then_step.run()
    with pytest.raises(FlowFailedError, match="step failed"):
        handle.wait()
    assert client.executions.get(handle.exec_id).failure["call_id"] == "flaky_step#1"
    body_fails_first["on"] = True  # the retry fails in the body, before the step
    execution = client.executions.retry(handle.exec_id, background=False)
    assert execution.status is ExecutionStatus.FAILED
    assert "the flow body itself failed" in execution.failure["message"]
    assert execution.failure["call_id"] is None


def test_retry_of_a_completed_execution_is_refused(client):
    exec_id = _original()
    with pytest.raises(InvalidStateError, match="already completed"):
        client.executions.retry(exec_id, background=False)
    assert client.executions.get(exec_id).status is ExecutionStatus.COMPLETED


# -- divergence ----------------------------------------------------------------------------


@checkpoint
def step_a() -> str:
    calls["step_a"] += 1
    return "a"


@checkpoint
def step_b() -> str:
    calls["step_b"] += 1
    if flags["fail_publish"]:
        raise RuntimeError("b fails")
    return "b"


@flow
def ordered() -> str:
    if flags["flipped"]:
        return step_b().load() + step_a().load()
    return step_a().load() + step_b().load()


def test_retry_with_reordered_code_raises_divergence_naming_both_calls(client):
    flags["fail_publish"] = True
    handle = ordered.run()
    with pytest.raises(FlowFailedError):
        handle.wait()
    flags.update(fail_publish=False, flipped=True)
    calls.clear()
    with pytest.raises(KitaruDivergenceError) as info:
        client.executions.retry(handle.exec_id, background=False)
    message = str(info.value)
    assert "'step_a#1'" in message and "'step_b#1'" in message
    assert calls == {}  # nothing ran: the record is never silently reused or overwritten
    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.failure["type"].endswith("KitaruDivergenceError")
    assert execution.checkpoints[0].call_id == "step_a#1"
    assert execution.checkpoints[0].output.load() == "a"
    # Restoring the old code makes the execution retryable again.
    flags["flipped"] = False
    assert client.executions.retry(handle.exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert calls == {"step_b": 1}


def test_replay_of_reordered_code_fails_with_divergence(client):
    original = ordered.run()
    assert original.wait() == "ab"
    flags["flipped"] = True
    handle = ordered.replay(original.exec_id, at="step_b")
    with pytest.raises(FlowFailedError, match="diverged") as info:
        handle.wait()
    assert isinstance(info.value.__cause__, KitaruDivergenceError)
    assert "'step_a#1'" in str(info.value) and "'step_b#1'" in str(info.value)
    assert client.executions.get(original.exec_id).status is ExecutionStatus.COMPLETED


# -- cancel ---------------------------------------------------------------------------------


@flow
def needs_approval(topic: str) -> str:
    notes = fetch(topic)
    ok = wait(name="approve", question="Publish?", schema=bool, timeout=0)
    return notes.load() if ok else "rejected"




def test_cancel_a_waiting_execution(client):
    handle = needs_approval.run("x")
    until_suspended(handle)
    with pytest.raises(WaitTimeoutError, match="waiting for input"):
        handle.wait(timeout=0.01)
    execution = client.executions.cancel(handle.exec_id)
    assert execution.status is ExecutionStatus.CANCELLED
    assert execution.status.is_finished
    assert execution.ended_at is not None
    with pytest.raises(ExecutionCancelledError):
        handle.wait()
    with pytest.raises(InvalidStateError, match="cancelled"):
        client.executions.resume(handle.exec_id, background=False)
    with pytest.raises(InvalidStateError, match="cancelled"):
        client.executions.retry(handle.exec_id, background=False)
    with pytest.raises(InvalidStateError):
        client.executions.cancel(handle.exec_id)
    with pytest.raises((InvalidStateError, WaitInputError)):
        client.executions.input(handle.exec_id, wait="approve", value=True, resume=False)
    after = client.executions.get(handle.exec_id)
    assert after.status is ExecutionStatus.CANCELLED
    assert after.checkpoints[0].output.load() == "notes on x"


def test_waiting_execution_continues_after_input(client):
    handle = needs_approval.run("x")
    until_suspended(handle)
    client.executions.input(handle.exec_id, wait="approve", value=True, resume=False)
    execution = client.executions.resume(handle.exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert handle.wait() == "notes on x"
    assert calls == {"fetch": 1}


_release = threading.Event()
_entered = threading.Event()


@checkpoint
def long_step() -> str:
    _entered.set()
    assert _release.wait(timeout=10), "test never released the step"
    return "finished anyway"


@flow
def long_flow() -> str:
    return long_step().load()


def test_cancel_a_running_execution_stays_cancelled(client):
    _release.clear()
    _entered.clear()
    handle = long_flow.run()
    assert _entered.wait(timeout=10)
    assert client.executions.cancel(handle.exec_id).status is ExecutionStatus.CANCELLED
    _release.set()  # the step was in flight: it ends and is recorded, the execution stays cancelled
    with pytest.raises(ExecutionCancelledError, match=handle.exec_id):
        handle.wait()
    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.CANCELLED
    assert execution.owner is None
    assert execution.checkpoints[0].status == "completed"


# -- replay across a wait --------------------------------------------------------------------


@flow
def approve_then_publish(topic: str) -> str:
    notes = fetch(topic)
    ok = wait(name="approve", schema=bool, timeout=0)
    return publish(notes).load() if ok else "rejected"


def _approved_run(client) -> str:
    handle = approve_then_publish.run("t")
    until_suspended(handle)
    client.executions.input(handle.exec_id, wait="approve", value=True, resume=False)
    assert client.executions.resume(handle.exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert handle.wait() == "published notes on t"
    calls.clear()
    return handle.exec_id


def test_replay_after_a_wait_reuses_its_answer(client):
    original = _approved_run(client)
    handle = approve_then_publish.replay(original, at="publish")
    assert handle.wait() == "published notes on t"
    assert calls == {"publish": 1}
    replayed = client.executions.get(handle.exec_id)
    assert replayed.waits[0]["status"] == "answered" and replayed.waits[0]["value"] is True


def test_replay_at_a_wait_asks_again(client):
    original = _approved_run(client)
    handle = approve_then_publish.replay(original, at="approve")
    until_suspended(handle)
    assert [w.name for w in client.executions.pending_waits(handle.exec_id)] == ["approve"]
    client.executions.input(handle.exec_id, wait="approve", value=False, resume=False)
    assert client.executions.resume(handle.exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert handle.wait() == "rejected"
    assert calls == {}  # fetch came from the original; publish was not reached


def test_replay_of_a_replay_links_to_its_own_source(client):
    original = _original()
    first = pipeline.replay(original, at="publish")
    first.wait()
    second = pipeline.replay(first.exec_id, at="publish", checkpoint_overrides={"fetch": {"output": "n"}})
    assert second.wait() == "published draft(notes on agents)"  # draft#1 reused: fetch is before `at`
    assert client.executions.get(second.exec_id).original_exec_id == first.exec_id


def test_a_resume_that_cannot_import_the_flow_leaves_the_execution_as_it_was(client):
    def make_flow():
        @flow
        def local_gate() -> bool:  # defined in a function: another process cannot import it
            return wait(name="go", schema=bool, timeout=0)

        return local_gate

    handle = make_flow().run()
    until_suspended(handle)
    client.executions.input(handle.exec_id, wait="go", value=True, resume=False)
    with pytest.raises(KitaruError, match="defined inside a function"):
        client.executions.resume(handle.exec_id, background=False)
    after = client.executions.get(handle.exec_id)
    assert after.status is ExecutionStatus.WAITING and after.owner is None  # not left running
    assert after.waits == [{"name": "go", "status": "answered", "question": None, "value": True}]
