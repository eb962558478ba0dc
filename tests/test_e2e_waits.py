"""Waits end to end: a flow script suspends at `wait()`, and inputs given from
other processes (`kitaru executions input`) are validated, recorded and resume it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import run_cli
from e2e_flows.harness import FLOWS, Processes, runs, wait_for_execution, wait_for_status

import kitaru
from kitaru import KitaruClient

pytestmark = pytest.mark.slow


def pending(exec_id: str) -> str | None:
    wait = KitaruClient().executions.get(exec_id).pending_wait
    return wait.name if wait else None


def test_suspended_flow_is_resumed_by_inputs_from_other_processes(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        # Nobody answers within the 0.5 s timeout: the process leaves, the execution waits.
        code, out = procs.finish(procs.python(str(FLOWS / "review_flow.py"), str(workdir), "0.5",
                                              cwd=FLOWS))
    assert code == 0, out
    exec_id = (workdir / "exec_id").read_text()
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status.value == "waiting"
    assert execution.pending_wait.name == "approve"
    assert execution.pending_wait.question == "Publish 'Why durable agents matters'?"

    # A value of the wrong type is refused and changes nothing.
    refused = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", '"maybe"')
    assert refused.returncode != 0
    assert "does not match its schema bool" in refused.stderr
    assert "the wait is still pending" in refused.stderr
    assert pending(exec_id) == "approve"

    # A valid answer resumes the execution in the background, up to the next wait.
    answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true")
    assert answered.returncode == 0, answered.stderr
    assert "resuming in the background" in answered.stdout
    wait_for_execution(exec_id, lambda e: e.status.value == "waiting" and e.pending_wait is not None
                       and e.pending_wait.name == "edits", "the `edits` wait")

    # The `edits` wait takes a pydantic model: a dict without its required field is refused.
    refused = run_cli("executions", "input", exec_id, "--wait", "edits", "--value", '{"x": 1}')
    assert refused.returncode != 0
    assert "title" in refused.stderr
    assert pending(exec_id) == "edits"

    # --no-resume only records the input; `executions resume` continues later.
    edits = '{"title": "Field notes", "tags": ["kitaru", "durability"]}'
    recorded = run_cli("executions", "input", exec_id, "--wait", "edits", "--value", edits,
                       "--no-resume")
    assert recorded.returncode == 0, recorded.stderr
    assert f"kitaru executions resume {exec_id}" in recorded.stdout
    assert KitaruClient().executions.get(exec_id).status.value == "waiting"
    assert pending(exec_id) is None

    resumed = run_cli("executions", "resume", exec_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"execution {exec_id} is waiting" in resumed.stdout
    gate = KitaruClient().executions.get(exec_id).pending_wait
    assert (gate.name, gate.schema) == ("go", {"kind": "none"})

    # A continue gate (schema=None) needs no value.
    opened = run_cli("executions", "input", exec_id, "--wait", "go")
    assert opened.returncode == 0, opened.stderr
    wait_for_status(exec_id, {"completed", "failed"})

    shown = run_cli("executions", "get", exec_id, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    final = json.loads(shown.stdout)
    assert final["status"] == "completed"
    assert [c["call_id"] for c in final["checkpoints"]] == [
        "write_draft#1", "apply_edits#1", "publish#1"
    ]
    assert {w["name"]: w["value"] for w in final["waits"]} == {
        "approve": True, "edits": {"title": "Field notes", "tags": ["kitaru", "durability"]},
        "go": None,
    }
    assert kitaru.load(exec_id, "output") == (
        "published: Field notes: Why durable agents matters #kitaru #durability"
    )
    # Three runners took part; every checkpoint body ran exactly once.
    assert runs(workdir) == Counter(write_draft=1, apply_edits=1, publish=1)


def test_input_while_the_flow_still_polls_is_taken_by_that_process(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        flow_proc = procs.python(str(FLOWS / "review_flow.py"), str(workdir), "60", cwd=FLOWS)
        exec_id = procs.wait_for(
            lambda: (workdir / "exec_id").exists() and (workdir / "exec_id").read_text(),
            "the execution to start", watch=flow_proc,
        )
        procs.wait_for(lambda: pending(exec_id) == "approve", "the `approve` wait", watch=flow_proc)

        answered = run_cli("executions", "input", exec_id, "--value", "false")
        assert answered.returncode == 0, answered.stderr
        assert f"the runner holding it (process {flow_proc.pid} on" in answered.stdout
        assert "took it" in answered.stdout

        code, out = procs.finish(flow_proc)
    assert code == 0, out
    assert KitaruClient().executions.get(exec_id).status.value == "completed"
    assert kitaru.load(exec_id, "output") == "rejected"
    assert runs(workdir) == Counter(write_draft=1)
