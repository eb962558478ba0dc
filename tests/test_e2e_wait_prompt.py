"""The interactive wait prompt: end of input (Ctrl-D) and Ctrl-C suspend the execution
(`waiting`, its wait pending, its process gone) instead of failing it."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest
from e2e_flows.harness import wait_for_status

from kitaru import KitaruClient

pytestmark = pytest.mark.slow

PROMPT_FLOW = '''
import sys
from kitaru import flow, wait


@flow
def asked() -> str:
    return "yes" if wait(name="ok", question="Proceed?", schema=bool, timeout=600) else "no"


if __name__ == "__main__":
    handle = asked.run()
    # One write: the flow's thread may write its prompt at the same moment (print writes each
    # piece on its own, and the prompt once landed between "EXEC" and the id).
    sys.stdout.write(f"EXEC {handle.exec_id}\\n")
    sys.stdout.flush()
    if sys.argv[1] == "wait":
        print("RESULT", handle.wait(), flush=True)
'''


def run_at_a_terminal(script: Path, mode: str, keys: bytes) -> tuple[str, str]:
    """Run `script` with a terminal; once it prompts, type `keys`; (exec id, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of its own, kitaru allowed to prompt
        os.environ["KITARU_INTERACTIVE"] = "1"
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a test runner's worker may ignore it
        os.execv(sys.executable, [sys.executable, str(script), mode])
    out = b""
    deadline = time.monotonic() + 60
    try:
        while b"Proceed?" not in out:
            out += _read(fd, deadline, out)
        os.write(fd, keys)
        while True:
            try:
                chunk = _read(fd, deadline, out)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    found = re.search(r"EXEC ([0-9a-f]{32})", text)
    assert found, f"the prompt flow printed no execution id; its output:\n{text}"
    return found.group(1), text


def _read(fd: int, deadline: float, so_far: bytes) -> bytes:
    ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, f"the prompt flow did not answer in time; its output:\n{so_far!r}"
    return os.read(fd, 4096)


@pytest.mark.parametrize(("mode", "keys"), [("exit", b"\x04"), ("wait", b"\x03")],
                         ids=["ctrl-d", "ctrl-c"])
def test_ctrl_d_and_ctrl_c_at_the_prompt_suspend(tmp_path: Path, mode: str, keys: bytes) -> None:
    script = tmp_path / "asked_flow.py"
    script.write_text(PROMPT_FLOW)
    exec_id, out = run_at_a_terminal(script, mode, keys)
    assert "suspending execution" in out, out
    record = KitaruClient()._stack.registry.get_execution(exec_id)
    assert (record.status, record.owner, record.failure) == ("waiting", None, None), out
    assert KitaruClient().executions.get(exec_id).pending_wait.name == "ok"
    from conftest import run_cli

    assert run_cli("executions", "input", exec_id, "--value", "true").returncode == 0
    assert wait_for_status(exec_id, {"completed", "failed"}).status.value == "completed"
