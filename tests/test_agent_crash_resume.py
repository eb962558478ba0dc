"""Agents shaped like Pydantic AI's examples (`e2e_flows/agent_shapes.py`), run under `KitaruAgent`,
SIGKILLed in the middle of a tool call and resumed (`kitaru executions resume`): the output,
the calls that ran live, the usage and the events the handler got all equal an uninterrupted
run of the bare agent."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from e2e_flows import agent_shapes
from e2e_flows.harness import FLOWS, Processes, wait_for_execution

import kitaru
from kitaru import KitaruClient

pytestmark = pytest.mark.slow


def lines(workdir: Path, log: str) -> list[str]:
    path = workdir / log
    return path.read_text().splitlines() if path.exists() else []


def bare_run(shape: str, workdir: Path) -> dict[str, Any]:
    """The shape's agent, not wrapped and never interrupted, in this process."""
    workdir.mkdir()
    agent_shapes.WORKDIR = workdir
    return agent_shapes.SHAPES[shape](wrap=False)


def only_execution() -> str:
    [execution] = KitaruClient().executions.list()
    return execution.exec_id


def start_and_die(procs: Processes, shape: str, workdir: Path, kill_at: str) -> str:
    """Run the shape's flow in a process that SIGKILLs itself at the `kill_at` tool call."""
    proc = procs.python(str(FLOWS / "agent_shapes.py"), shape, str(workdir), cwd=FLOWS,
                        env={"KITARU_TEST_KILL_AT": kill_at})
    code, output = procs.finish(proc)
    assert code == -signal.SIGKILL, output
    return only_execution()


def resume(exec_id: str) -> None:
    """`kitaru executions resume`, here in the test's process (the script's flow is loaded from
    its recorded path, as another shell's resume would): a process start less per case."""
    execution = KitaruClient().executions.resume(exec_id, background=False)
    assert execution.status.value == "completed", execution.failure


def assert_like_an_uninterrupted_run(exec_id: str, expected: dict[str, Any], reference: Path,
                                     workdir: Path) -> None:
    assert kitaru.load(exec_id, "output") == expected
    assert Counter(lines(workdir, "runs.log")) == Counter(lines(reference, "runs.log"))
    assert lines(workdir, "events.log") == lines(reference, "events.log")
    recorded = KitaruClient().executions.get(exec_id).usage
    usage = expected["usage"]
    assert (recorded["model_calls"], recorded["input_tokens"], recorded["output_tokens"]) == (
        usage["requests"], usage["input_tokens"], usage["output_tokens"])


CASES = [
    ("deps_tools", "forecast:2"),  # the 2nd forecast runs beside a geocode (one response)
    ("delegation", "book:1"),  # after find_flight delegated to another agent with usage=ctx.usage
    ("output_validator", "schema:1"),
    ("streaming", "outline:2"),
    ("iter", "measure:2"),
    ("event_handler", "lookup:2"),  # lookups a and b run concurrently
    ("capability", "fact:2"),  # Agent(capabilities=[KitaruDurability(event_stream_handler=...)])
]


@pytest.mark.parametrize(("shape", "kill_at"), CASES)
def test_agent_killed_mid_tool_call_resumes_like_an_uninterrupted_run(shape: str, kill_at: str,
                                                                      tmp_path: Path) -> None:
    expected = bare_run(shape, tmp_path / "bare")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        exec_id = start_and_die(procs, shape, workdir, kill_at)
    tool = kill_at.split(":")[0]
    completed_before = lines(workdir, "runs.log")
    assert completed_before.count(f"tool:{tool}") == int(kill_at.split(":")[1]) - 1

    resume(exec_id)
    assert_like_an_uninterrupted_run(exec_id, expected, tmp_path / "bare", workdir)
    # What completed before the crash came from the record: only the rest ran after it.
    after = Counter(lines(workdir, "runs.log")) - Counter(completed_before)
    assert after[f"tool:{tool}"] >= 1


def test_hitl_agent_answered_then_killed_resumes_like_an_uninterrupted_run(tmp_path: Path) -> None:
    expected = bare_run("hitl", tmp_path / "bare")
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        proc = procs.python(str(FLOWS / "agent_shapes.py"), "hitl", str(workdir), cwd=FLOWS)
        procs.finish(proc)  # suspended at the approve tool: the process left
    exec_id = only_execution()
    pending = KitaruClient().executions.get(exec_id).pending_wait
    assert (pending.name, pending.metadata["args"]) == ("approve", {"reply": "fixed"})

    # The answer resumes the run in the background; that process dies in the next ticket call.
    answered = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", "true",
                       cwd=FLOWS, env={"KITARU_TEST_KILL_AT": "ticket:1"})
    assert answered.returncode == 0, answered.stderr
    wait_for_execution(
        exec_id, lambda e: e.resumable and lines(workdir, "runs.log").count("model:support") == 3,
        "the resumed run to die in its ticket call")
    assert lines(workdir, "runs.log").count("tool:ticket") == 1

    resume(exec_id)
    assert_like_an_uninterrupted_run(exec_id, expected, tmp_path / "bare", workdir)
