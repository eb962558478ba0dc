"""Faults of the record and the store: atomic execution creation, damaged or truncated
registry files, deleting executions, listing and deleting blobs, streamed blobs."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest
from kitaru_local.configs import LocalArtifactStoreConfig, SqliteRegistryConfig
from kitaru_local.folder_store import LocalArtifactStore
from kitaru_local.sqlite_registry import SqliteRegistry

import kitaru
from kitaru import checkpoint, flow
from kitaru_core.errors import RegistryDamagedError
from kitaru_core.interfaces import ComponentContext
from kitaru_core.stack import get_stack


@checkpoint
def shout(text: str) -> str:
    kitaru.log(loud=True)
    print("shouting", text)
    return text.upper() * 1000  # above the inline limit: a blob of its own


@flow
def shouting(text: str) -> str:
    return shout(text).load()[:5]


def _registry(home: Path) -> SqliteRegistry:
    return SqliteRegistry(SqliteRegistryConfig(), ComponentContext(home, "local"))


def _store(home: Path) -> LocalArtifactStore:
    return LocalArtifactStore(LocalArtifactStoreConfig(), ComponentContext(home, "local"))


# -- creating an execution is one transaction with its inputs ------------------------------------


def test_an_execution_and_its_inputs_are_recorded_together_or_not_at_all(monkeypatch, kitaru_home):
    def broken(conn, artifacts):
        raise sqlite3.OperationalError("injected failure while recording the inputs")

    with monkeypatch.context() as patched:
        patched.setattr(SqliteRegistry, "_insert_artifacts", staticmethod(broken))
        with pytest.raises(sqlite3.OperationalError, match="injected"):
            shouting.run("a")
    # No execution was left behind without its inputs (it could never be resumed).
    assert get_stack().registry.list_executions() == []


# -- a damaged registry is never an empty history ----------------------------------------------


def test_a_garbage_registry_file_is_reported_as_damaged_with_its_path(kitaru_home):
    assert shouting("a") == "AAAAA"
    db = kitaru_home / "kitaru.db"
    get_stack().registry.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database, it is garbage" * 200)

    with pytest.raises(RegistryDamagedError, match=str(db)) as err:
        _registry(kitaru_home)
    assert "backup" in str(err.value) and "\n" not in str(err.value)


def test_a_truncated_zero_byte_registry_is_damaged_not_empty(kitaru_home):
    assert shouting("a") == "AAAAA"
    db = kitaru_home / "kitaru.db"
    get_stack().registry.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"")
    os.utime(db, (1_000_000_000, 1_000_000_000))  # truncated long ago, not being created

    with pytest.raises(RegistryDamagedError, match="0 bytes"):
        _registry(kitaru_home)


def test_a_registry_truncated_mid_file_fails_its_integrity_check(kitaru_home):
    for i in range(30):
        shouting(f"text {i}")
    registry = get_stack().registry
    assert registry.check_integrity() == [] and registry.check_integrity(full=True) == []
    registry.close()
    db = kitaru_home / "kitaru.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = db.stat().st_size
    original = db.read_bytes()
    with open(db, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(RegistryDamagedError, match=str(db)):
        _registry(kitaru_home).list_artifacts()

    # Pages overwritten in the middle: the file opens, and the checks find the damage.
    page = 4096
    damaged = bytearray(original)
    for start in range(2 * page, len(damaged) - page, 3 * page):
        damaged[start + 100:start + 600] = os.urandom(500)
    db.write_bytes(bytes(damaged))
    try:
        reopened = _registry(kitaru_home)
    except RegistryDamagedError:
        return  # found at once: also never an empty history
    problems = reopened.check_integrity(full=True)
    assert problems and all(str(db) in p for p in problems)


# -- deleting executions, listing what blobs are referenced --------------------------------------


def test_delete_executions_removes_their_records_but_not_memory(kitaru_home):
    @flow
    def remembering(text: str) -> str:
        kitaru.memory.set("last", text * 1000)
        return shout(text).load()[:3]

    keep = shouting.run("keep").wait() and kitaru.KitaruClient().executions.latest()
    gone = remembering.run("gone")
    assert gone.wait() == "GON"
    registry = get_stack().registry
    keys_before = registry.referenced_blob_keys()

    assert registry.delete_executions([gone.exec_id, "no-such-id"]) == 1
    assert [e.exec_id for e in registry.list_executions()] == [keep.exec_id]
    assert registry.get_calls(gone.exec_id) == []
    assert registry.get_logs(gone.exec_id) == [] and registry.get_metadata(gone.exec_id) == []
    assert registry.list_artifacts(exec_id=gone.exec_id) == [
        a for a in registry.list_artifacts(exec_id=gone.exec_id) if a.name.startswith("memory:")
    ]
    assert kitaru.memory.get("last", scope="flow:remembering") == "gone" * 1000
    keys_after = registry.referenced_blob_keys()
    assert keys_after < keys_before  # the deleted output's blob is no longer referenced
    assert all(registry.get_artifact(a.artifact_id) for a in registry.list_artifacts(exec_id=keep.exec_id))


# -- blobs: list, delete, stream ------------------------------------------------------------------


def test_list_and_delete_blobs_include_a_killed_writers_leftovers(kitaru_home):
    store = _store(kitaru_home)
    data = b"x" * 5000
    key = hashlib.sha256(data).hexdigest()
    store.put_blob(data, key)
    # A writer killed mid-write: a short file under another key, and a temporary file.
    partial_key = hashlib.sha256(b"y" * 5000).hexdigest()
    folder = store.root / "blobs" / partial_key[:2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / partial_key).write_bytes(b"y" * 100)
    (store.root / "blobs" / "incoming").mkdir(exist_ok=True)
    (store.root / "blobs" / "incoming" / "123-abc").write_bytes(b"half")

    listed = {b.key: b.size for b in store.list_blobs()}
    assert listed == {key: 5000, partial_key: 100, "incoming/123-abc": 4}
    assert store.delete_blob(partial_key) and store.delete_blob("incoming/123-abc")
    assert not store.delete_blob(partial_key)
    assert {b.key for b in store.list_blobs()} == {key}
    with pytest.raises(ValueError):
        store.delete_blob("../../kitaru.db")


def test_put_blob_of_a_deleted_blob_writes_it_again(kitaru_home):
    store = _store(kitaru_home)
    data = b"z" * 5000
    key = hashlib.sha256(data).hexdigest()
    store.put_blob(data, key)
    assert store.delete_blob(key)
    store.put_blob(data, key)  # this store remembered the key: it must see it is gone
    assert store.get_blob(key) == data


def test_putting_an_existing_blob_refreshes_its_time_for_gc(kitaru_home):
    store = _store(kitaru_home)
    data = b"w" * 5000
    key = hashlib.sha256(data).hexdigest()
    store.put_blob(data, key)
    path = store.root / "blobs" / key[:2] / key
    os.utime(path, (1_000_000_000, 1_000_000_000))
    _store(kitaru_home).put_blob(data, key)  # another process finds it in place
    assert path.stat().st_mtime > 1_000_000_000
    os.utime(path, (1_000_000_000, 1_000_000_000))
    store.put_blob(data, key)  # the same process, which remembers the key
    assert path.stat().st_mtime > 1_000_000_000


def test_put_stream_stores_the_chunks_under_their_hash(kitaru_home):
    store = _store(kitaru_home)
    chunks = [b"a" * 1000, b"b" * 3000, b"", b"c"]
    key, size = store.put_stream(iter(chunks))
    data = b"".join(chunks)
    assert (key, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.get_blob(key) == data
    assert store.put_stream(iter(chunks)) == (key, size)  # already there: same answer
    assert [b.key for b in store.list_blobs()] == [key]  # no temporary file left


def test_a_failed_stream_leaves_no_blob_and_no_temporary_file(kitaru_home):
    store = _store(kitaru_home)

    def chunks():
        yield b"a" * 1000
        raise RuntimeError("the serializer failed halfway")

    with pytest.raises(RuntimeError):
        store.put_stream(chunks())
    assert list(store.list_blobs()) == []
