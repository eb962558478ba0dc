"""The process polling a wait is killed (SIGKILL, SIGTERM); an input given from another
process still continues the execution, with no `kitaru executions resume`. And a
background resume that can't start is recorded where the user looks."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, runs, wait_for_execution, wait_for_status

import kitaru
from kitaru import KitaruClient

pytestmark = pytest.mark.slow


def start_polling(procs: Processes, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """review_flow.py polling its first wait (`approve`) for a minute."""
    proc = procs.python(str(FLOWS / "review_flow.py"), str(workdir), "60", cwd=FLOWS)
    exec_id = procs.wait_for(
        lambda: (workdir / "exec_id").exists() and (workdir / "exec_id").read_text(),
        "the execution to start", watch=proc,
    )

    def polling() -> bool:
        e = KitaruClient().executions.get(exec_id)
        return e.status.value == "waiting" and e.pending_wait is not None and e.owner is not None

    procs.wait_for(polling, "the `approve` wait", watch=proc)
    return proc, exec_id


def shown_as_waiting(exec_id: str) -> dict:
    listed = run_cli("executions", "list", "--status", "waiting", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["exec_id"] == exec_id and row["pending_wait"]["name"] == "approve"
    assert "inputs_artifact" not in row  # a list leaves it empty: not printed as null
    assert "wait 'approve'" in run_cli("executions", "list", env={"COLUMNS": "160"}).stdout
    shown = run_cli("executions", "get", exec_id)
    assert "status    waiting" in shown.stdout and "owner gone" not in shown.stdout
    got = run_cli("executions", "get", exec_id, "-o", "json")
    data = json.loads(got.stdout)
    assert data["status"] == "waiting" and data["pending_wait"]["name"] == "approve"
    return data


def answer_all_and_finish(exec_id: str, workdir: Path) -> None:
    """Answer `approve`: a resume starts by itself; the resumed runner polls the later waits."""
    answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true")
    assert answered.returncode == 0, answered.stderr
    assert "resuming in the background" in answered.stdout
    wait_for_execution(exec_id, lambda e: e.pending_wait is not None
                       and e.pending_wait.name == "edits", "the `edits` wait")
    edits = '{"title": "Notes", "tags": ["k"]}'
    taken = run_cli("executions", "input", exec_id, "--wait", "edits", "--value", edits)
    assert taken.returncode == 0, taken.stderr
    wait_for_execution(exec_id, lambda e: e.pending_wait is not None
                       and e.pending_wait.name == "go", "the `go` wait")
    assert run_cli("executions", "input", exec_id, "--wait", "go").returncode == 0
    assert wait_for_status(exec_id, {"completed", "failed"}).status.value == "completed"
    assert kitaru.load(exec_id, "output") == "published: Notes: Why durable agents matters #k"
    assert runs(workdir) == Counter(write_draft=1, apply_edits=1, publish=1)


def test_sigkill_at_a_wait_then_input_from_another_process_completes(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        proc, exec_id = start_polling(procs, workdir)
        procs.crash(proc)
        # Its owner is gone, yet it is `waiting` (for input), not `running (owner gone)`.
        data = shown_as_waiting(exec_id)
        assert data["resumable"] is True
        answer_all_and_finish(exec_id, workdir)


def test_sigterm_at_a_wait_suspends_cleanly_then_input_completes(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        proc, exec_id = start_polling(procs, workdir)
        proc.send_signal(signal.SIGTERM)
        code, out = procs.finish(proc)
        assert code in (0, -signal.SIGTERM), out
        record = KitaruClient()._stack.registry.get_execution(exec_id)
        assert (record.status, record.owner) == ("waiting", None)  # suspended, let go
        shown_as_waiting(exec_id)
        answer_all_and_finish(exec_id, workdir)


def test_input_then_resume_as_kitaru_0_21_documents_is_harmless(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        proc, exec_id = start_polling(procs, workdir)
        procs.crash(proc)
        assert run_cli("executions", "input", exec_id, "--value", "false").returncode == 0
        again = run_cli("executions", "resume", exec_id)
        assert again.returncode == 0, again.stderr
        assert "already" in again.stdout and "after its input" in again.stdout
        assert wait_for_status(exec_id, {"completed", "failed"}).status.value == "completed"
        assert kitaru.load(exec_id, "output") == "rejected"
        done = run_cli("executions", "resume", exec_id)
        assert done.returncode == 0 and "already completed after its input" in done.stdout
    assert runs(workdir) == Counter(write_draft=1)


BROKEN_AFTER_SUSPEND = '''
import sys
from kitaru import flow, wait


@flow
def gated() -> str:
    return "opened" if wait(name="gate", schema=bool, timeout=0) else "closed"


# One write: print() writes each piece on its own, and the flow's thread may write between.
if __name__ == "__main__":
    sys.stdout.write(f"EXEC {gated.run().exec_id}\\n")
'''


def _exec_id(stdout: str) -> str:
    found = re.search(r"EXEC ([0-9a-f]{32})", stdout)
    assert found, stdout
    return found.group(1)


def test_a_background_resume_that_cannot_import_the_flow_is_recorded(tmp_path: Path) -> None:
    script = tmp_path / "gated_flow.py"
    script.write_text(BROKEN_AFTER_SUSPEND)
    started = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
    assert started.returncode == 0, started.stderr
    exec_id = _exec_id(started.stdout)
    wait_for_status(exec_id, {"waiting"})
    script.write_text(BROKEN_AFTER_SUSPEND + "\ndef broken(:\n")

    answered = run_cli("executions", "input", exec_id, "--value", "true")
    assert answered.returncode == 0, answered.stderr  # the input itself is recorded
    assert "the background resume of execution" in answered.stderr
    assert "SyntaxError" in answered.stderr and "runner log:" in answered.stderr
    assert f"kitaru executions resume {exec_id}" in answered.stderr

    data = json.loads(run_cli("executions", "get", exec_id, "-o", "json").stdout)
    assert data["status"] == "waiting" and data["pending_wait"] is None
    failure = data["failure"]
    assert failure["resume_failed"] and "SyntaxError" in failure["type"]
    assert Path(failure["log"]).exists() and "SyntaxError" in Path(failure["log"]).read_text()
    assert data["waits"][0]["value"] is True  # the answer is kept
    shown = run_cli("executions", "get", exec_id).stdout
    assert "resume failed" in shown and failure["log"] in shown
    assert f"kitaru executions resume {exec_id}" in shown
    logs = run_cli("executions", "logs", exec_id).stdout
    assert "resume of execution" in logs and "SyntaxError" in logs
    failed = run_cli("executions", "resume", exec_id, "--background")
    assert failed.returncode != 0 and "launched" not in failed.stdout
    assert "SyntaxError" in failed.stderr

    # Fixed: a resume picks the recorded answer up.
    script.write_text(BROKEN_AFTER_SUSPEND)
    fixed = run_cli("executions", "resume", exec_id, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert f"execution {exec_id} is completed" in fixed.stdout
    assert kitaru.load(exec_id, "output") == "opened"
    assert KitaruClient().executions.get(exec_id).failure is None


def test_a_flow_defined_in_python_c_warns_and_its_resume_failure_says_why(tmp_path: Path) -> None:
    code = (BROKEN_AFTER_SUSPEND.replace('if __name__ == "__main__":\n    ', ""))
    started = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
    assert started.returncode == 0, started.stderr
    assert "ResumeWarning" in started.stderr and "python -c" in started.stderr
    exec_id = _exec_id(started.stdout)
    wait_for_status(exec_id, {"waiting"})
    answered = run_cli("executions", "input", exec_id, "--value", "true")
    assert "was defined in `python -c`" in answered.stderr
    data = json.loads(run_cli("executions", "get", exec_id, "-o", "json").stdout)
    assert data["failure"]["resume_failed"] and data["status"] == "waiting"
