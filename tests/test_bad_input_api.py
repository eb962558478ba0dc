"""Misuse of the Python API gets a typed error with a useful message, and the
records already written stay as they were."""

from __future__ import annotations

import pytest

import kitaru
from kitaru import checkpoint, flow, wait
from kitaru.client import ExecutionStatus
from kitaru.errors import (
    ArtifactNotFoundError,
    ConfigError,
    ContextError,
    ExecutionNotFoundError,
    FlowFailedError,
    InvalidStateError,
    KitaruError,
    StackNotFoundError,
    WaitInputError,
)


@checkpoint
def first(x: int) -> int:
    return x + 1


@checkpoint
def second(x: int) -> int:
    return x * 2


@flow
def good(x: int) -> int:
    return second(first(x)).load()


@flow
def other_flow(x: int) -> int:
    return first(x).load()


def _snapshot(client, exec_id: str) -> tuple:
    """What must not change: status, each call with its status and output, the result."""
    e = client.executions.get(exec_id)
    calls = [(c.call_id, c.status, c.attempts, c.output.load() if c.output else None)
             for c in e.checkpoints]
    return e.status, e.original_exec_id, calls, kitaru.load(exec_id, "output")


@pytest.fixture
def recorded(client) -> tuple[str, tuple]:
    """A completed execution, and its snapshot to compare against after the misuse."""
    handle = good.run(3)
    assert handle.wait() == 8
    return handle.exec_id, _snapshot(client, handle.exec_id)


def _assert_intact(client, recorded: tuple[str, tuple]) -> None:
    exec_id, snapshot = recorded
    assert _snapshot(client, exec_id) == snapshot
    assert [e.exec_id for e in client.executions.list()] == [exec_id]


# -- primitives in the wrong place --------------------------------------------------------


@checkpoint
def waits_inside() -> bool:
    return wait(name="nope", schema=bool, timeout=0)


@flow
def wait_in_checkpoint() -> bool:
    return waits_inside().load()


@checkpoint
def nests() -> int:
    return first(1)


@flow
def nested_checkpoint() -> int:
    return nests().load()


@checkpoint
def starts_a_flow() -> int:
    return good.run(1).wait()


@flow
def flow_in_checkpoint() -> int:
    return starts_a_flow().load()


@flow
def flow_in_flow() -> int:
    return good.run(1).wait()


@flow
def saves_in_body() -> None:
    kitaru.save("x", 1)


@pytest.mark.parametrize(
    ("the_flow", "call_id", "words"),
    [
        (wait_in_checkpoint, "waits_inside#1", "wait() is not allowed inside a checkpoint"),
        (nested_checkpoint, "nests#1", "'first' was called inside checkpoint 'nests#1'"),
        (flow_in_checkpoint, "starts_a_flow#1", "flows do not nest"),
        (flow_in_flow, None, "flows do not nest"),
        (saves_in_body, None, "must be called inside a @checkpoint"),
    ],
    ids=["wait-in-checkpoint", "nested-checkpoint", "flow-in-checkpoint", "flow-in-flow",
         "save-in-body"],
)
def test_primitive_in_the_wrong_place_fails_with_context_error(the_flow, call_id, words, client):
    handle = the_flow.run()
    with pytest.raises(FlowFailedError) as info:
        handle.wait()
    cause = info.value.__cause__
    assert isinstance(cause, ContextError)
    assert words in str(cause)
    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.failure["type"].endswith("ContextError")
    assert execution.failure["call_id"] == call_id
    if call_id is not None:
        failed = next(c for c in execution.checkpoints if c.call_id == call_id)
        assert (failed.status, failed.attempts) == ("failed", 1)
    # Only the flow that was started exists; a nested run never started.
    assert [e.exec_id for e in client.executions.list()] == [handle.exec_id]


def test_primitives_outside_any_flow():
    with pytest.raises(ContextError, match="inside a running @flow"):
        wait(name="x")
    with pytest.raises(ContextError, match="inside a @checkpoint"):
        kitaru.save("x", 1)
    with pytest.raises(ContextError, match="inside a flow or a checkpoint"):
        kitaru.log(tokens=1)


# -- unknown ids ----------------------------------------------------------------------------


def test_unknown_execution_id_everywhere(client, recorded):
    missing = "0123456789abcdef0123456789abcdef"
    operations = {
        "get": lambda: client.executions.get(missing),
        "logs": lambda: client.executions.logs(missing),
        "pending_waits": lambda: client.executions.pending_waits(missing),
        "input": lambda: client.executions.input(missing, wait="w", value=1, resume=False),
        "resume": lambda: client.executions.resume(missing, background=False),
        "retry": lambda: client.executions.retry(missing, background=False),
        "cancel": lambda: client.executions.cancel(missing),
        "replay": lambda: client.executions.replay(missing, at="first", wait=True),
        "flow.replay": lambda: good.replay(missing, at="first"),
        "artifacts.list": lambda: client.artifacts.list(missing),
        "kitaru.load": lambda: kitaru.load(missing, "output"),
    }
    for what, operation in operations.items():
        with pytest.raises(ExecutionNotFoundError, match=missing) as info:
            operation()
        assert "kitaru executions list" in str(info.value), what
    _assert_intact(client, recorded)


