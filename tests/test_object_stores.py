"""The object stores (`s3`, `gcs`, `azure`) on their emulators: one parametrised suite.

Each runs the ArtifactStore conformance suite, then the checks that are theirs: config
errors, missing buckets, lazy SDK imports, and a real flow end to end.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from emulators import EMULATORS, Emulator, open_options, store_config, worker_env

from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.errors import ArtifactStoreError, ConfigError
from kitaru_core.stack import StackStore
from kitaru_core.testing import ArtifactStoreConformance, StoreCaps

FLAVORS = sorted(EMULATORS)


@pytest.fixture(autouse=True)
def _event_loop_kept() -> Any:
    """The tests open URLs with adlfs directly (`fsspec.open`), and adlfs makes fsspec's running
    loop this thread's current one (see kitaru_azure.blob_store): put the thread's own back."""
    import asyncio

    policy = asyncio.get_event_loop_policy()
    before = getattr(getattr(policy, "_local", None), "_loop", None)
    yield
    if getattr(getattr(policy, "_local", None), "_loop", None) is not before:
        policy.set_event_loop(before)


@pytest.fixture(params=FLAVORS)
def cloud(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def emulator(cloud: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The flavor's emulator, with the ambient environment a user's machine would have."""
    found: Emulator = request.getfixturevalue(EMULATORS[cloud])
    for name, value in found.env.items():
        monkeypatch.setenv(name, value)
    return found


class TestObjectStores(ArtifactStoreConformance):
    caps = StoreCaps(shared_between_processes=True, process_local=False, housekeeping=True)

    @pytest.fixture
    def flavor_name(self, cloud: str) -> str:
        return cloud

    @pytest.fixture
    def config(self, emulator: Emulator) -> dict[str, Any]:
        return store_config(emulator)

    @pytest.fixture
    def url_storage_options(self, emulator: Emulator) -> dict[str, Any]:
        return open_options(emulator)


# -- config and errors ----------------------------------------------------------------------------

BAD_PATHS = {"s3": "gs://bucket/x", "gcs": "s3://bucket/x", "azure": "s3://bucket/x"}


def _stack_file(tmp_path: Path, name: str, store: dict[str, Any]) -> Path:
    spec = {"name": name, "registry": {"flavor": "sqlite"}, "orchestrator": {"flavor": "local"},
            "artifact_store": store}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_a_path_of_another_cloud_is_refused_naming_the_scheme(cloud: str, tmp_path: Path):
    bad = _stack_file(tmp_path, "bad", {"flavor": cloud, "config": {"path": BAD_PATHS[cloud]}})
    with pytest.raises(ConfigError, match=r"artifact_store.config.*path.*must be a .*:// URL"):
        StackStore().register(bad)


def test_a_typo_in_a_config_key_is_refused_with_the_allowed_keys(cloud: str, tmp_path: Path):
    scheme = {"s3": "s3", "gcs": "gs", "azure": "az"}[cloud]
    config = {"path": f"{scheme}://b/p", "regoin": "x"}
    bad = _stack_file(tmp_path, "typo", {"flavor": cloud, "config": config})
    with pytest.raises(ConfigError, match=r"unknown key 'regoin' \(allowed keys: path, "):
        StackStore().register(bad)


def test_a_missing_bucket_is_a_store_error_naming_it(emulator: Emulator, flavor_store: Any):
    store = flavor_store({**store_config(emulator), "path": emulator.prefix().replace(
        emulator.bucket, "no-such-bucket-kitaru")})
    data = b"x" * 3000
    with pytest.raises(ArtifactStoreError, match=r"no-such-bucket-kitaru.*could not write blob"):
        store.put_blob(data, hashlib.sha256(data).hexdigest())


@pytest.fixture
def flavor_store(cloud: str, tmp_path: Path) -> Any:
    """Build the flavor's store from a config dict through the installed plugins."""
    from kitaru_core.interfaces import ComponentContext
    from kitaru_core.plugins.manager import default_manager
    from kitaru_core.stack import resolve_config

    built: list[Any] = []

    def make(config: dict[str, Any]) -> Any:
        flavor = default_manager().flavor("artifact_store", cloud)
        model = flavor.config.model_validate(resolve_config(config, home=tmp_path))
        store = flavor.load_class()(model, ComponentContext(home=tmp_path, stack_name="t"))
        built.append(store)
        return store

    yield make
    for store in built:
        store.close()


