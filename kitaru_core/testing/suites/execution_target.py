"""The `ExecutionTarget` conformance suite: submit / find / poll / cancel / logs / idempotent
resubmission, with real workers reading real task specs from a real artifact store.

Tasks run functions of `kitaru_core.testing.tasks` by import path, so a container target's
image needs only kitaru installed (at the runner's versions) and the store's plugin.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...errors import ResourceError
from ...interfaces import ArtifactStore, ExecutionTarget, Resources, TaskRequest, TaskState
from ...runtime.protocol import is_task_name, task_name, task_prefix, task_spec, worker_argv
from ...serializers import deserialize, serialize
from ..base import ComponentConformance, build_component

_TASKS = "kitaru_core.testing.tasks"


class ExecutionTargetConformance(ComponentConformance):
    """Every execution target passes this. Subclass it, set `flavor`, and give `config` (the
    target's) and, for a target that runs elsewhere, `store_flavor` and `store_config` (a
    store its tasks can reach, empty per test) and `task_env` (plain variables tasks need).

    `task_timeout` bounds how long a tiny task may take end to end on the backend (image
    pull and scheduling included); `unsupported` is a `Resources` the target must refuse.
    """

    component_type: ClassVar[str] = "execution_target"
    store_flavor: ClassVar[str] = "local"
    task_timeout: ClassVar[float] = 60.0
    unsupported: ClassVar[Resources] = Resources(gpu=1, accelerator="no-such-accelerator")

    @pytest.fixture
    def store_config(self, tmp_path: Path) -> dict[str, Any]:
        """The store's config as a stack file would give it."""
        return {"root": str(tmp_path / "store")}

    @pytest.fixture
    def task_env(self) -> dict[str, str]:
        return {}

    @pytest.fixture
    def store(self, store_config: dict[str, Any], tmp_path: Path) -> Iterator[ArtifactStore]:
        built = build_component("artifact_store", self.store_flavor, store_config, home=tmp_path)
        assert isinstance(built, ArtifactStore)
        yield built
        built.close()

    @pytest.fixture
    def target(self, make_component: Callable[[], ExecutionTarget]) -> ExecutionTarget:
        return make_component()

    @pytest.fixture
    def make_request(
        self, store: ArtifactStore, store_config: dict[str, Any], task_env: dict[str, str]
    ) -> Callable[..., TaskRequest]:
        """`make_request(function, **inputs)`: writes inputs and spec, returns the request."""
        exec_id = uuid.uuid4().hex

        def make(function: str, *, call_id: str | None = None, attempt: int = 1,
                 resources: Resources | None = None, timeout: float | None = None,
                 **inputs: Any) -> TaskRequest:
            call = call_id or f"{function}#{uuid.uuid4().hex[:6]}"
            refs = {}
            for name, value in inputs.items():
                data, serializer = serialize(value)
                key = _sha(data)
                store.put_blob(data, key)
                refs[name] = {"key": key, "serializer": serializer}
            prefix = task_prefix(exec_id, call, attempt)
            spec = task_spec(exec_id=exec_id, call_id=call, checkpoint=function, attempt=attempt,
                             task_name=task_name(exec_id, call, attempt), prefix=prefix,
                             function={"module": _TASKS, "qualname": function},
                             inputs=refs, positional=False)
            spec_key = f"{prefix}/spec.json"
            store.write_file(spec_key, json.dumps(spec).encode())
            return TaskRequest(
                task_name=spec["task_name"], spec_key=spec_key,
                argv=worker_argv(self.store_flavor, store_config, spec_key),
                env={"KITARU_EXEC_ID": exec_id, **task_env}, resources=resources or Resources(),
                timeout=timeout,
            )

        return make

    # -- helpers -------------------------------------------------------------------------
    def wait_result(
        self, target: ExecutionTarget, store: ArtifactStore, request: TaskRequest, handle: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, TaskState]:
        """(result.json or None, the last state) once the task ended or wrote its result."""
        path = request.spec_key.rsplit("/", 1)[0] + "/result.json"
        deadline = time.monotonic() + self.task_timeout
        state = TaskState("pending")
        while time.monotonic() < deadline:
            raw = store.read_file(path)
            state = target.poll(handle)
            if raw is not None and state.ended:
                return json.loads(raw), state
            if state.ended:
                raw = store.read_file(path)
                return (json.loads(raw) if raw is not None else None), state
            time.sleep(0.1)
        pytest.fail(f"the task {request.task_name} did not end within {self.task_timeout} s ({state})")

    def wait_running(self, target: ExecutionTarget, handle: dict[str, Any]) -> TaskState:
        deadline = time.monotonic() + self.task_timeout
        while time.monotonic() < deadline:
            state = target.poll(handle)
            if state.state != "pending":
                return state
            time.sleep(0.1)
        pytest.fail(f"the task never left pending within {self.task_timeout} s")

    def runs_of(self, store: ArtifactStore, token: str) -> int:
        """How many `count_run(token)` calls ran (each left a blob `<token>:...`)."""
        return sum(
            1 for info in store.list_blobs()
            if len(info.key) == 64 and store.get_blob(info.key).startswith(f"{token}:".encode())
        )

    # -- the contract --------------------------------------------------------------------
    def test_poll_cap_is_a_positive_number_of_seconds(self, target: ExecutionTarget):
        assert isinstance(target.poll_cap, int | float) and 0 < target.poll_cap <= 60
        assert target.locality in ("machine", "network")
        assert not target.in_process

    def test_find_of_an_unknown_task_is_none(self, target: ExecutionTarget):
        assert target.find(task_name(uuid.uuid4().hex, "nothing#1", 1)) is None

    def test_a_task_runs_the_worker_which_writes_its_result_to_the_store(
        self, target: ExecutionTarget, store: ArtifactStore, make_request: Callable[..., TaskRequest]
    ):
        request = make_request("echo", value={"n": 41, "words": ["a", "b"]})
        assert is_task_name(request.task_name)
        handle = target.submit(request)
        assert json.loads(json.dumps(handle)) == handle  # kept in the registry as JSON
        result, state = self.wait_result(target, store, request, handle)
        assert result is not None and result["status"] == "ok", result
        out = result["output"]
        assert deserialize(store.get_blob(out["key"]), out["serializer"]) == {"n": 41, "words": ["a", "b"]}
        assert state.state == "succeeded", state

    def test_a_handle_and_find_work_from_another_instance(
        self, target: ExecutionTarget, store: ArtifactStore, make_request: Callable[..., TaskRequest],
        make_component: Callable[[], ExecutionTarget],
    ):
        request = make_request("sleep_then", seconds=1.0, value="late")
        handle = target.submit(request)
        other = make_component()  # a runner that restarted
        found = other.find(request.task_name)
        assert found is not None
        result, _state = self.wait_result(other, store, request, found)
        assert result is not None and result["status"] == "ok"
        assert other.poll(handle).ended

    def test_submit_is_idempotent_by_task_name(
        self, target: ExecutionTarget, store: ArtifactStore, make_request: Callable[..., TaskRequest],
        make_component: Callable[[], ExecutionTarget],
    ):
        token = uuid.uuid4().hex
        request = make_request("count_run", token=token, seconds=1.0)
        first = target.submit(request)
        again = make_component().submit(request)  # a resumed runner that recorded only its intent
        same = target.submit(request)
        result, _ = self.wait_result(target, store, request, first)
        assert result is not None and result["status"] == "ok"
        for handle in (again, same):
            assert target.poll(handle).ended
        assert self.runs_of(store, token) == 1

    def test_a_failing_task_ends_failed_with_the_error_in_its_result(
        self, target: ExecutionTarget, store: ArtifactStore, make_request: Callable[..., TaskRequest]
    ):
        request = make_request("fail", message="boom 7")
        handle = target.submit(request)
        result, state = self.wait_result(target, store, request, handle)
        assert result is not None and result["status"] == "error"
        assert "boom 7" in result["error"]["message"]
        assert state.state == "failed", state

    def test_cancel_stops_a_running_task(
        self, target: ExecutionTarget, store: ArtifactStore, make_request: Callable[..., TaskRequest]
    ):
        request = make_request("sleep_then", seconds=600.0, value="never")
        handle = target.submit(request)
        self.wait_running(target, handle)
        target.cancel(handle)
        result, state = self.wait_result(target, store, request, handle)
        assert result is None  # it never finished
        assert state.ended
        target.cancel(handle)  # cancelling an ended task is a no-op

    def test_logs_hold_the_tasks_output(
        self, target: ExecutionTarget, store: ArtifactStore, make_request: Callable[..., TaskRequest]
    ):
        token = uuid.uuid4().hex
        request = make_request("shout", token=token)
        handle = target.submit(request)
        self.wait_result(target, store, request, handle)
        assert f"conformance says {token}" in target.logs(handle)

    def test_unsupported_resources_are_refused_before_anything_starts(
        self, target: ExecutionTarget, make_request: Callable[..., TaskRequest]
    ):
        request = make_request("echo", value=1, resources=self.unsupported)
        with pytest.raises(ResourceError) as err:
            target.submit(request)
        assert "\n" not in str(err.value)
        assert any(f in str(err.value) for f in ("gpu", "accelerator"))
        assert target.find(request.task_name) is None

    def test_a_task_past_its_timeout_is_stopped(
        self, target: ExecutionTarget, store: ArtifactStore, make_request: Callable[..., TaskRequest]
    ):
        request = make_request("sleep_then", seconds=600.0, value="never", timeout=1.0)
        handle = target.submit(request)
        result, state = self.wait_result(target, store, request, handle)
        assert result is None
        assert state.state in ("failed", "lost"), state


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