def test_unknown_artifact_id(client):
    with pytest.raises(ArtifactNotFoundError, match="no artifact 'nope-nope'"):
        client.artifacts.get("nope-nope")


# -- bad replay arguments ----------------------------------------------------------------------


def test_replay_at_naming_no_checkpoint(client, recorded):
    exec_id, _ = recorded
    with pytest.raises(KitaruError, match=r"'third' names no checkpoint call.*first#1, second#1"):
        good.replay(exec_id, at="third")
    with pytest.raises(KitaruError, match="names no checkpoint call"):
        client.executions.replay(exec_id, at="first#2", wait=True)
    _assert_intact(client, recorded)


def test_replay_override_naming_an_unknown_checkpoint(client, recorded):
    exec_id, _ = recorded
    with pytest.raises(KitaruError, match=r"override 'third' names no checkpoint.*first, second"):
        good.replay(exec_id, at="second", checkpoint_overrides={
            "first": {"output": 100},  # valid, but must not be written when another is not
            "third": {"output": 1},
        })
    _assert_intact(client, recorded)
    assert [a.name for a in client.artifacts.list(exec_id) if a.name.startswith("override:")] == []


def test_replay_override_with_the_wrong_shape(client, recorded):
    exec_id, _ = recorded
    with pytest.raises(KitaruError, match=r"must be \{'output': value\}"):
        good.replay(exec_id, at="second", checkpoint_overrides={"first": {"value": 100}})
    with pytest.raises(KitaruError, match=r"must be \{'output': value\}"):
        good.replay(exec_id, at="second", checkpoint_overrides={"first": 100})
    _assert_intact(client, recorded)


def test_replay_flow_override_naming_an_unknown_parameter(client, recorded):
    exec_id, _ = recorded
    with pytest.raises(KitaruError, match="'y' is not a parameter of flow 'good'; its parameters: x"):
        good.replay(exec_id, at="first", flow_overrides={"y": 1},
                    checkpoint_overrides={"second": {"output": 0}})
    with pytest.raises(KitaruError, match="'y' is not a parameter"):
        client.executions.replay(exec_id, at="first", flow_overrides={"y": 1}, wait=True)
    _assert_intact(client, recorded)
    assert [a.name for a in client.artifacts.list(exec_id) if a.name.startswith("override:")] == []


def test_replay_with_another_flow_is_refused(client, recorded):
    exec_id, _ = recorded
    with pytest.raises(KitaruError, match="run of flow 'good', not 'other_flow'"):
        other_flow.replay(exec_id, at="first")
    _assert_intact(client, recorded)


# -- operations in the wrong state -------------------------------------------------------------


def test_operations_a_completed_execution_refuses(client, recorded):
    exec_id, _ = recorded
    with pytest.raises(InvalidStateError, match="already completed"):
        client.executions.resume(exec_id, background=False)
    with pytest.raises(InvalidStateError, match="already completed"):
        client.executions.retry(exec_id, background=False)
    with pytest.raises(InvalidStateError, match="only running or waiting"):
        client.executions.cancel(exec_id)
    with pytest.raises(InvalidStateError, match="completed"):
        client.executions.input(exec_id, wait="w", value=1, resume=False)
    _assert_intact(client, recorded)


@checkpoint
def always_fails() -> None:
    raise RuntimeError("broken")


@flow
def failing() -> None:
    always_fails()


def test_resume_of_a_failed_execution_points_to_retry(client):
    handle = failing.run()
    with pytest.raises(FlowFailedError, match="kitaru executions retry"):
        handle.wait()
    with pytest.raises(InvalidStateError, match=f"kitaru executions retry {handle.exec_id}"):
        client.executions.resume(handle.exec_id, background=False)
    with pytest.raises(WaitInputError, match="no pending wait"):
        client.executions.input(handle.exec_id, value=1, resume=False)
    assert client.executions.get(handle.exec_id).status is ExecutionStatus.FAILED


# -- bad options ------------------------------------------------------------------------------


def test_bad_decorator_and_configure_options():
    with pytest.raises(ConfigError, match="retries=-1"):
        checkpoint(retries=-1)(lambda: None)
    with pytest.raises(ConfigError, match=r"runtime='gpu'.*inline, isolated"):
        checkpoint(runtime="gpu")(lambda: None)
    with pytest.raises(ConfigError, match="retries='2'"):
        flow(retries="2")(lambda: None)
    with pytest.raises(ConfigError, match="configure"):
        kitaru.configure(retries=-1)
    assert kitaru.configure().retries is None  # the refused value changed nothing


def test_unknown_stack_is_refused_before_anything_is_recorded(client):
    with pytest.raises(StackNotFoundError, match="no stack named 'nowhere'"):
        good.run(1, stack="nowhere")
    assert client.executions.list() == []
