"""Aborting a wait: the flow's `wait()` raises `WaitAbortedError`, a flow may catch it and go
on, uncaught it fails the execution; the abort is recorded, so a retry raises again."""

from __future__ import annotations

import pytest

from kitaru import KitaruClient, flow, wait
from kitaru.errors import WaitAbortedError, WaitInputError

TIMEOUT = 60.0


@flow
def gate(catch: bool) -> str:
    try:
        return "yes" if wait(name="approve", schema=bool, timeout=TIMEOUT) else "no"
    except WaitAbortedError:
        if catch:
            return "nobody answered"
        raise


def _pending(exec_id: str) -> None:
    from e2e_flows.harness import wait_for_execution

    wait_for_execution(exec_id, lambda e: e.pending_wait is not None, "the pending wait")


def test_the_cli_aborts_a_wait_the_flow_catches(cli) -> None:
    handle = gate.run(True)  # its runner polls the wait in this process
    _pending(handle.exec_id)
    missing = cli("executions", "abort-wait", handle.exec_id, "--wait", "other")
    assert missing.exit_code == 1 and "no pending wait 'other'" in missing.stderr
    done = cli("executions", "abort-wait", handle.exec_id[:8], "--wait", "approve", "-o", "json")
    assert done.exit_code == 0, done.stderr
    assert done.json()["aborted"] is True and done.json()["wait"] == "approve"
    assert handle.wait(timeout=TIMEOUT) == "nobody answered"
    waits = KitaruClient().executions.get(handle.exec_id).waits
    assert [w["status"] for w in waits] == ["answered"]


def test_an_uncaught_abort_fails_the_execution_and_a_retry_raises_again() -> None:
    client = KitaruClient()
    handle = gate.run(False)
    _pending(handle.exec_id)
    client.executions.abort_wait(handle.exec_id, wait="approve")
    with pytest.raises(Exception, match="was aborted"):
        handle.wait(timeout=TIMEOUT)
    failed = client.executions.get(handle.exec_id)
    assert failed.status.value == "failed" and "WaitAbortedError" in failed.failure["type"]
    again = client.executions.retry(handle.exec_id, background=False)
    assert again.status.value == "failed" and "was aborted" in again.failure["message"]
    with pytest.raises(WaitInputError, match="no pending wait"):
        client.executions.abort_wait(handle.exec_id, wait="approve")


def test_the_rest_route_aborts_a_wait(kitaru_home) -> None:
    from fastapi.testclient import TestClient
    from kitaru_server.app import create_app
    from kitaru_server.settings import ServerSettings

    http = TestClient(create_app(ServerSettings(single_user=True)), raise_server_exceptions=False)
    handle = gate.run(True)
    _pending(handle.exec_id)
    missing = http.post(f"/api/v1/executions/{handle.exec_id}/waits/other/abort")
    assert missing.status_code == 422 and "no pending wait 'other'" in missing.json()["detail"]
    done = http.post(f"/api/v1/executions/{handle.exec_id}/waits/approve/abort")
    assert done.status_code == 200, done.text
    assert handle.wait(timeout=TIMEOUT) == "nobody answered"
    assert [w["status"] for w in KitaruClient().executions.get(handle.exec_id).waits] == ["answered"]
