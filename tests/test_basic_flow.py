"""A two-checkpoint flow end to end on the local stack."""

from __future__ import annotations

from kitaru import checkpoint, flow
from kitaru.client import ExecutionStatus


@checkpoint
def add(a: int, b: int) -> int:
    print(f"adding {a} and {b}")
    return a + b


@checkpoint
def double(x: int) -> int:
    return x * 2


@flow
def arithmetic(n: int) -> int:
    return double(add(n, 1))


def test_run_returns_handle_with_result(client):
    handle = arithmetic.run(3)
    assert handle.wait() == 8
    assert handle.status is ExecutionStatus.COMPLETED
    execution = client.executions.get(handle.exec_id)
    assert [c.call_id for c in execution.checkpoints] == ["add#1", "double#1"]
    assert all(c.status == "completed" for c in execution.checkpoints)
    assert execution.checkpoints[1].output.load() == 8
    logs = client.executions.logs(handle.exec_id, checkpoint="add")
    assert "adding 3 and 1" in "".join(e.text for e in logs)


def test_checkpoint_outside_flow_is_plain_function():
    assert add(1, 2) == 3