def test_listing_and_validating_the_cloud_flavors_imports_no_sdk(tmp_path: Path):
    """`kitaru plugins list` and `stack validate` stay light: SDKs load when a store is used."""
    code = textwrap.dedent("""
        import json, sys
        from kitaru_core.plugins.manager import default_manager
        from kitaru_core.stack import validate_stack
        manager = default_manager()
        names = sorted(f.name for p in manager.plugins() for f in p.flavors if f.type == "artifact_store")
        validate_stack({"name": "x", "artifact_store": {"flavor": "s3", "config": {"path": "s3://b/p"}}})
        validate_stack({"name": "y", "artifact_store": {"flavor": "gcs", "config": {"path": "gs://b/p"}}})
        validate_stack({"name": "z", "artifact_store": {"flavor": "azure", "config": {"path": "az://c/p"}}})
        sdks = ("s3fs", "boto3", "botocore", "aiobotocore", "gcsfs", "google", "adlfs", "azure")
        # a namespace package (no file: `google`, made by google-cloud-aiplatform's nspkg .pth at
        # start-up) holds no SDK code
        with_code = {m for m, mod in list(sys.modules.items()) if getattr(mod, "__file__", None)}
        loaded = sorted({m.split(".")[0] for m in with_code} & set(sdks))
        print(json.dumps({"flavors": names, "loaded": loaded}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"s3", "gcs", "azure"} <= set(found["flavors"])
    assert found["loaded"] == []


# -- a real flow, end to end ---------------------------------------------------------------------

NOTES_SIZE = 100_000  # far above the registry's inline limit: the output goes to the store


@checkpoint
def gather(topic: str) -> str:
    return (f"notes on {topic}. " * NOTES_SIZE)[:NOTES_SIZE]


@checkpoint
def summarize(notes: str) -> dict[str, Any]:
    return {"chars": len(notes), "first": notes[:14]}


@flow
def research(topic: str) -> dict[str, Any]:
    return summarize(gather(topic)).load()


def test_a_flow_runs_on_a_stack_with_the_object_store(
    cloud: str, emulator: Emulator, tmp_path: Path, kitaru_home: Path, monkeypatch: pytest.MonkeyPatch
):
    import fsspec

    config = store_config(emulator)
    name = f"on-{cloud}"
    StackStore().register(_stack_file(tmp_path, name, {"flavor": cloud, "config": config}))
    monkeypatch.setenv("KITARU_STACK", name)  # the client reads this stack's record and store

    handle = research.run("agents")
    assert handle.wait(timeout=120) == {"chars": NOTES_SIZE, "first": "notes on agent"}

    client = KitaruClient()
    execution = client.executions.get(handle.exec_id)
    assert [c.name for c in execution.checkpoints] == ["gather", "summarize"]
    notes = next(a for a in client.artifacts.list(handle.exec_id, name="gather") if a.direction == "output")
    assert notes.size > NOTES_SIZE and notes.load().startswith("notes on agents.")
    # the bytes are an object in the bucket under the configured prefix, none in the home folder
    blob_url = f"{config['path']}/blobs/{notes.key[:2]}/{notes.key}"
    with fsspec.open(blob_url, "rb", **open_options(emulator)) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == notes.key
    assert list(kitaru_home.rglob("blobs/*/*")) == []
    # the recorded stack keeps a secret as its ${env:} reference
    frozen = client._stack.registry.get_execution(handle.exec_id).stack
    assert frozen["artifact_store"] == {"flavor": cloud, "config": config}
    if cloud == "azure":
        secret = frozen["artifact_store"]["config"]["connection_string"]
        assert secret == "${env:AZURE_STORAGE_CONNECTION_STRING}"


@checkpoint(runtime="isolated")
def crunch(n: int) -> list[int]:
    return list(range(n))  # a few hundred KB of JSON: a blob the worker writes to the store


@flow
def isolated_on_the_store(n: int) -> int:
    return sum(crunch(n).load())


@pytest.mark.slow
def test_an_isolated_checkpoint_runs_through_the_object_store(
    cloud: str, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The remote protocol on an object store: spec, code, inputs, output and result.json all
    go through the bucket; the worker is another process that reads only the store."""
    for name, value in worker_env(emulator).items():
        monkeypatch.setenv(name, value)
    name = f"iso-{cloud}"
    stack = {"name": name, "registry": {"flavor": "sqlite"}, "orchestrator": {"flavor": "local"},
             "execution_target": {"flavor": "process"},
             "artifact_store": {"flavor": cloud, "config": store_config(emulator)}}
    (tmp_path / "iso.yaml").write_text(json.dumps(stack))
    StackStore().register(tmp_path / "iso.yaml")
    handle = isolated_on_the_store.run(50_000, stack=name)
    assert handle.wait(timeout=180) == sum(range(50_000))


@pytest.mark.slow
def test_a_put_that_finds_an_old_blob_refreshes_its_time(
    cloud: str, emulator: Emulator, flavor_store: Any, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
):
    """`kitaru gc` spares blobs touched within its grace period, so a run that reuses an old
    blob (and has not recorded it yet) must leave it with a fresh time."""
    if cloud == "gcs":
        request.applymarker(pytest.mark.xfail(
            reason="fake-gcs-server keeps an object's `updated` time on a metadata patch (and on "
            "a compose onto itself); GCS sets it", strict=True))
    from kitaru_core.stores import fsspec_store

    config = store_config(emulator)
    data = b"reused value " * 300
    key = hashlib.sha256(data).hexdigest()
    flavor_store(config).put_blob(data, key)
    before = {info.key: info.modified for info in flavor_store(config).list_blobs()}[key]
    time.sleep(1.1)  # object times have a resolution of one second
    monkeypatch.setattr(fsspec_store, "REFRESH_AFTER_SECONDS", 0.5)  # "old" after half a second
    store = flavor_store(config)  # remembers nothing: finds the blob in place
    store.put_blob(data, key)
    after = {info.key: info.modified for info in store.list_blobs()}[key]
    assert after > before
    assert store.get_blob(key) == data
