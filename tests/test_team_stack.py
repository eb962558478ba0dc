"""A team's stack: a `postgres` registry and an object store, shared by several machines.

Each "machine" is its own kitaru home (its own stack registrations, no shared files) and its
own process; all they share is the database and the bucket, as a team would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from emulators import EMULATORS, Emulator, store_config

from kitaru import KitaruClient, checkpoint, flow, wait
from kitaru_core.stack import StackStore, clear_stack_cache

NOTES_SIZE = 50_000  # over the registry's inline limit: the output is a blob in the bucket


@checkpoint
def draft(topic: str) -> str:
    return (f"draft on {topic}. " * NOTES_SIZE)[:NOTES_SIZE]


@checkpoint
def publish(text: str, approved: bool) -> dict[str, Any]:
    return {"published": approved, "chars": len(text)}


@flow
def reviewed(topic: str) -> dict[str, Any]:
    text = draft(topic)
    ok = wait(name="approve", question="Publish?", schema=bool, timeout=0)
    return publish(text, ok).load()


def _register(home: Path, name: str, spec: dict[str, Any]) -> None:
    path = home.parent / f"{name}-{home.name}.json"
    path.write_text(json.dumps({"name": name, **spec}))
    StackStore(home).register(path, activate=True)


@pytest.mark.slow
@pytest.mark.parametrize("cloud", sorted(EMULATORS))
def test_a_second_machine_answers_and_resumes_an_execution_of_the_first(
    cloud: str, request: pytest.FixtureRequest, postgres_url: str, tmp_path: Path,
    kitaru_home: Path, monkeypatch: pytest.MonkeyPatch,
):
    emulator: Emulator = request.getfixturevalue(EMULATORS[cloud])
    for name, value in emulator.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KITARU_DB_URL", postgres_url)
    spec = {"registry": {"flavor": "postgres", "config": {"url": "${env:KITARU_DB_URL}"}},
            "artifact_store": {"flavor": cloud, "config": store_config(emulator)},
            "orchestrator": {"flavor": "local"}, "execution_target": {"flavor": "inline"}}
    _register(kitaru_home, "team", spec)
    clear_stack_cache()

    # Machine A starts the flow; it records the draft and suspends at the wait.
    handle = reviewed.run("agents")
    with pytest.raises(Exception, match="approve"):
        handle.wait(timeout=60)
    assert handle.status.value == "waiting"

    # Machine B: another home, another process, the same two settings.
    other = tmp_path / "machine-b"
    _register(other, "team", spec)
    env = {**os.environ, "KITARU_HOME": str(other), "KITARU_STACK": "team"}
    listed = subprocess.run(
        [sys.executable, "-m", "kitaru.cli.main", "executions", "list", "-o", "json"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    assert [e["exec_id"] for e in json.loads(listed.stdout)] == [handle.exec_id]
    answered = subprocess.run(
        [sys.executable, "-m", "kitaru.cli.main", "executions", "input", handle.exec_id[:8],
         "--wait", "approve", "--value", "true", "--no-resume"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert answered.returncode == 0, answered.stderr
    # B resumes it in its own process (the flow's code is this test module's).
    resumed = subprocess.run(
        [sys.executable, "-m", "kitaru.cli.main", "executions", "resume", handle.exec_id],
        capture_output=True, text=True, env=env, timeout=180, cwd=Path(__file__).parent,
    )
    assert resumed.returncode == 0, resumed.stderr

    # A sees the result B recorded, reading B's output blob from the bucket.
    client = KitaruClient()
    execution = client.executions.get(handle.exec_id)
    assert execution.status.value == "completed"
    assert [c.name for c in execution.checkpoints] == ["draft", "publish"]
    assert execution.load_result() == {"published": True, "chars": NOTES_SIZE}
    notes = next(a for a in client.artifacts.list(handle.exec_id, name="draft")
                 if a.direction == "output")
    assert notes.load().startswith("draft on agents.")
    # the database URL stays a reference in the record
    frozen = client._stack.registry.get_execution(handle.exec_id).stack
    assert frozen["registry"]["config"]["url"] == "${env:KITARU_DB_URL}"
