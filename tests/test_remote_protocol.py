"""The remote protocol's contract: task names, the worker's command line, resources,
the request a target gets, and stacks refused because their tasks could not reach the store."""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kitaru import checkpoint, flow
from kitaru_core.errors import ConfigError, ResourceError, TaskError
from kitaru_core.interfaces import ExecutionTarget, FlavorConfig, Resources, TaskRequest, TaskState
from kitaru_core.plugins import Flavor, FlavorRegistrar, hookimpl
from kitaru_core.plugins.manager import PluginManager
from kitaru_core.runtime.protocol import (
    MAX_TASK_NAME,
    is_task_name,
    parse_worker_args,
    task_name,
    worker_argv,
)
from kitaru_core.stack import StackStore, validate_stack

DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXEC = "0f3a9c2e7d5b4a1c9e8f7a6b5c4d3e2f"


# -- task names ------------------------------------------------------------------------------


@pytest.mark.parametrize("call_id", [
    "summarize#1", "Summarize#12", "a" * 200, "ünïcödé#3", "###", "x_y.z#1", "-lead-#1", "9#9",
])
def test_task_names_are_dns_1123_labels_of_at_most_63_characters(call_id: str) -> None:
    for attempt in (1, 2, 10_000):
        name = task_name(EXEC, call_id, attempt)
        assert len(name) <= MAX_TASK_NAME
        assert DNS_1123.match(name), name
        assert "#" not in name
        assert is_task_name(name)


def test_task_names_are_deterministic_and_unique_per_execution_call_and_attempt() -> None:
    assert task_name(EXEC, "fetch#1", 1) == task_name(EXEC, "fetch#1", 1)
    long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"  # slugs cut to the same text
    names = {
        task_name(EXEC, "fetch#1", 1), task_name(EXEC, "fetch#1", 2), task_name(EXEC, "fetch#2", 1),
        task_name(EXEC, "fetch-1", 1),  # same slug as fetch#1
        task_name(EXEC[:8] + "0" * 24, "fetch#1", 1),  # same first 8 characters of the execution
        task_name(EXEC, long_a, 1), task_name(EXEC, long_b, 1),
    }
    assert len(names) == 7
    assert task_name(EXEC, "fetch#1", 1).startswith("kitaru-0f3a9c2e-fetch-1-1-")


def test_is_task_name_refuses_what_kubernetes_would() -> None:
    assert not is_task_name("Upper")
    assert not is_task_name("a#b")
    assert not is_task_name("-a")
    assert not is_task_name("a" * 64)


# -- the worker's command line ----------------------------------------------------------------


def test_worker_argv_carries_the_store_flavor_config_and_spec_key_only() -> None:
    config = {"root": "s3://bucket/kitaru", "key": "${env:AWS_KEY}"}
    argv = worker_argv("s3", config, "tasks/e/c-1/1/spec.json")
    assert argv[:2] == ("-m", "kitaru_core.worker")
    ns = parse_worker_args(list(argv[2:]))
    assert (ns.store_flavor, ns.store_config, ns.spec) == ("s3", config, "tasks/e/c-1/1/spec.json")
    assert "${env:AWS_KEY}" in " ".join(argv)  # a reference, never the value


# -- resources and checkpoint options ---------------------------------------------------------


def test_resources_parse_sizes_and_cores_and_fill_from_defaults() -> None:
    res = Resources(cpu="500m", memory="4Gi", disk="10G", gpu=1, accelerator="nvidia-tesla-t4")
    assert res.cpu == 0.5
    assert res.memory_bytes() == 4 * 2**30
    assert res.disk_bytes() == 10 * 10**9
    merged = Resources(cpu=2).over(Resources(cpu=1, memory="1Gi"))
    assert (merged.cpu, merged.memory) == (2, "1Gi")
    assert Resources().is_empty()


@pytest.mark.parametrize("bad", [{"memory": "4 gigs"}, {"cpu": 0}, {"gpu": -1}, {"ram": "1Gi"}])
def test_bad_resources_are_refused_at_decoration_naming_the_field(bad: dict[str, Any]) -> None:
    field = next(iter(bad))
    with pytest.raises(ConfigError, match=f"resources.{field}"):
        checkpoint(runtime="isolated", resources=bad)(lambda: None)


