"""Isolated checkpoints on the local `process` target: each call runs in its own
worker process through the remote protocol (spec.json in, result.json last)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli
from e2e_flows import isolated_flow
from e2e_flows.harness import FLOWS, Processes, runs

from kitaru import KitaruClient
from kitaru.errors import FlowFailedError
from kitaru_core.stack import StackStore

pytestmark = pytest.mark.slow

STACK_FILE = """\
name: isolated
description: local state, every isolated checkpoint in its own process
registry: {flavor: sqlite}
artifact_store: {flavor: local}
orchestrator: {flavor: local}
execution_target: {flavor: process}
"""


def stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "isolated.yaml"
    path.write_text(STACK_FILE)
    return path


def run_billing(procs: Processes, workdir: Path, stack: str) -> dict:
    proc = procs.python(str(FLOWS / "isolated_flow.py"), str(workdir), cwd=FLOWS,
                        env={"KITARU_STACK": stack})
    code, out = procs.finish(proc)
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_isolated_checkpoints_run_in_workers_through_the_protocol(tmp_path: Path) -> None:
    registered = run_cli("stack", "register", str(stack_file(tmp_path)))
    assert registered.returncode == 0, registered.stderr
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        isolated = run_billing(procs, workdir, "isolated")
        local = run_billing(procs, workdir, "local")

    exec_id, result = isolated["exec_id"], isolated["result"]
    assert result["summary"] == {"customer": "ACME", "net": 50.0, "gross": 60.0,
                                 "computed_in": result["summary"]["computed_in"]}
    assert result["formatted"]["text"] == "ACME owes 60.00 EUR"
    # Each isolated call ran in a worker of its own, not in the runner.
    worker_pids = {result["summary"]["computed_in"], result["formatted"]["pid"]}
    assert len(worker_pids) == 2
    assert result["runner_pid"] not in worker_pids

    # The same code on the local stack (inline target) gives the same answer, in-process.
    local_result = local["result"]
    assert local_result["formatted"] == {"text": "ACME owes 60.00 EUR",
                                         "pid": local_result["runner_pid"]}
    assert local_result["summary"] == {**result["summary"],
                                       "computed_in": local_result["runner_pid"]}
    assert runs(workdir)["gather"] == 2  # the inline checkpoint, once per run

    # The protocol's files are in the artifact store; result.json was written last.
    tasks = Path(os.environ["KITARU_HOME"]) / "artifacts" / "tasks" / exec_id
    total_task = tasks / "total-1" / "1"
    spec = json.loads((total_task / "spec.json").read_text())
    assert spec["function"]["module"] == "isolated_flow"
    assert set(spec["inputs"]) == {"invoice", "tax_rate"}
    outcome = json.loads((total_task / "result.json").read_text())
    assert outcome["status"] == "ok"
    blob = Path(os.environ["KITARU_HOME"]) / "artifacts" / "blobs" / outcome["output"]["key"][:2] \
        / outcome["output"]["key"]
    assert (total_task / "result.json").stat().st_mtime_ns >= blob.stat().st_mtime_ns
    # A checkpoint defined inside a function can't be imported: it is shipped by value.
    format_spec = json.loads((tasks / "format_summary-1" / "1" / "spec.json").read_text())
    assert "pickled" in format_spec["function"]
    # The project's code unpacked under the kitaru home, not in a shared temporary folder.
    code = Path(os.environ["KITARU_HOME"]) / "code" / spec["function"]["code_package"]
    assert (code / ".complete").is_file() and (code / "isolated_flow.py").is_file()

    # save() and log() inside the worker land in the record, and so does its output.
    execution = KitaruClient().executions.get(exec_id)
    total_call = next(c for c in execution.checkpoints if c.call_id == "total#1")
    saved = {a.name: a for a in total_call.artifacts if a.direction == "saved"}
    assert saved["breakdown"].load() == {"lines": [12.5, 7.5, 30.0], "tax_rate": 0.2}
    assert total_call.metadata["line_count"] == 3
    # An isolated checkpoint's events are recorded with its result (the worker has no registry).
    [event] = KitaruClient().executions.events(exec_id, checkpoint="total")
    assert (event.kind, event.message, event.data) == (
        "kitaru.checkpoint.progress", "totalled", {"lines": 3, "percent": 1.0})
    assert event.correlation_id == "kitaru.checkpoint:total#1:1"
    assert total_call.output.type_name == "isolated_flow.Summary"  # the script's own class
    logs = KitaruClient().executions.logs(exec_id, checkpoint="total")
    assert "totalling 3 lines for ACME" in "".join(e.text for e in logs)


def test_failing_isolated_checkpoint_is_retried_then_fails_the_execution(tmp_path: Path) -> None:
    StackStore().register(stack_file(tmp_path))
    workdir = tmp_path / "work"
    workdir.mkdir()

    handle = isolated_flow.settle.run(str(workdir), 42.0, stack="isolated")
    with pytest.raises(FlowFailedError, match=r"payment provider unavailable while charging 42\.00"):
        handle.wait(timeout=60)

    assert runs(workdir)["charge_card"] == 2  # the first attempt and one retry, each in a worker
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.status.value == "failed"
    call = execution.checkpoints[0]
    assert (call.call_id, call.status, call.attempts) == ("charge_card#1", "failed", 2)
    assert "ConnectionError" in call.error["type"]
    assert execution.failure["call_id"] == "charge_card#1"
    # Each attempt's worker output is kept once (each attempt is its own task with its own log).
    logs = KitaruClient().executions.logs(handle.exec_id, checkpoint="charge_card")
    worker_output = "".join(e.text for e in logs if e.stream == "stdout")
    assert worker_output.count("ConnectionError: payment provider unavailable") == 2
    notes = "".join(e.text for e in logs if e.stream == "stderr")
    assert notes.count("[kitaru] attempt 1 failed: builtins.ConnectionError") == 1
