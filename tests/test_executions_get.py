"""`kitaru executions get`: the flow's inputs and result, `kitaru.log` metadata, and a calls
table that stays short for an execution of thousands of calls (`--calls all` shows all)."""

from __future__ import annotations

import json
import re
import time

import pytest

import kitaru
from kitaru import checkpoint, flow
from kitaru.cli import execution_view
from kitaru_core.records import ArtifactRecord, CallRecord, ExecutionRecord, MetadataEntry
from kitaru_core.runtime.artifacts import new_id


@checkpoint
def research(topic: str) -> str:
    kitaru.log(tokens=812, source="[bold]web[/bold]")
    return f"notes on {topic}"


@flow
def review(topic: str, depth: int = 1) -> str:
    kitaru.log(reviewer="ada")
    return research(topic).load() * depth


def test_get_shows_inputs_result_and_logged_metadata(cli):
    handle = review.run("agents", depth=2)
    handle.wait()
    shown = cli("executions", "get", handle.exec_id)
    assert shown.exit_code == 0, shown
    lines = shown.stdout.splitlines()
    assert any(re.fullmatch(r'\s+inputs\s+\("agents", depth=2\)', line) for line in lines)
    assert any(re.fullmatch(r'\s+result\s+"notes on agentsnotes on agents"', line) for line in lines)
    assert any(re.fullmatch(r'\s+metadata\s+\{"reviewer": "ada"\}', line) for line in lines)
    assert "metadata logged in checkpoints" in shown.stdout
    row = next(line for line in lines if "tokens" in line)
    assert "research#1" in row and "812" in row
    assert '"[bold]web[/bold]"' in shown.stdout  # a value is text, never rich markup


def test_long_values_are_previews_and_full_shows_them_whole(cli):
    long_topic = "x" * 500
    handle = review.run(long_topic)
    handle.wait()
    preview = cli("executions", "get", handle.exec_id)
    inputs = next(line for line in preview.stdout.splitlines() if line.strip().startswith("inputs"))
    assert "…" in inputs and "(504 chars)" in inputs and long_topic not in inputs
    full = cli("executions", "get", handle.exec_id, "--full")
    assert long_topic in full.stdout and f"notes on {long_topic}" in full.stdout


def test_json_has_inputs_and_result_previews_and_full_values(cli):
    handle = review.run("agents", depth=2)
    handle.wait()
    data = cli("executions", "get", handle.exec_id, "-o", "json").json()
    assert data["inputs"]["preview"] == '("agents", depth=2)'
    assert data["result"]["preview"] == json.dumps("notes on agents" * 2)
    assert data["result"]["type_name"] == "str" and "value" not in data["result"]
    assert data["metadata"] == {"reviewer": "ada"}
    assert data["checkpoints"][0]["metadata"]["tokens"] == 812
    full = cli("executions", "get", handle.exec_id, "-o", "json", "--full").json()
    assert full["inputs"]["value"] == {"args": ["agents"], "kwargs": {"depth": 2}}
    assert full["result"]["value"] == "notes on agents" * 2


def test_the_client_loads_inputs_and_result(client):
    handle = review.run("agents")
    handle.wait()
    execution = client.executions.get(handle.exec_id[:3])
    assert execution.load_inputs() == {"args": ["agents"], "kwargs": {}}
    assert execution.load_result() == "notes on agents"


def test_a_running_execution_has_no_result_yet(cli, client):
    _build(client, calls=3)
    data = cli("executions", "get", "b1", "-o", "json").json()
    assert data["result"] is None and data["inputs"] is None
    assert "result" not in cli("executions", "get", "b1").stdout


# -- many calls ------------------------------------------------------------------------------

BIG_ID = "b1" + "0" * 30


def _build(client, calls: int, failed_at: int | None = None) -> None:
    """An execution of `calls` calls of `step`, written straight through the registry."""
    reg = client._stack.registry
    now = time.time()
    reg.create_execution(ExecutionRecord(exec_id=BIG_ID, flow_name="big", status="running",
                                         created_at=now, started_at=now))
    for n in range(1, calls + 1):
        call_id = f"step#{n}"
        status = "failed" if n == failed_at else "completed"
        art = ArtifactRecord(artifact_id=new_id(), exec_id=BIG_ID, name=call_id, direction="output",
                             key="0" * 64, serializer="json", type_name="int", size=1,
                             call_id=call_id, created_at=now, data=b"1")
        reg.save_call(
            CallRecord(exec_id=BIG_ID, call_id=call_id, name="step", seq=n, status=status,
                       attempts=1, started_at=now, ended_at=now + 0.001,
                       output_artifact=None if status == "failed" else art.artifact_id),
            artifacts=[] if status == "failed" else [art],
            metadata=[MetadataEntry(BIG_ID, call_id, "n", n, now)],
        )


def _call_rows(stdout: str) -> list[int]:
    return [int(n) for n in re.findall(r"^\S*\s*step#(\d+)\s", stdout, flags=re.MULTILINE)]


def test_a_large_execution_shows_a_summary_and_a_bounded_table(cli, client):
    _build(client, calls=130, failed_at=70)
    shown = cli("executions", "get", BIG_ID[:4])
    assert shown.exit_code == 0, shown
    out = shown.stdout
    assert "130 checkpoint calls: 129 completed, 1 failed; by checkpoint: step 130" in out
    rows = _call_rows(out.split("metadata logged")[0])
    assert len(rows) == execution_view.DEFAULT_CALLS
    assert 70 in rows  # the call that did not complete is always shown
    assert rows[:3] == [1, 2, 3] and rows[-1] == 130
    assert "more" in out and "showing 50 of 130 calls; every row: --calls all" in out


def test_calls_all_shows_every_row_and_calls_n_shows_n(cli, client):
    _build(client, calls=130)
    every = cli("executions", "get", BIG_ID, "--calls", "all").stdout
    assert _call_rows(every.split("metadata logged")[0]) == list(range(1, 131))
    assert "showing" not in every
    ten = cli("executions", "get", BIG_ID, "--calls", "10").stdout
    assert _call_rows(ten.split("metadata logged")[0]) == [1, 2, 3, 4, 5, 126, 127, 128, 129, 130]
    assert "… 120 more" in ten


def test_past_the_rich_limit_rows_are_plain_aligned_text(cli, client, monkeypatch):
    monkeypatch.setattr(execution_view, "RICH_MAX_ROWS", 20)
    _build(client, calls=60)
    out = cli("executions", "get", BIG_ID, "--calls", "all").stdout
    table = out.split("metadata logged")[0]
    assert _call_rows(table) == list(range(1, 61))
    assert "┃" not in table and "│" not in table
    header = next(line for line in table.splitlines() if line.startswith("call"))
    assert header.split() == ["call", "status", "attempts", "duration", "output"]


@pytest.mark.parametrize("value", ["0", "-3", "many", ""])
def test_a_bad_calls_value_is_one_line(cli, value):
    result = cli("executions", "get", "anything", "--calls", value)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("kitaru: error: --calls") and len(result.stderr.splitlines()) == 1
