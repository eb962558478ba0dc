"""The examples in examples/ run as the README says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_cli

EXAMPLES = REPO / "examples"


def _python(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, cwd=cwd,
        env=os.environ.copy(), timeout=120,
    )


@pytest.mark.slow
def test_hello_and_replay_examples(tmp_path):
    hello = _python("hello_flow.py", tmp_path)
    assert hello.returncode == 0, hello.stderr
    assert "Summary: three facts about durable agents." in hello.stdout

    replay = _python("replay_with_override.py", tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert "original: 2 sections based on: notes with a factual error" in replay.stdout
    assert "replay:   2 sections based on: corrected notes" in replay.stdout
    assert replay.stdout.count("planning (runs once") == 1


@pytest.mark.slow
def test_approval_example_is_answered_from_another_process(tmp_path):
    # The id goes to a file: on stdout, the flow's own print (from its thread) can land in
    # the middle of the line that carries it.
    id_file = tmp_path / "exec_id"
    proc = subprocess.run(
        [sys.executable, "-c",
         "import pathlib, sys; sys.path.insert(0, sys.argv[1]); import approval_flow as a; "
         "pathlib.Path(sys.argv[2]).write_text(a.publish_post.run('agents', timeout=0).exec_id)",
         str(EXAMPLES), str(id_file)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    exec_id = id_file.read_text()

    def status() -> dict:
        out = run_cli("executions", "get", exec_id, "-o", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def until(predicate, what: str) -> dict:
        deadline = time.monotonic() + 60
        while True:
            data = status()
            if predicate(data):
                return data
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {data}"
            time.sleep(0.2)

    until(lambda d: d["status"] == "waiting", "the approve wait")
    assert run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true").returncode == 0
    # Right after the first answer the execution is still `waiting` with no pending wait.
    until(lambda d: d["status"] == "waiting" and (d["pending_wait"] or {}).get("name") == "edits",
          "the edits wait")
    edits = json.dumps({"title": "Short", "tags": ["agents"]})
    assert run_cli("executions", "input", exec_id, "--wait", "edits", "--value", edits).returncode == 0
    done = until(lambda d: d["status"] in ("completed", "failed"), "completion")
    assert done["status"] == "completed", done
    assert [c["call_id"] for c in done["checkpoints"]] == ["draft#1", "publish#1"]


@pytest.mark.slow
def test_progress_example_retries_the_flow_and_prints_events_live(tmp_path):
    run = _python("progress_flow.py", tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line.split(" {")[0] for line in lines[:5]] == [
        *(f"[crunch#1] kitaru.checkpoint.progress: batch {n} of 4" for n in range(1, 5)),
        "[crunch#1] crunch.done: all batches crunched",
    ]
    assert lines[5] == "uploaded 1000 rows"
    assert lines[6] == ("options: {'retries': 1, 'cache': False, "
                        "'image': {'base_image': 'python:3.12-slim'}}")