def test_isolated_options_on_an_inline_checkpoint_are_refused() -> None:
    with pytest.raises(ConfigError, match="runtime='isolated' only"):
        checkpoint(resources={"cpu": 1})(lambda: None)
    with pytest.raises(ConfigError, match="timeout"):
        checkpoint(runtime="isolated", timeout=-1)(lambda: None)


def test_checkpoint_options_reach_the_spec() -> None:
    @checkpoint(runtime="isolated", resources={"cpu": 2, "memory": "1Gi"}, image="acme/a:1",
                timeout=30, options={"node_selector": {"pool": "gpu"}})
    def work() -> int:
        return 1

    spec = work.__kitaru_checkpoint__
    assert (spec.resources.cpu, spec.resources.memory, spec.image, spec.timeout) == (2, "1Gi", "acme/a:1", 30)
    assert spec.options == {"node_selector": {"pool": "gpu"}}


# -- the request a target gets ----------------------------------------------------------------


class RecordingTarget(ExecutionTarget):
    """Records requests and starts nothing (its tasks stay pending)."""

    locality = "machine"
    requests: list[TaskRequest] = []

    def submit(self, request: TaskRequest) -> dict[str, Any]:
        self.check_resources(request)
        type(self).requests.append(request)
        return {"name": request.task_name}

    def find(self, task_name: str) -> dict[str, Any] | None:
        return None

    def poll(self, handle: dict[str, Any]) -> TaskState:
        return TaskState("lost", "never started")

    def cancel(self, handle: dict[str, Any]) -> None:
        return None


class FarTarget(RecordingTarget):
    locality = "network"


class NoConfig(FlavorConfig):
    pass


@pytest.fixture
def manager() -> Iterator[PluginManager]:
    """The installed plugins plus `recording` and `faraway` execution targets (this module)."""
    from kitaru_core.plugins import manager as manager_module

    mod = types.ModuleType("recording_targets_plugin")

    @hookimpl
    def kitaru_register_flavors(registrar: FlavorRegistrar) -> None:
        for name, cls in (("recording", "RecordingTarget"), ("faraway", "FarTarget")):
            registrar.add(Flavor(name=name, type="execution_target", config=NoConfig,
                                 implementation=f"{__name__}:{cls}"))

    mod.kitaru_register_flavors = kitaru_register_flavors  # type: ignore[attr-defined]
    pm = PluginManager()
    pm.load_entry_points()
    pm.register(mod, name="recording-targets")
    manager_module.set_default_manager(pm)
    yield pm
    manager_module.set_default_manager(None)


def test_a_remote_target_with_a_machine_local_store_is_refused_with_the_reason(
    manager: PluginManager,
) -> None:
    spec = {"name": "far", "execution_target": {"flavor": "faraway"}}
    with pytest.raises(ConfigError) as err:
        validate_stack(spec, source="far.yaml", manager=manager)
    message = str(err.value)
    assert "'faraway' execution target runs tasks anywhere" in message
    assert "'local' artifact store can only be used on this machine" in message
    assert "\n" not in message
    # The same target on this machine is fine with the local store.
    validate_stack({"name": "near", "execution_target": {"flavor": "recording"}}, manager=manager)


