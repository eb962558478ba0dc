"""The `Orchestrator` conformance suite: launch / poll / cancel of detached runners."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...interfaces import Orchestrator, TaskState
from ..base import ComponentConformance


class OrchestratorConformance(ComponentConformance):
    """Every orchestrator passes this. Subclass it, set `flavor`, give `config`.

    The suite launches small Python commands in place of a runner (`command`), which write a
    marker that `launched_marker` reads back. For an orchestrator whose runners run elsewhere,
    override both (say, a marker written to the artifact store the runner can reach).
    """

    component_type: ClassVar[str] = "orchestrator"
    #: Seconds a launched command may take to start and end on the backend.
    launch_timeout: ClassVar[float] = 60.0

    @pytest.fixture
    def orchestrator(self, make_component: Callable[[], Orchestrator]) -> Orchestrator:
        return make_component()

    @pytest.fixture
    def command(self, tmp_path: Path) -> Callable[[str, float], list[str]]:
        """`command(marker, seconds)`: a runner stand-in that writes `marker`'s file then sleeps."""

        def make(marker: str, seconds: float) -> list[str]:
            out = tmp_path / f"{marker}.json"
            code = (
                "import json, os, sys, time; "
                f"open({str(out)!r}, 'w').write(json.dumps({{'exec': os.environ.get('KITARU_EXEC_ID')}})); "
                f"time.sleep({seconds})"
            )
            return [sys.executable, "-c", code]

        return make

    @pytest.fixture
    def launched_marker(self, tmp_path: Path) -> Callable[[str], dict[str, Any] | None]:
        def read(marker: str) -> dict[str, Any] | None:
            path = tmp_path / f"{marker}.json"
            try:
                return dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                return None

        return read

    def wait_for(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.launch_timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        pytest.fail(f"timed out after {self.launch_timeout} s waiting for {what}")

    def launch(self, orchestrator: Orchestrator, command: list[str], exec_id: str) -> dict[str, Any]:
        return orchestrator.launch(exec_id, command=command, env={"KITARU_EXEC_ID": exec_id}, cwd=None)

    def test_a_launched_runner_runs_with_its_env_and_its_end_is_noticed(
        self, orchestrator: Orchestrator, command: Callable[[str, float], list[str]],
        launched_marker: Callable[[str], dict[str, Any] | None],
    ):
        marker, exec_id = uuid.uuid4().hex, uuid.uuid4().hex
        handle = self.launch(orchestrator, command(marker, 0.0), exec_id)
        assert json.loads(json.dumps(handle)) == handle  # kept as JSON
        assert self.wait_for("the runner's marker", lambda: launched_marker(marker)) == {"exec": exec_id}
        state: TaskState = self.wait_for("the runner's end", lambda: _ended(orchestrator, handle))
        assert state.state in ("succeeded", "lost", "failed")

    def test_a_running_runner_polls_running_from_another_instance(
        self, orchestrator: Orchestrator, command: Callable[[str, float], list[str]],
        launched_marker: Callable[[str], dict[str, Any] | None],
        make_component: Callable[[], Orchestrator],
    ):
        marker = uuid.uuid4().hex
        handle = self.launch(orchestrator, command(marker, 600.0), uuid.uuid4().hex)
        try:
            self.wait_for("the runner's marker", lambda: launched_marker(marker))
            assert make_component().poll(handle).state in ("pending", "running")
        finally:
            orchestrator.cancel(handle)

    def test_cancel_stops_a_launched_runner(
        self, orchestrator: Orchestrator, command: Callable[[str, float], list[str]],
        launched_marker: Callable[[str], dict[str, Any] | None],
        make_component: Callable[[], Orchestrator],
    ):
        marker = uuid.uuid4().hex
        handle = self.launch(orchestrator, command(marker, 600.0), uuid.uuid4().hex)
        self.wait_for("the runner's marker", lambda: launched_marker(marker))
        make_component().cancel(handle)  # from another process, as `kitaru executions cancel` does
        self.wait_for("the cancelled runner's end", lambda: _ended(orchestrator, handle))
        orchestrator.cancel(handle)  # a no-op once it ended


def _ended(orchestrator: Orchestrator, handle: dict[str, Any]) -> TaskState | None:
    state = orchestrator.poll(handle)
    return state if state.ended else None
