"""The agent examples run as documented: News Scout's "fail at call 8, reuse calls 1-7",
the compliance review gated by a wait answered from another process, and a research flow
calling a durable agent in its body."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import REPO, run_cli

import kitaru
from kitaru.client import ExecutionStatus
from kitaru.errors import FlowFailedError

EXAMPLES = REPO / "examples"


def _example(folder: str, module: str):
    sys.path.insert(0, str(EXAMPLES / folder))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(EXAMPLES / folder))


def test_news_scout_reuses_calls_1_to_7_and_reruns_call_8(client):
    scout = _example("news_scout", "scout")
    scout.CALLS.clear()

    handle = scout.news_scout.run("durable agents")
    with pytest.raises(FlowFailedError, match=r"fetch_url_tool#3.*timed out"):
        handle.wait(timeout=60)
    first = client.executions.get(handle.exec_id)
    tool_calls = [c for c in first.checkpoints if c.type == "tool_call"]
    assert len(tool_calls) == 8
    assert [c.status for c in tool_calls] == ["completed"] * 7 + ["failed"]
    assert tool_calls[7].call_id == "fetch_url_tool#3"
    assert dict(scout.CALLS) == {"model": 8, "search_news": 2, "investigate": 3, "fetch_url": 3}

    before = scout.CALLS.copy()
    done = client.executions.retry(handle.exec_id, background=False)
    assert done.status is ExecutionStatus.COMPLETED
    # Tool calls 1-7 and model requests 1-8 came from the record; call 8 ran again,
    # then the one model request that writes the briefing.
    assert scout.CALLS - before == Counter(fetch_url=1, model=1)
    calls = {c.call_id: c for c in done.checkpoints}
    assert calls["fetch_url_tool#3"].attempts == 2 and calls["search_news_tool#1"].attempts == 1
    report = kitaru.load(handle.exec_id, "final_report")
    assert report.startswith("News briefing: durable agents")
    assert "agents-runtime" in report
    assert done.checkpoints[-1].call_id == "publish_report#1"


def test_research_flow_records_each_model_request_and_tool_call(client):
    research = _example("agents", "research")
    handle = research.research_flow.run("durable agents")
    assert handle.wait(timeout=60) == "Brief: three sources agree that durable agents need checkpoints"
    calls = client.executions.get(handle.exec_id).checkpoints
    assert [(c.call_id, c.type) for c in calls] == [
        ("model_request#1", "llm_call"), ("search_tool#1", "tool_call"), ("model_request#2", "llm_call"),
    ]


def _start_review(case_id: str, tmp_path) -> str:
    # The id goes to a file: on stdout, output of the flow's thread can land inside its line.
    id_file = tmp_path / f"exec_id-{case_id}"
    proc = subprocess.run(
        [sys.executable, "-c",
         "import pathlib, sys; sys.path.insert(0, sys.argv[1]); import compliance_review as c; "
         "pathlib.Path(sys.argv[3]).write_text(c.review.run({'id': sys.argv[2]}, timeout=0).exec_id)",
         str(EXAMPLES / "agents"), case_id, str(id_file)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return id_file.read_text()


def _until(exec_id: str, predicate, what: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        out = run_cli("executions", "get", exec_id, "-o", "json")
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        if predicate(data):
            return data
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {data}"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["true", "false"])
def test_compliance_review_is_approved_or_rejected_from_another_process(tmp_path, answer):
    exec_id = _start_review(f"C-{answer}", tmp_path)
    waiting = _until(exec_id, lambda d: d["status"] == "waiting", "the approve wait")
    assert waiting["pending_wait"]["question"].startswith("Draft review of {'id': 'C-")

    wrong = run_cli("executions", "input", exec_id, "--wait", "approve", "--value", '"perhaps"')
    assert wrong.returncode != 0 and "approve" in wrong.stderr  # refused; the wait stays pending
    assert run_cli("executions", "input", exec_id, "--wait", "approve", "--value", answer).returncode == 0
    done = _until(exec_id, lambda d: d["status"] in ("completed", "failed"), "completion")
    assert done["status"] == "completed", done
    # The draft came from the record after the resume: one model request, made once.
    assert [(c["call_id"], c["attempts"]) for c in done["checkpoints"]] == [("model_request#1", 1)]
    output = subprocess.run(
        [sys.executable, "-c", "import kitaru, sys; print(kitaru.load(sys.argv[1], 'output'))", exec_id],
        capture_output=True, text=True, timeout=60,
    )
    expected = "Draft review of {'id': 'C-true'}" if answer == "true" else "rejected"
    assert output.stdout.startswith(expected), output.stderr


def test_publish_with_approval_waits_at_the_hitl_tool_and_continues_with_the_answer(client):
    example = _example("agents", "publish_with_approval")
    handle = example.publish.run("durable agents")
    deadline = time.monotonic() + 30
    while (pending := client.executions.get(handle.exec_id).pending_wait) is None:
        assert time.monotonic() < deadline, "the agent never reached its hitl tool"
        time.sleep(0.02)
    assert (pending.name, pending.question) == ("approve_publish", "Publish this brief?")
    assert pending.metadata["args"] == {"summary": "Durable agents keep their work across crashes."}
    # Answered while the run still polls for it (within the tool's timeout): it goes on at once.
    client.executions.input(handle.exec_id, wait="approve_publish", value=True, resume=False)
    assert handle.wait(timeout=30) == "published"
    done = client.executions.get(handle.exec_id)
    assert [c.call_id for c in done.checkpoints] == ["model_request#1", "model_request#2"]
    assert done.waits[0]["value"] is True
