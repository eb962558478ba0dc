"""A resumed execution continues on the stack frozen into its record, not the caller's."""

from __future__ import annotations

import os
import textwrap
import time

from kitaru import checkpoint, flow, wait
from kitaru_core.stack import StackStore


@checkpoint(runtime="isolated")
def where() -> int:
    return os.getpid()


@flow
def gated() -> int:
    wait(name="go", schema=None, timeout=0)
    return where()


def test_resume_uses_the_recorded_stack(tmp_path, client):
    spec = tmp_path / "proc.yaml"
    spec.write_text(textwrap.dedent("""
        name: proc
        execution_target: {flavor: process}
    """))
    StackStore().register(spec)  # same registry and artifacts as `local`, other target
    handle = gated.run(stack="proc")
    deadline = time.monotonic() + 30
    while handle.status.value != "waiting":
        assert time.monotonic() < deadline, "the flow never suspended at its wait"
        time.sleep(0.02)

    client.executions.input(handle.exec_id, wait="go", value=None, resume=False)
    # The client is on the active `local` stack (inline target) ...
    done = client.executions.resume(handle.exec_id, background=False)
    assert done.status.value == "completed"
    # ... but the isolated call ran on the recorded stack's process target.
    assert done.checkpoints[0].output.load() != os.getpid()
    assert done.stack_name == "proc"
