"""The `ArtifactStore` conformance suite: blobs by sha256 key, named files, URLs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...errors import ArtifactNotFoundError, ConfigError
from ...interfaces import ArtifactStore
from ..base import ComponentConformance
from ..caps import StoreCaps

_MiB = 2**20


def blob(size: int, seed: str = "") -> tuple[bytes, str]:
    """`size` bytes unique to this call (and `seed`), with their sha256 key."""
    head = f"{seed}{uuid.uuid4().hex}".encode()
    data = (head * (size // len(head) + 1))[:size] if size else b""
    return data, hashlib.sha256(data).hexdigest()


class ArtifactStoreConformance(ComponentConformance):
    """Every artifact store flavor passes this. Subclass it, set `flavor` (and `caps`), and
    provide a `config` fixture whose store is empty for each test (a fresh prefix or folder).

    Optional fixtures: `url_storage_options` (keyword arguments `fsspec.open` needs to open
    `store.url(...)` in the test, such as an emulator's endpoint) and `subprocess_env`
    (environment a second process needs to reach the backend).
    """

    component_type: ClassVar[str] = "artifact_store"
    caps: ClassVar[StoreCaps] = StoreCaps()

    @pytest.fixture
    def store(self, make_component: Callable[..., ArtifactStore]) -> ArtifactStore:
        return make_component()

    @pytest.fixture
    def url_storage_options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def subprocess_env(self) -> dict[str, str]:
        return {}

    # -- blobs -------------------------------------------------------------------------
    @pytest.mark.parametrize("size", [1, 3000, 300_000])
    def test_put_blob_then_get_blob_returns_the_bytes(self, store: ArtifactStore, size: int):
        data, key = blob(size)
        store.put_blob(data, key)
        assert store.get_blob(key) == data

    def test_an_empty_blob_round_trips(self, store: ArtifactStore):
        store.put_blob(b"", hashlib.sha256(b"").hexdigest())
        assert store.get_blob(hashlib.sha256(b"").hexdigest()) == b""

    def test_a_large_blob_round_trips_and_is_put_again_as_a_noop(
        self, store: ArtifactStore, make_component: Callable[..., ArtifactStore]
    ):
        data, key = blob(9 * _MiB)
        store.put_blob(data, key)
        make_component().put_blob(data, key)  # a store that has not seen the key yet
        assert store.get_blob(key) == data

    def test_blobs_are_kept_apart_by_key(self, store: ArtifactStore):
        (a, ka), (b, kb) = blob(5000, "a"), blob(5000, "b")
        store.put_blob(a, ka)
        store.put_blob(b, kb)
        assert (store.get_blob(ka), store.get_blob(kb)) == (a, b)

    def test_putting_a_stored_blob_again_is_a_noop(
        self, store: ArtifactStore, make_component: Callable[..., ArtifactStore]
    ):
        data, key = blob(4000)
        store.put_blob(data, key)
        store.put_blob(data, key)
        other = make_component()  # no memory of the key: meets the stored blob in the backend
        other.put_blob(data, key)
        assert other.get_blob(key) == data == store.get_blob(key)

    def test_get_blob_of_an_unknown_key_raises_artifact_not_found(self, store: ArtifactStore):
        _, key = blob(10)
        with pytest.raises(ArtifactNotFoundError):
            store.get_blob(key)

    def test_get_range_returns_that_part_of_a_blob(self, store: ArtifactStore):
        data, key = blob(300_000)
        store.put_blob(data, key)
        for start, end in ((0, 10), (1000, 1001), (123_456, 250_000), (299_990, 300_000),
                           (299_990, 400_000)):
            assert store.get_range(key, start, end) == data[start:end], (start, end)
        with pytest.raises(ArtifactNotFoundError):
            store.get_range(blob(10, "missing")[1], 0, 5)

    def test_a_second_store_with_the_same_config_reads_the_blobs(
        self, store: ArtifactStore, make_component: Callable[..., ArtifactStore]
    ):
        data, key = blob(2500)
        store.put_blob(data, key)
        assert make_component().get_blob(key) == data

    def test_concurrent_puts_of_one_blob_all_succeed(
        self, store: ArtifactStore, make_component: Callable[..., ArtifactStore]
    ):
        data, key = blob(200_000)
        stores = [store, store, make_component(), make_component()]
        errors: list[BaseException] = []

        def put(one: ArtifactStore) -> None:
            try:
                one.put_blob(data, key)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=put, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert make_component().get_blob(key) == data

    # -- streams ---------------------------------------------------------------------------
    @pytest.mark.parametrize("sizes", [[1000, 2000], [4 * _MiB, 4 * _MiB, _MiB + 7]],
                             ids=["small", "large"])
    def test_put_stream_stores_the_concatenation_under_its_key(
        self, store: ArtifactStore, sizes: list[int]
    ):
        parts = [blob(n)[0] for n in sizes]
        whole = b"".join(parts)
        assert store.put_stream(iter(parts)) == (hashlib.sha256(whole).hexdigest(), len(whole))
        assert store.get_blob(hashlib.sha256(whole).hexdigest()) == whole

    def test_put_stream_of_a_stored_value_is_a_noop(
        self, store: ArtifactStore, make_component: Callable[..., ArtifactStore]
    ):
        data, key = blob(9 * _MiB)
        store.put_blob(data, key)
        assert make_component().put_stream(iter([data[:5 * _MiB], data[5 * _MiB:]])) == (key, len(data))
        assert store.get_blob(key) == data

    def test_using_the_store_leaves_this_threads_event_loop_alone(self, store: ArtifactStore):
        """A flow that used the store may still run coroutines on this thread's event loop
        (Pydantic AI's `run_sync` does): a store must not make a loop of its own current here."""
        import asyncio
        import warnings

        data, key = blob(9 * _MiB + 1)
        store.put_stream(iter([data[: 5 * _MiB], data[5 * _MiB:]]))
        store.put_blob(*blob(3000))
        store.get_blob(key)
        store.write_file("tasks/loop/result.json", b"{}")
        store.read_file("tasks/loop/result.json")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                loop = asyncio.get_event_loop_policy().get_event_loop()
            except RuntimeError:  # no loop set in this thread (say, after asyncio.run)
                loop = None
        assert loop is None or not loop.is_running(), (
            "the store left a running event loop current in this thread"
        )

    # -- housekeeping (kitaru gc) -------------------------------------------------------------
    def test_housekeeping_is_declared_truthfully(self, store: ArtifactStore, flavor_caps: StoreCaps):
        if flavor_caps.housekeeping:
            assert list(store.list_blobs()) == []  # the store of each test starts empty
        else:
            with pytest.raises(ConfigError):
                list(store.list_blobs())

    @pytest.mark.requires("housekeeping")
    def test_list_blobs_lists_every_blob_with_its_size_and_time(self, store: ArtifactStore):
        (a, ka), (b, kb) = blob(100, "a"), blob(5000, "b")
        store.put_blob(a, ka)
        store.put_stream(iter([b[:2000], b[2000:]]))
        listed = {info.key: info for info in store.list_blobs()}
        assert set(listed) == {ka, kb}
        assert (listed[ka].size, listed[kb].size) == (100, 5000)
        day = 24 * 3600  # generous: a backend's clock may differ from this machine's
        assert all(abs(info.modified - time.time()) < day for info in listed.values())

    @pytest.mark.requires("housekeeping")
    def test_delete_blob_removes_it_and_says_whether_it_was_there(self, store: ArtifactStore):
        data, key = blob(3000)
        store.put_blob(data, key)
        assert store.delete_blob(key) is True
        with pytest.raises(ArtifactNotFoundError):
            store.get_blob(key)
        assert store.delete_blob(key) is False
        assert [info.key for info in store.list_blobs()] == []

    @pytest.mark.requires("housekeeping")
    def test_a_blob_put_again_after_its_deletion_is_stored_again(self, store: ArtifactStore):
        data, key = blob(3000)
        store.put_blob(data, key)
        store.delete_blob(key)
        store.put_blob(data, key)
        assert store.get_blob(key) == data

    @pytest.mark.requires("housekeeping")
    def test_delete_files_removes_the_named_files_under_a_prefix(self, store: ArtifactStore):
        for path in ("tasks/e1/a/1/spec.json", "tasks/e1/a/1/result.json", "tasks/e2/a/1/spec.json"):
            store.write_file(path, b"{}")
        data, key = blob(3000)
        store.put_blob(data, key)
        store.delete_files("tasks/e1")
        assert store.read_file("tasks/e1/a/1/spec.json") is None
        assert store.read_file("tasks/e1/a/1/result.json") is None
        assert store.read_file("tasks/e2/a/1/spec.json") == b"{}"
        assert store.get_blob(key) == data
        with pytest.raises(ValueError):
            store.delete_files("blobs")

    # -- named files ----------------------------------------------------------------------
    def test_write_file_then_read_file_returns_the_bytes(self, store: ArtifactStore):
        store.write_file("tasks/e1/call-1/1/spec.json", b'{"a": 1}')
        assert store.read_file("tasks/e1/call-1/1/spec.json") == b'{"a": 1}'

    def test_write_file_replaces_the_file(self, store: ArtifactStore):
        store.write_file("tasks/x/result.json", b"first")
        store.write_file("tasks/x/result.json", b"second, longer")
        assert store.read_file("tasks/x/result.json") == b"second, longer"

    def test_read_file_of_a_missing_file_is_none(self, store: ArtifactStore):
        assert store.read_file(f"tasks/{uuid.uuid4().hex}/result.json") is None

    def test_readers_never_see_a_partial_named_file(self, store: ArtifactStore):
        versions = [bytes([65 + i]) * (512 * 1024) for i in range(2)]
        path = "tasks/race/result.json"
        done = threading.Event()
        seen: list[bytes | None] = []

        def read() -> None:
            while not done.is_set():
                seen.append(store.read_file(path))

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(6):
                store.write_file(path, versions[i % 2])
        finally:
            done.set()
            reader.join()
        assert seen, "the reader never ran"
        assert all(s is None or s in versions for s in seen), "a reader saw a partial file"
        assert store.read_file(path) == versions[1]

    def test_url_opens_the_named_file_with_fsspec(
        self, store: ArtifactStore, url_storage_options: dict[str, Any]
    ):
        import fsspec

        store.write_file("tasks/u/spec.json", b"spec bytes")
        with fsspec.open(store.url("tasks/u/spec.json"), "rb", **url_storage_options) as fh:
            assert fh.read() == b"spec bytes"

    # -- declarations, config, lifecycle ---------------------------------------------------
    def test_process_local_is_declared(self, store: ArtifactStore, flavor_caps: StoreCaps):
        assert isinstance(store.process_local, bool)
        if flavor_caps.process_local is not None:
            assert store.process_local is flavor_caps.process_local

    def test_config_refuses_unknown_keys(self, flavor_spec: Any, config: dict[str, Any]):
        from pydantic import ValidationError

        with pytest.raises(ValidationError):
            flavor_spec.config.model_validate({**config, "no_such_key": 1})

    def test_close_can_be_called_twice(self, make_component: Callable[..., ArtifactStore]):
        store = make_component()
        data, key = blob(100)
        store.put_blob(data, key)
        store.close()
        store.close()

    @pytest.mark.slow
    @pytest.mark.requires("shared_between_processes")
    def test_another_process_reads_and_writes_the_same_store(
        self,
        store: ArtifactStore,
        flavor_name: str,
        config: dict[str, Any],
        component_home: Path,
        subprocess_env: dict[str, str],
    ):
        data, key = blob(3000, "parent")
        store.put_blob(data, key)
        store.write_file("tasks/p/spec.json", b"from the parent")
        job = {
            "flavor": flavor_name, "config": config, "home": str(component_home), "key": key,
            "modules": list(self.plugin_modules),
        }
        out = subprocess.run(
            [sys.executable, "-c", _CHILD], input=json.dumps(job), capture_output=True, text=True,
            env={**os.environ, **subprocess_env}, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        child = json.loads(out.stdout.strip().splitlines()[-1])
        assert child["blob_sha256"] == key and child["spec"] == "from the parent"
        assert store.get_blob(child["key"]) == child["data"].encode()
        assert store.read_file("tasks/c/result.json") == b"from the child"


# The second process builds the store as a worker does: from the flavor name and config.
_CHILD = """
import hashlib, importlib, json, sys
from pathlib import Path
from kitaru_core.interfaces import ComponentContext
from kitaru_core.plugins.manager import PluginManager
from kitaru_core.stack import resolve_config

job = json.load(sys.stdin)
manager = PluginManager()
for name in job["modules"]:
    manager.register(importlib.import_module(name), name=name)
if not job["modules"]:
    manager.load_entry_points()
flavor = manager.flavor("artifact_store", job["flavor"])
context = ComponentContext(home=Path(job["home"]), stack_name="conformance")
config = resolve_config(job["config"], home=Path(job["home"]))
store = flavor.load_class()(flavor.config.model_validate(config), context)
seen = store.get_blob(job["key"])
data = "written by the child " * 100
key = hashlib.sha256(data.encode()).hexdigest()
store.put_blob(data.encode(), key)
store.write_file("tasks/c/result.json", b"from the child")
spec = store.read_file("tasks/p/spec.json").decode()
store.close()
print(json.dumps({"blob_sha256": hashlib.sha256(seen).hexdigest(), "key": key, "data": data,
                  "spec": spec}))
"""