def test_the_request_carries_no_runner_local_value_and_no_secret(
    manager: PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORE_TOKEN", "s3cr3t-value")
    stack_file = tmp_path / "rec.yaml"
    stack_file.write_text(
        "name: rec\nartifact_store: {flavor: local, config: {root: '${home}/arts${env:STORE_TOKEN}'}}\n"
        "execution_target: {flavor: recording}\n"
    )
    StackStore(manager=manager).register(stack_file)
    RecordingTarget.requests.clear()

    @checkpoint(runtime="isolated", resources={"cpu": 1}, timeout=12)
    def double(x: int) -> int:
        return 2 * x

    @flow
    def twice(x: int) -> int:
        return double(x).load()

    handle = twice.run(3, stack="rec")
    with pytest.raises(Exception, match="lost"):
        handle.wait(timeout=60)
    request = RecordingTarget.requests[0]
    assert is_task_name(request.task_name)
    assert request.spec_key.endswith("/1/spec.json")
    text = json.dumps([list(request.argv), request.env, request.labels])
    home = str(Path.home())
    for local in (sys.executable, "KITARU_HOME", str(tmp_path), "s3cr3t-value"):
        assert local not in text
    assert not any(home in v for v in request.env.values())
    assert "${env:STORE_TOKEN}" in text and "${home}" in text
    assert request.secret_env == ("STORE_TOKEN",)
    assert (request.resources.cpu, request.timeout) == (1, 12)
    # The worker reads this spec through the store plugin: it is in the store, not elsewhere.
    assert "spec.json" in request.argv[request.argv.index("--spec") + 1]


def test_a_target_refuses_resources_it_cannot_provide_before_anything_runs() -> None:
    target = RecordingTarget.__new__(RecordingTarget)
    for request, field in [
        (TaskRequest("t", "k", (), {}, Resources(gpu=1)), "gpu"),
        (TaskRequest("t", "k", (), {}, image="acme/a:1"), "image"),
        (TaskRequest("t", "k", (), {}, options={"x": 1}), "options"),
    ]:
        with pytest.raises(ResourceError, match=field):
            target.check_resources(request)


def test_the_inline_target_takes_no_requests() -> None:
    from kitaru_local.targets import InlineTarget

    target = InlineTarget.__new__(InlineTarget)
    with pytest.raises(TaskError):
        target.submit(TaskRequest("t", "k", (), {}))
    assert target.find("t") is None


# -- the worker ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [("kitaru", "0.0.1"), ("python", [2, 7]), ("version", 1)])
def test_the_worker_refuses_a_spec_from_other_versions_in_one_line(
    tmp_path: Path, field: str, value: Any
) -> None:
    from kitaru_core import worker
    from kitaru_core.runtime.protocol import task_spec

    config = {"root": str(tmp_path / "store")}
    store = worker.build_store("local", config)
    spec = task_spec(exec_id=EXEC, call_id="echo#1", checkpoint="echo", attempt=1,
                     task_name=task_name(EXEC, "echo#1", 1), prefix="tasks/e/echo-1/1",
                     function={"module": "kitaru_core.testing.tasks", "qualname": "echo"},
                     inputs={}, positional=False)
    spec[field] = value
    store.write_file("tasks/e/echo-1/1/spec.json", json.dumps(spec).encode())
    argv = worker_argv("local", config, "tasks/e/echo-1/1/spec.json")
    assert worker.main(list(argv[2:])) == 1
    result = json.loads(store.read_file("tasks/e/echo-1/1/result.json"))
    assert result["status"] == "error" and result["retryable"] is False
    message = result["error"]["message"]
    assert "runner has" in message and "kitaru image dockerfile" in message and "\n" not in message


def test_the_worker_reads_its_spec_through_the_store_plugin(tmp_path: Path) -> None:
    from kitaru_core import worker
    from kitaru_core.runtime.protocol import task_spec
    from kitaru_core.serializers import deserialize, serialize

    config = {"root": str(tmp_path / "store")}
    store = worker.build_store("local", config)
    data, serializer = serialize({"q": 7})
    key = __import__("hashlib").sha256(data).hexdigest()
    store.put_blob(data, key)
    spec = task_spec(exec_id=EXEC, call_id="echo#1", checkpoint="echo", attempt=1,
                     task_name=task_name(EXEC, "echo#1", 1), prefix="p/1",
                     function={"module": "kitaru_core.testing.tasks", "qualname": "echo"},
                     inputs={"value": {"key": key, "serializer": serializer}}, positional=False)
    store.write_file("p/1/spec.json", json.dumps(spec).encode())
    assert worker.main(list(worker_argv("local", config, "p/1/spec.json")[2:])) == 0
    out = json.loads(store.read_file("p/1/result.json"))["output"]
    assert deserialize(store.get_blob(out["key"]), out["serializer"]) == {"q": 7}
    # A spec key the store does not hold: a clear exit, nothing written.
    assert worker.main(list(worker_argv("local", config, "p/2/spec.json")[2:])) == 2
    assert store.read_file("p/2/result.json") is None
