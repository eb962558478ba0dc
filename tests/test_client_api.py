"""`KitaruClient`: the shapes it returns, listing, and answering waits in process."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from conftest import until_suspended
from pydantic import BaseModel

import kitaru
from kitaru import checkpoint, flow, wait
from kitaru.client import (
    Artifact,
    CheckpointCall,
    Execution,
    ExecutionStatus,
    KitaruClient,
    PendingWait,
)
from kitaru.errors import FlowFailedError, InvalidStateError, WaitInputError


class Approval(BaseModel):
    approved: bool
    reviewer: str
    comment: str = ""


@checkpoint
def research(topic: str) -> str:
    return f"brief on {topic}"


@checkpoint
def finalize(brief: str, verdict: str) -> str:
    return f"{brief}: {verdict}"


@checkpoint
def explode() -> None:
    raise ValueError("kaboom")


@flow
def two_steps(topic: str) -> str:
    return finalize(research(topic), "ok").load()


@flow
def exploding(topic: str) -> None:
    research(topic)
    explode()


@flow
def bool_review(topic: str) -> str:
    brief = research(topic)
    ok = wait(name="approve", question="Ship it?", schema=bool, timeout=0,
              metadata={"owner": "team-a"})
    return finalize(brief, "shipped" if ok else "rejected").load()


@flow
def model_review(topic: str) -> str:
    brief = research(topic)
    decision = wait(name="review", question="Review the brief", schema=Approval, timeout=0)
    assert isinstance(decision, Approval)
    verdict = f"{'approved' if decision.approved else 'rejected'} by {decision.reviewer}"
    return finalize(brief, verdict).load()


@flow
def two_gates() -> list:
    first = wait(name="gate", timeout=0)  # no schema: a plain "continue" gate
    second = wait(name="gate", schema=int, timeout=0)
    return [first, second]




# -- ExecutionStatus -------------------------------------------------------------------------


def test_execution_status_members():
    assert [s.name for s in ExecutionStatus] == ["RUNNING", "WAITING", "COMPLETED", "FAILED", "CANCELLED"]
    assert [s.value for s in ExecutionStatus] == ["running", "waiting", "completed", "failed", "cancelled"]
    assert {s for s in ExecutionStatus if s.is_finished} == {
        ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED,
    }
    assert ExecutionStatus("waiting") is ExecutionStatus.WAITING
    assert ExecutionStatus.COMPLETED == "completed"
    assert str(ExecutionStatus.FAILED) == "failed"
    assert kitaru.ExecutionStatus is ExecutionStatus


# -- Execution, CheckpointCall, Artifact --------------------------------------------------------


def test_execution_fields_of_a_completed_run(client):
    handle = two_steps.run("kitaru")
    assert handle.wait() == "brief on kitaru: ok"
    e = client.executions.get(handle.exec_id)
    assert isinstance(e, Execution)
    assert e.exec_id == handle.exec_id
    assert e.flow_name == "two_steps"
    assert e.status is ExecutionStatus.COMPLETED
    assert isinstance(e.started_at, datetime) and isinstance(e.ended_at, datetime)
    assert e.started_at <= e.ended_at
    assert e.started_at.tzinfo is not None
    assert e.pending_wait is None
    assert e.failure is None
    assert e.original_exec_id is None
    assert e.stack_name == "local"
    assert e.resumable is False

    research_call, finalize_call = e.checkpoints
    assert all(isinstance(c, CheckpointCall) for c in e.checkpoints)
    assert (research_call.call_id, research_call.name, research_call.status, research_call.attempts) == (
        "research#1", "research", "completed", 1)
    assert research_call.started_at <= research_call.ended_at
    assert research_call.duration_s is not None and research_call.duration_s >= 0
    arts = {(a.name, a.direction): a for a in finalize_call.artifacts}
    assert set(arts) == {("brief", "input"), ("verdict", "input"), ("finalize", "output")}
    assert all(isinstance(a, Artifact) for a in finalize_call.artifacts)
    assert arts[("brief", "input")].load() == "brief on kitaru"
    assert arts[("verdict", "input")].load() == "ok"
    assert arts[("finalize", "output")].load() == "brief on kitaru: ok"
    assert finalize_call.output is arts[("finalize", "output")]
    # The input that came from research#1's output is the same stored bytes.
    assert arts[("brief", "input")].key == research_call.output.key


def test_to_dict_is_plain_json(client):
    handle = two_steps.run("json")
    handle.wait()
    data = client.executions.get(handle.exec_id).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["status"] == "completed"
    assert data["checkpoints"][0]["call_id"] == "research#1"
    assert data["checkpoints"][0]["artifacts"][-1]["direction"] == "output"
    assert "_stack" not in data["checkpoints"][0]["artifacts"][0]
    assert isinstance(data["started_at"], str)


def test_execution_fields_of_a_failed_run(client):
    handle = exploding.run("x")
    with pytest.raises(FlowFailedError):
        handle.wait()
    e = client.executions.get(handle.exec_id)
    assert e.status is ExecutionStatus.FAILED and e.status.is_finished
    assert e.ended_at is not None
    assert e.failure["call_id"] == "explode#1"
    assert e.failure["type"] == "builtins.ValueError"
    assert e.failure["message"] == "kaboom"
    assert "raise ValueError" in e.failure["traceback"]
    failed = e.checkpoints[1]
    assert (failed.status, failed.output) == ("failed", None)
    assert failed.error["message"] == "kaboom"


# -- list / latest --------------------------------------------------------------------------


def test_list_filters_and_latest(client):
    first = two_steps.run("a")
    first.wait()
    failed = exploding.run("b")
    with pytest.raises(FlowFailedError):
        failed.wait()
    second = two_steps.run("c")
    second.wait()

    assert [e.exec_id for e in client.executions.list()] == [second.exec_id, failed.exec_id, first.exec_id]
    assert [e.exec_id for e in client.executions.list(flow="two_steps")] == [second.exec_id, first.exec_id]
    assert [e.exec_id for e in client.executions.list(status="failed")] == [failed.exec_id]
    assert [e.exec_id for e in client.executions.list(status=ExecutionStatus.COMPLETED, limit=1)] == [
        second.exec_id]
    assert client.executions.list(flow="two_steps", status="failed") == []
    assert client.executions.list(flow="no_such_flow") == []
    # Summaries carry the execution's fields but not its calls; `get` has them.
    summary = client.executions.list(limit=1)[0]
    assert summary.flow_name == "two_steps" and summary.checkpoints == []

    latest = client.executions.latest()
    assert latest.exec_id == second.exec_id
    assert len(latest.checkpoints) == 2
    assert client.executions.latest(flow="exploding").exec_id == failed.exec_id
    assert client.executions.latest(flow="no_such_flow") is None


def test_list_rejects_an_unknown_status(client):
    with pytest.raises(ValueError):
        client.executions.list(status="paused")


def test_empty_registry():
    client = KitaruClient()
    assert client.executions.list() == []
    assert client.executions.latest() is None


# -- waits -------------------------------------------------------------------------------


def test_bool_wait_suspends_then_input_and_resume_in_process(client):
    handle = bool_review.run("launch")
    until_suspended(handle)

    e = client.executions.get(handle.exec_id)
    assert e.status is ExecutionStatus.WAITING and not e.status.is_finished
    assert e.ended_at is None
    assert e.resumable is True
    assert isinstance(e.pending_wait, PendingWait)
    assert e.pending_wait.name == "approve"
    assert e.pending_wait.question == "Ship it?"
    assert e.pending_wait.metadata == {"owner": "team-a"}
    assert e.pending_wait.schema["json_schema"] == {"type": "boolean"}
    assert [w.name for w in client.executions.pending_waits(handle.exec_id)] == ["approve"]
    (listed,) = client.executions.list(status="waiting")
    assert listed.exec_id == handle.exec_id and listed.pending_wait == e.pending_wait
    assert [x.pending_wait for x in client.executions.page().items] == [e.pending_wait]
    summary = listed.to_summary_dict()
    assert summary["pending_wait"]["question"] == "Ship it?"
    assert not set(Execution.SUMMARY_OMITS) & set(summary)

    answered = client.executions.input(handle.exec_id, wait="approve", value=True, resume=False)
    assert answered.status is ExecutionStatus.WAITING  # resume=False: it stays until resumed
    assert answered.pending_wait is None
    assert client.executions.pending_waits(handle.exec_id) == []
    assert [x.pending_wait for x in client.executions.list(status="waiting")] == [None]

    done = client.executions.resume(handle.exec_id, background=False)
    assert done.status is ExecutionStatus.COMPLETED
    assert [c.call_id for c in done.checkpoints] == ["research#1", "finalize#1"]
    assert done.checkpoints[0].attempts == 1  # reused on resume, not run again
    assert done.waits == [{"name": "approve", "status": "answered", "question": "Ship it?",
                           "value": True}]
    assert handle.wait() == "brief on launch: shipped"


def test_wrong_type_input_is_refused_and_the_wait_stays_pending(client):
    handle = bool_review.run("x")
    until_suspended(handle)
    # Strict, as JSON: strings pydantic would leniently read as a bool are refused too.
    for bad in ("maybe", "yes", "true", 1, {"approved": True}, [1]):
        with pytest.raises(WaitInputError, match=r"does not match its schema bool.*still pending"):
            client.executions.input(handle.exec_id, wait="approve", value=bad, resume=False)
    assert [w.name for w in client.executions.pending_waits(handle.exec_id)] == ["approve"]
    assert client.executions.get(handle.exec_id).status is ExecutionStatus.WAITING
    with pytest.raises(WaitInputError, match="no pending wait 'other'; pending: approve"):
        client.executions.input(handle.exec_id, wait="other", value=True, resume=False)
    # A corrected value is then accepted; the wait name may be left out when only one is pending.
    client.executions.input(handle.exec_id, value=False, resume=False)
    with pytest.raises(WaitInputError, match="no pending wait"):
        client.executions.input(handle.exec_id, value=True, resume=False)
    assert client.executions.resume(handle.exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert handle.wait() == "brief on x: rejected"


def test_pydantic_model_wait(client):
    handle = model_review.run("models")
    until_suspended(handle)
    pending = client.executions.pending_waits(handle.exec_id)[0]
    assert pending.schema["ref"] == f"{__name__}:Approval"
    assert set(pending.schema["json_schema"]["properties"]) == {"approved", "reviewer", "comment"}
    with pytest.raises(WaitInputError, match="reviewer: Field required"):
        client.executions.input(handle.exec_id, wait="review", value={"approved": True}, resume=False)
    with pytest.raises(WaitInputError, match="approved"):
        client.executions.input(handle.exec_id, wait="review",
                                value={"approved": "perhaps", "reviewer": "ana"}, resume=False)
    assert client.executions.pending_waits(handle.exec_id)[0].name == "review"
    client.executions.input(handle.exec_id, wait="review",
                            value=Approval(approved=True, reviewer="ana"), resume=False)
    done = client.executions.resume(handle.exec_id, background=False)
    assert done.status is ExecutionStatus.COMPLETED
    assert done.waits[0]["value"] == {"approved": True, "reviewer": "ana", "comment": ""}
    assert handle.wait() == "brief on models: approved by ana"


def test_repeated_waits_are_numbered_and_resume_twice(client):
    handle = two_gates.run()
    until_suspended(handle)
    assert client.executions.get(handle.exec_id).pending_wait.schema == {"kind": "none"}
    client.executions.input(handle.exec_id, wait="gate", value=None, resume=False)
    assert client.executions.resume(handle.exec_id, background=False).status is ExecutionStatus.WAITING
    assert [w.name for w in client.executions.pending_waits(handle.exec_id)] == ["gate#2"]
    with pytest.raises(WaitInputError):
        client.executions.input(handle.exec_id, wait="gate#2", value="seven", resume=False)
    client.executions.input(handle.exec_id, wait="gate#2", value=7, resume=False)
    assert client.executions.resume(handle.exec_id, background=False).status is ExecutionStatus.COMPLETED
    assert handle.wait() == [None, 7]


def test_resume_without_an_answer_suspends_again(client):
    handle = bool_review.run("x")
    until_suspended(handle)
    again = client.executions.resume(handle.exec_id, background=False)
    assert again.status is ExecutionStatus.WAITING
    assert again.pending_wait.name == "approve"
    assert [c.attempts for c in again.checkpoints] == [1]
    with pytest.raises(InvalidStateError, match="waiting for input, not failed"):
        client.executions.retry(handle.exec_id, background=False)
