"""In an interactive terminal a local run asks for a wait's input at the prompt."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _read_until(fd: int, needle: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"did not see {needle!r}; output so far: {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.slow
def test_wait_prompts_in_a_terminal_and_records_the_answer(client):
    master, slave = os.openpty()
    env = {**os.environ, "KITARU_INTERACTIVE": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "prompt_flows" / "approve_at_prompt.py")],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )
    os.close(slave)
    try:
        _read_until(master, b"Ship the draft?")
        os.write(master, b"maybe\n")  # not a bool: refused, asked again
        _read_until(master, b"does not match its schema")
        os.write(master, b"y\n")
        out = _read_until(master, b"RESULT:")
        out += _read_until(master, b"\n")
        assert b"a draft shipped" in out
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(master)
    execution = client.executions.latest(flow="prompted")
    assert execution.status.value == "completed"
    assert execution.waits == [
        {"name": "approve", "status": "answered", "question": "Ship the draft?", "value": True}
    ]
