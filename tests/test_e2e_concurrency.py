"""Several processes on one execution at once: two resumes race (exactly one
wins, on SQLite and on PostgreSQL), and a follower streams the logs of a flow running elsewhere."""

from __future__ import annotations

import socket
from collections import Counter
from pathlib import Path

import pytest
from conftest import TEST_REGISTRY, _local_stack_on_postgres
from e2e_flows.harness import FLOWS, Processes, has_exec_id, runs

import kitaru
from kitaru import KitaruClient

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("registry", ["sqlite", "postgres"])
def test_two_resumes_at_once_one_wins_the_other_names_the_owner(
    tmp_path: Path, registry: str, kitaru_home: Path, request: pytest.FixtureRequest
) -> None:
    if registry == "postgres" and TEST_REGISTRY != "postgres":
        # the `local` stack on a shared record: the two runners race through PostgreSQL
        _local_stack_on_postgres(kitaru_home, request.getfixturevalue("postgres_url"))
    elif registry == "sqlite" and TEST_REGISTRY == "postgres":
        pytest.skip("this pass runs the `local` stack on PostgreSQL: the postgres case covers it")
    workdir = tmp_path / "work"
    workdir.mkdir()
    hold, ready = workdir / "hold", workdir / "ready"
    with Processes(tmp_path / "logs") as procs:
        # A run killed inside its last checkpoint leaves a resumable execution.
        hold.touch()
        flow_proc = procs.python(str(FLOWS / "crash_script.py"), str(workdir), cwd=FLOWS)
        procs.wait_for(lambda: ready.exists() and has_exec_id(workdir), "summarize to start",
                       watch=flow_proc)
        procs.crash(flow_proc)
        ready.unlink()
        exec_id = (workdir / "exec_id").read_text()

        # Both resume it; the winner blocks in `summarize` while `hold` exists.
        first = procs.kitaru("executions", "resume", exec_id, cwd=tmp_path)
        second = procs.kitaru("executions", "resume", exec_id, cwd=tmp_path)
        loser = procs.wait_for(
            lambda: next((p for p in (first, second) if p.poll() is not None), None),
            "one of the two resumes to give up",
        )
        winner = second if loser is first else first
        code, out = procs.finish(loser)
        assert code != 0, out
        assert f"process {winner.pid} on {socket.gethostname()}" in out
        procs.wait_for(ready.exists, "the winner to run summarize", watch=winner)
        assert KitaruClient().executions.get(exec_id).resumable is False

        hold.unlink()
        code, out = procs.finish(winner)
    assert code == 0, out
    assert f"execution {exec_id} is completed" in out
    assert runs(workdir) == Counter(fetch=1, rank=1, summarize=2)
    assert kitaru.load(exec_id, "output").startswith("kitaru records outputs (2.2)")


def test_logs_follow_streams_a_running_flow_and_exits_when_it_ends(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    with Processes(tmp_path / "logs") as procs:
        flow_proc = procs.python(str(FLOWS / "chatty_flow.py"), str(workdir), cwd=FLOWS)
        procs.wait_for((workdir / "ready").exists, "crawl to print its pages", watch=flow_proc)
        exec_id = (workdir / "exec_id").read_text()

        follower = procs.kitaru("executions", "logs", exec_id, "--follow", cwd=tmp_path)
        # Output of the checkpoint still running shows up while it runs.
        procs.wait_for(lambda: "[crawl#1] crawled page 3/3" in procs.output(follower),
                       "the follower to print the running checkpoint's lines", watch=follower)
        assert follower.poll() is None
        assert "crawl done" not in procs.output(follower)

        (workdir / "release").touch()
        code, followed = procs.finish(follower)
        flow_code, flow_out = procs.finish(flow_proc)
    assert flow_code == 0, flow_out
    assert code == 0, followed
    assert followed.splitlines() == [
        "[crawl#1] crawled page 1/3", "[crawl#1] crawled page 2/3", "[crawl#1] crawled page 3/3",
        "[crawl#1] crawl done", "[build_index#1] indexed 3 pages",
    ]
