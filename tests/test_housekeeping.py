"""`kitaru executions delete`, `kitaru gc`, `kitaru doctor` and the check in `kitaru status`."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru_core.errors import ArtifactDamagedError, InvalidStateError, InvalidValueError
from kitaru_core.runtime.owner import self_owner
from kitaru_core.stack import get_stack

OLD = 1_000_000_000.0  # a modification time far in the past (2001)


@checkpoint
def make_report(topic: str) -> str:
    print(f"writing about {topic}")
    return f"report on {topic} " * 500  # a blob of its own, above the inline limit


@flow
def reporting(topic: str) -> str:
    return make_report(topic).load()[:9]


def _blob_keys() -> set[str]:
    return {b.key for b in get_stack().artifact_store.list_blobs()}


def _age_all_blobs() -> None:
    for blob in get_stack().artifact_store.list_blobs():
        path = get_stack().artifact_store.root / "blobs" / (
            blob.key if "/" in blob.key else f"{blob.key[:2]}/{blob.key}"
        )
        os.utime(path, (OLD, OLD))


# -- delete ----------------------------------------------------------------------------------


def test_delete_then_gc_frees_exactly_the_deleted_executions_blobs():
    client = KitaruClient()
    kept = reporting.run("cats")
    gone = reporting.run("dogs")
    assert kept.wait() == gone.wait() == "report on"
    kept_keys = {a.key for a in client.artifacts.list(kept.exec_id)}
    gone_keys = {a.key for a in client.artifacts.list(gone.exec_id)} - kept_keys
    assert gone_keys  # the dogs report is a blob of its own

    result = client.executions.delete(gone.exec_id[:10])
    assert result.deleted == [gone.exec_id] and result.refused == {}
    assert [e.exec_id for e in client.executions.list()] == [kept.exec_id]

    _age_all_blobs()
    kept_blobs = kept_keys & _blob_keys()
    assert kept_blobs  # the cats report
    dry = client.gc()
    assert dry.dry_run and {b.key for b in dry.removable} == gone_keys & _blob_keys()
    assert gone_keys & _blob_keys()  # a dry run removes nothing
    done = client.gc(dry_run=False)
    assert done.removed == len(dry.removable)
    assert not (gone_keys & _blob_keys())
    assert kept_blobs <= _blob_keys()
    assert client.executions.get(kept.exec_id).checkpoints[0].output.load().startswith("report")


def test_delete_by_age_and_status_and_what_is_refused(monkeypatch):
    client = KitaruClient()
    old = reporting.run("old")
    old.wait()
    registry = get_stack().registry
    registry.update_execution(old.exec_id, {"created_at": time.time() - 40 * 86400})
    recent = reporting.run("recent")
    recent.wait()
    # A waiting execution nobody owns, and a running one whose runner (this process) is alive.
    waiting = reporting.run("waiting")
    waiting.wait()
    registry.update_execution(waiting.exec_id, {"status": "waiting", "created_at": 0.0})
    live = reporting.run("live")
    live.wait()
    registry.update_execution(live.exec_id, {"status": "running", "owner": self_owner(),
                                             "lease_expires": time.time() + 60, "created_at": 0.0})

    preview = client.executions.delete(older_than="30d", dry_run=True)
    assert sorted(preview.deleted) == [old.exec_id]
    assert set(preview.refused) == {waiting.exec_id, live.exec_id}
    assert "--force" in preview.refused[waiting.exec_id]
    assert "cancel it first" in preview.refused[live.exec_id]
    assert len(client.executions.list()) == 4  # a dry run deletes nothing

    forced = client.executions.delete(older_than="30d", force=True)
    assert sorted(forced.deleted) == sorted([old.exec_id, waiting.exec_id])
    assert list(forced.refused) == [live.exec_id]  # never while its runner is alive
    with pytest.raises(InvalidStateError, match="cancel it first"):
        client.executions.delete(live.exec_id, force=True)

    assert client.executions.delete(status="completed").deleted == [recent.exec_id]
    with pytest.raises(InvalidValueError, match="name the executions"):
        client.executions.delete()
    with pytest.raises(InvalidValueError, match="duration"):
        client.executions.delete(older_than="a month")


def test_memory_written_by_a_deleted_execution_stays_readable_after_gc():
    @flow
    def remembering() -> str:
        kitaru.memory.set("notes", "kept " * 1000)
        return "done"

    handle = remembering.run()
    assert handle.wait() == "done"
    client = KitaruClient()
    client.executions.delete(handle.exec_id)
    _age_all_blobs()
    client.gc(dry_run=False)
    assert kitaru.memory.get("notes", scope="flow:remembering") == "kept " * 1000


# -- gc safety ---------------------------------------------------------------------------------


def test_gc_keeps_recent_blobs_and_blobs_of_a_live_execution():
    store = get_stack().artifact_store
    young = b"written a moment ago by a run that has not recorded it yet" * 100
    store.put_blob(young, hashlib.sha256(young).hexdigest())
    client = KitaruClient()
    report = client.gc()
    assert report.removable == [] and report.kept_recent == 1

    # Old, but newer than the start of an execution that is still running somewhere.
    handle = reporting.run("live")
    handle.wait()
    registry = get_stack().registry
    registry.update_execution(handle.exec_id, {"status": "running", "created_at": OLD - 10})
    _age_all_blobs()
    assert client.gc().removable == []
    registry.update_execution(handle.exec_id, {"status": "completed"})
    assert {b.key for b in client.gc().removable} == {hashlib.sha256(young).hexdigest()}
    assert client.gc(grace="100000d").removable == []


def test_a_partial_blob_left_by_a_crash_is_collected_and_never_read_as_a_value(kitaru_home):
    handle = reporting.run("crash")
    assert handle.wait() == "report on"
    client = KitaruClient()
    art = client.executions.get(handle.exec_id).checkpoints[0].output
    path = kitaru_home / "artifacts" / "blobs" / art.key[:2] / art.key
    full = path.read_bytes()
    path.write_bytes(full[: len(full) // 2])  # cut short (a power loss in default mode)
    with pytest.raises(ArtifactDamagedError, match="doctor --check"):
        client.artifacts.get(art.artifact_id).load()
    health = client.check(full=True)
    assert not health.ok and art.key in health.problems[0] and "cut short" in health.problems[0]

    # A killed writer's leftovers: a temporary file of a streamed blob, a short blob.
    incoming = kitaru_home / "artifacts" / "blobs" / "incoming"
    incoming.mkdir(exist_ok=True)
    (incoming / "999-dead").write_bytes(b"half a value")
    orphan = hashlib.sha256(b"never finished").hexdigest()
    (kitaru_home / "artifacts" / "blobs" / orphan[:2]).mkdir(exist_ok=True)
    (kitaru_home / "artifacts" / "blobs" / orphan[:2] / orphan).write_bytes(b"never")
    _age_all_blobs()
    removed = client.gc(dry_run=False)
    assert {b.key for b in removed.removable} == {"incoming/999-dead", orphan}


# -- command line ------------------------------------------------------------------------------


def test_cli_delete_gc_doctor_and_status(cli, kitaru_home: Path):
    first = reporting.run("one")
    second = reporting.run("two")
    first.wait(), second.wait()

    status = cli("status")
    assert status.exit_code == 0 and "registry:     ok (quick check" in status.stdout
    assert cli("status", "-o", "json").json()["registry_check"]["ok"] is True
    doctor = cli("doctor", "--check")
    assert doctor.exit_code == 0 and "blobs verified" in doctor.stdout

    bulk = cli("executions", "delete", "--status", "completed")
    assert bulk.exit_code == 1 and "--yes" in bulk.stderr  # not a terminal: no silent bulk delete
    dry = cli("executions", "delete", "--status", "completed", "--dry-run", "-o", "json").json()
    assert sorted(dry["deleted"]) == sorted([first.exec_id, second.exec_id])
    done = cli("executions", "delete", first.exec_id)
    assert done.exit_code == 0 and "deleted 1 executions" in done.stdout and "kitaru gc" in done.stdout

    _age_all_blobs()
    dry_gc = cli("gc")
    assert dry_gc.exit_code == 0 and "would free" in dry_gc.stdout and "--yes" in dry_gc.stdout
    freed = cli("gc", "--yes", "-o", "json").json()
    assert freed["removed_blobs"] >= 1 and not freed["dry_run"]
    assert "nothing to free" in cli("gc").stdout
    bad = cli("gc", "--grace", "soon")
    assert bad.exit_code == 1 and "duration" in bad.stderr


def test_status_and_doctor_report_a_damaged_registry(cli, kitaru_home: Path):
    reporting.run("x").wait()
    get_stack().registry.close()
    db = kitaru_home / "kitaru.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(os.urandom(8192))
    from kitaru_core.stack import clear_stack_cache

    clear_stack_cache()
    status = cli("status")
    assert status.exit_code == 1 and "DAMAGED" in status.stdout and str(db) in status.stdout
    doctor = cli("doctor")
    assert doctor.exit_code == 1 and "backup" in doctor.stdout
    listing = cli("executions", "list")
    assert listing.exit_code == 1 and str(db) in listing.stderr and "damaged" in listing.stderr
    assert listing.stderr.count("\n") == 1  # one line, no traceback


def test_a_blob_found_in_place_during_gc_is_kept(monkeypatch):
    store = get_stack().artifact_store
    data = b"an old blob a new run is about to reuse" * 100
    key = hashlib.sha256(data).hexdigest()
    store.put_blob(data, key)
    _age_all_blobs()
    real = type(store).list_blobs
    listings = []

    def listing(self):
        listings.append(1)
        if len(listings) == 2:  # between gc's two passes a run puts the same bytes again
            type(store)(store.config, store.context).put_blob(data, key)
        return real(self)

    monkeypatch.setattr(type(store), "list_blobs", listing)
    report = KitaruClient().gc(dry_run=False)
    assert [b.key for b in report.removable] == [key] and report.removed == 0
    assert store.get_blob(key) == data
