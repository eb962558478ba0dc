"""Diffs of executions: a replay against its original, checkpoint by checkpoint, through the
client, the command line and the REST route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

import kitaru
from kitaru import checkpoint, flow
from kitaru.diffs import ExecutionDiff
from kitaru.errors import InvalidValueError


class Report(BaseModel):
    title: str
    score: float


flags = {"tone": "calm"}


@pytest.fixture(autouse=True)
def _reset() -> None:
    flags["tone"] = "calm"


@checkpoint
def fetch(topic: str) -> dict:
    return {"topic": topic, "sources": ["a", "b"]}


@checkpoint
def draft(notes: dict) -> str:
    kitaru.save("outline", {"points": [f"{flags['tone']} intro", "body"]})
    return f"A {flags['tone']} draft\nabout {notes['topic']}\nwith {len(notes['sources'])} sources\n"


@checkpoint
def score(text: str) -> Report:
    return Report(title=text.splitlines()[0], score=0.5 if "calm" in text else 0.9)


@checkpoint
def blob() -> bytes:
    return flags["tone"].encode()


@flow
def pipeline(topic: str) -> str:
    notes = fetch(topic)
    text = draft(notes)
    score(text)
    return text.load()


@flow
def with_extra(topic: str) -> str:
    text = draft(fetch(topic))
    if flags["tone"] != "calm":
        blob()
    return text.load()


def _original_and_replay(client, at: str = "draft") -> tuple[str, str]:
    original = pipeline.run("agents")
    original.wait()
    flags["tone"] = "bold"
    submission = client.executions.replay(original.exec_id, at=at, wait=True)
    return original.exec_id, submission.results[0].replay_exec_id


def test_a_replay_against_its_original_names_the_changed_checkpoints_with_diffs(client) -> None:
    a, b = _original_and_replay(client)
    d = client.executions.diff(a, b)
    assert isinstance(d, ExecutionDiff)
    assert (d.a, d.b, d.replay) == (a, b, True)
    by_id = {c.call_id: c for c in d.checkpoints}
    assert [c.call_id for c in d.checkpoints] == ["fetch#1", "draft#1", "score#1"]
    assert by_id["fetch#1"].status == "same"  # before `at`: reused from the original
    assert by_id["draft#1"].status == "changed"
    assert by_id["score#1"].status == "changed"
    assert d.summary == {"same": 1, "changed": 2, "only_in_a": 0, "only_in_b": 0}
    assert d.first_difference == "draft#1"
    assert not d.identical

    arts = {x.label: x for x in by_id["draft#1"].artifacts}
    output = arts["output"]
    assert (output.status, output.kind) == ("changed", "text")
    assert "-A calm draft" in output.diff and "+A bold draft" in output.diff
    assert " about agents" in output.diff  # context line
    assert output.diff.startswith("--- a/draft#1/output\n+++ b/draft#1/output")
    outline = arts["saved:outline"]
    assert (outline.status, outline.kind) == ("changed", "json")
    assert '-    "calm intro"' in outline.diff and '+    "bold intro"' in outline.diff
    assert arts["input:notes"].status == "same"

    report = {x.label: x for x in by_id["score#1"].artifacts}["output"]
    assert report.kind == "json" and report.a_type == report.b_type
    assert '-  "score": 0.5' in report.diff and '+  "score": 0.9' in report.diff
    assert d.result is not None and d.result.status == "changed"
    assert d.inputs is not None and d.inputs.status == "same"
    json.dumps(d.to_dict())  # JSON-able throughout


def test_an_execution_against_itself_or_a_faithful_replay_is_identical(client) -> None:
    original = pipeline.run("agents")
    original.wait()
    replay = client.executions.replay(original.exec_id, at="draft", wait=True).results[0].replay_exec_id
    for other in (original.exec_id, replay):
        d = client.executions.diff(original.exec_id, other)
        assert d.identical, d.to_dict()
        assert d.summary["same"] == 3 and d.first_difference is None
        assert all(x.diff == "" for c in d.checkpoints for x in c.artifacts)


def test_checkpoints_only_in_one_execution(client) -> None:
    first = with_extra.run("x")
    first.wait()
    flags["tone"] = "bold"
    second = with_extra.run("x")
    second.wait()
    d = client.executions.diff(first.exec_id, second.exec_id)
    assert {c.call_id: c.status for c in d.checkpoints} == {
        "fetch#1": "same", "draft#1": "changed", "blob#1": "only_in_b"}
    assert d.replay is False
    back = client.executions.diff(second.exec_id, first.exec_id)
    assert {c.call_id: c.status for c in back.checkpoints}["blob#1"] == "only_in_a"
    blob_row = next(c for c in back.checkpoints if c.call_id == "blob#1")
    assert (blob_row.a_status, blob_row.b_status) == ("completed", None)


def test_binary_artifacts_compare_by_content(client) -> None:
    flags["tone"] = "one"
    first = with_extra.run("x")
    first.wait()
    flags["tone"] = "two"
    second = with_extra.run("x")
    second.wait()
    d = client.executions.diff(first.exec_id, second.exec_id)
    out = {x.label: x for c in d.checkpoints if c.call_id == "blob#1" for x in c.artifacts}["output"]
    assert (out.status, out.kind, out.diff) == ("changed", "binary", "")


def test_long_diffs_are_cut_at_max_lines(client) -> None:
    a, b = _original_and_replay(client)
    d = client.executions.diff(a, b, max_lines=3, context=0)
    out = {x.label: x for c in d.checkpoints if c.call_id == "draft#1" for x in c.artifacts}["output"]
    assert out.truncated and out.diff.splitlines()[-1].endswith("more lines)")
    assert len(out.diff.splitlines()) == 4


def test_diff_matrix_of_an_original_and_its_replays(client) -> None:
    original = pipeline.run("agents")
    original.wait()
    faithful = client.executions.replay(original.exec_id, at="draft", wait=True).results[0].replay_exec_id
    flags["tone"] = "bold"
    bold = client.executions.replay(original.exec_id, at="draft", wait=True).results[0].replay_exec_id
    # One id alone: it and its replays, oldest first.
    m = client.executions.diff_matrix(original.exec_id[:10])
    assert m.exec_ids == [original.exec_id, faithful, bold]
    assert m.baseline == original.exec_id
    cells = {r.call_id: r.cells for r in m.rows}
    assert cells["fetch#1"] == {original.exec_id: "base", faithful: "same", bold: "same"}
    assert cells["draft#1"] == {original.exec_id: "base", faithful: "same", bold: "changed"}
    assert cells["score#1"][bold] == "changed"
    pairs = {(p["a"], p["b"]): p for p in m.pairs}
    assert (pairs[original.exec_id, faithful]["same"], pairs[original.exec_id, faithful]["changed"]) == (3, 0)
    assert (pairs[faithful, bold]["same"], pairs[faithful, bold]["changed"]) == (1, 2)
    assert m.usage[bold]["token_delta"] is None  # no model calls on either side
    explicit = client.executions.diff_matrix([original.exec_id, bold])
    assert explicit.exec_ids == [original.exec_id, bold]
    json.dumps(m.to_dict())


def test_diff_matrix_marks_changed_missing_and_added(client) -> None:
    first = with_extra.run("x")
    first.wait()
    flags["tone"] = "bold"
    second = with_extra.run("x")
    second.wait()
    m = client.executions.diff_matrix([first.exec_id, second.exec_id])
    cells = {r.call_id: r.cells[second.exec_id] for r in m.rows}
    assert cells == {"fetch#1": "same", "draft#1": "changed", "blob#1": "added"}
    assert {r.call_id: r.cells[first.exec_id] for r in m.rows}["blob#1"] == "missing"
    back = client.executions.diff_matrix([second.exec_id, first.exec_id])
    assert {r.call_id: r.cells[first.exec_id] for r in back.rows}["blob#1"] == "missing"


def test_diff_matrix_needs_two_executions(client) -> None:
    lone = pipeline.run("solo")
    lone.wait()
    with pytest.raises(InvalidValueError, match="two executions or more"):
        client.executions.diff_matrix([lone.exec_id])


def test_cli_diff_and_matrix(cli, client) -> None:
    a, b = _original_and_replay(client)
    shown = cli("executions", "diff", a, b)
    assert shown.exit_code == 0, shown.stderr
    assert "draft#1" in shown.stdout and "+A bold draft" in shown.stdout
    assert "fetch#1" not in shown.stdout  # same checkpoints are listed only with --all
    assert "1 same, 2 changed, 0 only in A, 0 only in B; first difference: draft#1" in shown.stdout
    assert "fetch#1" in cli("executions", "diff", a, b, "--all", "--stat").stdout
    assert "+A bold" not in cli("executions", "diff", a, b, "--stat").stdout
    data = cli("executions", "diff", a, b, "-o", "json").json()
    assert data["summary"]["changed"] == 2 and data["first_difference"] == "draft#1"
    assert data["checkpoints"][1]["artifacts"][0]["diff"]
    matrix = cli("executions", "diff-matrix", a, b, "-o", "json")
    assert matrix.exit_code == 0, matrix.stderr
    assert matrix.json()["exec_ids"] == [a, b]
    table = cli("executions", "diff-matrix", a)
    assert table.exit_code == 0 and "changed" in table.stdout
    missing = cli("executions", "diff", a, "no-such-execution")
    assert missing.exit_code == 1 and "no-such-execution" in missing.stderr


def test_rest_diff_route(kitaru_home: Path, client) -> None:
    from fastapi.testclient import TestClient
    from kitaru_server.app import create_app
    from kitaru_server.settings import ServerSettings

    a, b = _original_and_replay(client)
    app = create_app(ServerSettings(key_cache_seconds=0))
    keys = app.state.kitaru.keys
    keys.create_account("reader")
    token = keys.create_key("reader", scope="read")[1]
    http = TestClient(app)
    auth = {"Authorization": f"Bearer {token}"}
    got = http.get(f"/api/v1/executions/{a}/diff/{b}", headers=auth)
    assert got.status_code == 200, got.text
    assert got.json()["summary"] == {"same": 1, "changed": 2, "only_in_a": 0, "only_in_b": 0}
    matrix = http.get(f"/api/v1/executions/{a}/diff-matrix", headers=auth)
    assert matrix.status_code == 200 and matrix.json()["exec_ids"] == [a, b]
    assert http.get(f"/api/v1/executions/{a}/diff/nope", headers=auth).status_code == 404
    assert http.get(f"/api/v1/executions/{a}/diff/{b}").status_code == 401


@flow
def gated(topic: str) -> str:
    notes = fetch(topic)
    ok = kitaru.wait(name="approve", schema=bool, timeout=0)
    return f"shipped {notes.load()['topic']}" if ok else "rejected"


def test_a_replay_at_a_wait_answered_otherwise_shows_the_wait_and_the_result(client) -> None:
    from conftest import until_suspended

    original = gated.run("t")
    until_suspended(original)
    client.executions.input(original.exec_id, wait="approve", value=True, resume=False)
    client.executions.resume(original.exec_id, background=False)
    replay = gated.replay(original.exec_id, at="approve")
    until_suspended(replay)
    client.executions.input(replay.exec_id, wait="approve", value=False, resume=False)
    client.executions.resume(replay.exec_id, background=False)
    assert replay.wait() == "rejected"
    d = client.executions.diff(original.exec_id, replay.exec_id)
    assert d.summary == {"same": 1, "changed": 0, "only_in_a": 0, "only_in_b": 0}
    assert [(w.label, w.status) for w in d.waits] == [("wait:approve", "changed")]
    assert '-  "value": true' in d.waits[0].diff and '+  "value": false' in d.waits[0].diff
    assert d.result is not None and d.result.status == "changed" and not d.identical
    same = client.executions.diff(original.exec_id, original.exec_id)
    assert [w.status for w in same.waits] == ["same"] and same.identical
