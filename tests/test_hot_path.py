"""The per-checkpoint fast paths keep their contracts: lineage links, blob repair,
the registry's schema and versions, argument binding, and the lean `--help` pages."""

from __future__ import annotations

import inspect
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kitaru_local.configs import LocalArtifactStoreConfig, SqliteRegistryConfig
from kitaru_local.folder_store import LocalArtifactStore
from kitaru_local.sqlite_registry import SqliteRegistry
from typer.testing import CliRunner

import kitaru
from kitaru import checkpoint, flow
from kitaru.client import ExecutionStatus
from kitaru.errors import FlowFailedError
from kitaru_core.errors import ArtifactNotFoundError, StorageError
from kitaru_core.interfaces import ComponentContext
from kitaru_core.records import ArtifactRecord, CallRecord
from kitaru_core.runtime.specs import CheckpointSpec

# -- an output passed on is linked, not copied --------------------------------------------


@checkpoint
def make_state(n: int) -> dict:
    return {"n": n, "items": list(range(n))}


@checkpoint
def summarize(state: dict, label: str) -> str:
    return f"{label}: {len(state['items'])}"


@flow
def pipeline(n: int) -> str:
    return summarize(make_state(n), "items").load()


def test_an_output_passed_to_another_checkpoint_is_linked_as_its_input(client):
    handle = pipeline.run(3)
    assert handle.wait() == "items: 3"
    calls = {c.name: c for c in client.executions.get(handle.exec_id).checkpoints}
    output = calls["make_state"].output
    inputs = {a.name: a for a in calls["summarize"].artifacts if a.direction == "input"}
    assert set(inputs) == {"state", "label"}
    linked = inputs["state"]
    assert linked.key == output.key  # the same stored bytes, not a second copy
    assert linked.metadata["source_artifact"] == output.artifact_id
    assert linked.load() == {"n": 3, "items": [0, 1, 2]}
    assert inputs["label"].load() == "items"


def test_an_executions_artifacts_share_its_first_two_digits_and_are_found_by_short_prefixes(
    client,
):
    """They sit side by side in the registry's id index (recording cost does not grow with
    history: bench/registry_growth.py); the other 30 digits are random."""
    handle = pipeline.run(3)
    handle.wait()
    execution = client.executions.get(handle.exec_id)
    ids = [a.artifact_id for c in execution.checkpoints for a in c.artifacts]
    assert len(ids) == 5 and len(set(ids)) == 5  # make_state: n, output; summarize: 2 inputs, output
    assert all(len(i) == 32 and int(i, 16) >= 0 and i[:2] == handle.exec_id[:2] for i in ids)
    for artifact_id in ids:  # a 12-character prefix, as `executions get` shows them, names one
        assert client.artifacts.get(artifact_id[:12]).artifact_id == artifact_id
    with pytest.raises(ArtifactNotFoundError, match="is ambiguous"):
        client.artifacts.get(handle.exec_id[:2])


def test_an_execution_id_that_is_not_hex_gives_its_artifacts_random_ids():
    from kitaru_core.runtime.artifacts import new_artifact_id

    ids = {new_artifact_id("run-1") for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len({i[:2] for i in ids}) > 1  # not one shared head
    assert {new_artifact_id("AB1234")[:2] for _ in range(20)} != {"AB"}  # hex digits are lowercase


fail_after_first = {"on": False}


@flow
def resumable(n: int) -> str:
    state = make_state(n)
    if fail_after_first["on"]:
        raise RuntimeError("stopped after the first checkpoint")
    return summarize(state, "again").load()


def test_a_recorded_output_is_read_and_linked_when_a_retry_uses_it(client):
    fail_after_first["on"] = True
    handle = resumable.run(2)
    with pytest.raises(FlowFailedError):
        handle.wait()
    fail_after_first["on"] = False
    execution = client.executions.retry(handle.exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    calls = {c.name: c for c in execution.checkpoints}
    assert calls["make_state"].attempts == 1  # answered from the record, not run again
    linked = next(a for a in calls["summarize"].artifacts if a.name == "state")
    assert linked.metadata["source_artifact"] == calls["make_state"].output.artifact_id
    assert kitaru.load(handle.exec_id, "output") == "again: 2"


# -- blobs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("durability", ["default", "strict"])
def test_a_short_blob_left_by_a_killed_writer_is_replaced(tmp_path: Path, durability: str):
    context = ComponentContext(home=tmp_path, stack_name="local", durability=durability)
    data = b'{"answer": 42}'
    key = "ab" + "0" * 62
    blob = tmp_path / "artifacts" / "blobs" / "ab" / key
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data[:3])  # what a writer killed mid-write leaves under the key

    LocalArtifactStore(LocalArtifactStoreConfig(), context).put_blob(data, key)

    assert blob.read_bytes() == data
    assert LocalArtifactStore(LocalArtifactStoreConfig(), context).get_blob(key) == data
    assert [p.name for p in blob.parent.iterdir()] == [key]  # no temporary file left


@pytest.mark.parametrize("durability", ["default", "strict"])
def test_two_threads_replacing_one_short_blob_both_succeed(
    tmp_path: Path, durability: str, monkeypatch: pytest.MonkeyPatch
):
    """Both puts of one value find a short file and replace it; their temporary files differ.

    The second put runs inside the first's rename, where a thread switch could put it.
    """
    import kitaru_local.folder_store as folder_store

    context = ComponentContext(home=tmp_path, stack_name="local", durability=durability)
    store = LocalArtifactStore(LocalArtifactStoreConfig(), context)
    data = b'{"answer": 42}'
    key = "ab" + "0" * 62
    blob = tmp_path / "artifacts" / "blobs" / "ab" / key
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data[:3])
    real_replace = os.replace
    nested: list[bool] = []

    def replace_after_another_put(src: str, dst: str) -> None:
        if not nested:
            nested.append(True)
            store.put_blob(data, key)  # the other thread, with the same store and bytes object
        real_replace(src, dst)

    monkeypatch.setattr(folder_store.os, "replace", replace_after_another_put)
    store.put_blob(data, key)

    assert nested and blob.read_bytes() == data
    assert [p.name for p in blob.parent.iterdir()] == [key]


def test_putting_a_stored_blob_again_keeps_the_file(tmp_path: Path):
    store = LocalArtifactStore(LocalArtifactStoreConfig(), ComponentContext(tmp_path, "local"))
    store.put_blob(b"same", "cd" + "1" * 62)
    path = tmp_path / "artifacts" / "blobs" / "cd" / ("cd" + "1" * 62)
    before = path.stat().st_ino
    LocalArtifactStore(LocalArtifactStoreConfig(), ComponentContext(tmp_path, "local")).put_blob(
        b"same", "cd" + "1" * 62
    )
    assert path.stat().st_ino == before and path.read_bytes() == b"same"


# -- the registry ---------------------------------------------------------------------------------


def _artifact(artifact_id: str, name: str, exec_id: str = "e1") -> ArtifactRecord:
    return ArtifactRecord(
        artifact_id=artifact_id, exec_id=exec_id, name=name, direction="saved", key="k",
        serializer="json", type_name="int", size=1,
    )


def _registry(home: Path) -> SqliteRegistry:
    return SqliteRegistry(SqliteRegistryConfig(), ComponentContext(home, "local"))


def test_versions_count_per_name_within_one_commit_and_across_them(tmp_path: Path):
    registry = _registry(tmp_path)
    call = CallRecord(exec_id="e1", call_id="c#1", name="c", seq=0, status="completed")
    registry.save_call(call, [_artifact("a1", "report"), _artifact("b1", "other"),
                              _artifact("a2", "report")])
    registry.add_artifacts([_artifact("a3", "report", exec_id="e2")])
    versions = {a.artifact_id: a.version for n in ("e1", "e2") for a in registry.list_artifacts(exec_id=n)}
    assert versions == {"a1": 1, "b1": 1, "a2": 2, "a3": 3}
    registry.close()


def test_a_version_1_registry_file_is_migrated_when_opened(tmp_path: Path):
    db = tmp_path / "kitaru.db"
    with sqlite3.connect(db) as conn:  # the version-1 layout, as the first release wrote it
        conn.execute(
            "CREATE TABLE artifacts (artifact_id TEXT PRIMARY KEY, exec_id TEXT NOT NULL, "
            "call_id TEXT, name TEXT NOT NULL, direction TEXT NOT NULL, key TEXT NOT NULL, "
            "serializer TEXT NOT NULL, type_name TEXT, size INTEGER, version INTEGER NOT NULL, "
            "created_at REAL, metadata TEXT)"
        )
        conn.execute("CREATE INDEX artifacts_name ON artifacts(name, version)")
        conn.executemany(
            "INSERT INTO artifacts (artifact_id, exec_id, name, direction, key, serializer, version) "
            "VALUES (?, 'old', 'report', 'saved', 'k', 'json', ?)",
            [("v1", 1), ("v2", 2)],
        )
        conn.execute("PRAGMA user_version=1")

    registry = _registry(tmp_path)
    registry.add_artifacts([_artifact("v3", "report")])

    assert registry.get_artifact("v3").version == 3  # counting goes on from the old rows
    indexes = {r[0] for r in registry._query("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "artifacts_name" not in indexes
    registry.close()


def _completed(call_id: str, seq: int, output: str, exec_id: str = "e1") -> CallRecord:
    return CallRecord(exec_id=exec_id, call_id=call_id, name="c", seq=seq, status="completed",
                      attempts=1, started_at=1.5, ended_at=2.25, output_artifact=output)


def _inline(artifact_id: str, name: str, data: bytes, exec_id: str = "e1") -> ArtifactRecord:
    return ArtifactRecord(
        artifact_id=artifact_id, exec_id=exec_id, name=name, direction="output", key="k" * 64,
        serializer="bytes", type_name="bytes", size=len(data), call_id="c#1", created_at=3.125,
        metadata={"source_artifact": "x"}, data=data,
    )


def test_a_completed_call_is_one_journal_row_that_every_reader_sees_folded(tmp_path: Path):
    writer = _registry(tmp_path)
    payload = bytes(range(256))  # every byte value survives the journal's encoding
    writer.save_call(_completed("c#1", 0, "o1"), [_inline("i1", "arg", b"7"), _inline("o1", "c", payload)])
    assert writer._conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 1
    assert writer._conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0] == 0

    reader = _registry(tmp_path)  # another connection, as another process would have
    (call,) = reader.get_calls("e1")
    assert (call.status, call.output_artifact, call.started_at, call.ended_at) == (
        "completed", "o1", 1.5, 2.25)
    output = reader.get_artifact("o1")
    assert (output.data, output.metadata, output.created_at, output.version) == (
        payload, {"source_artifact": "x"}, 3.125, 1)
    assert writer._conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0] == 0
    reader.close()
    writer.close()


def test_a_journal_record_that_names_a_class_is_refused_not_loaded(tmp_path: Path):
    import pickle

    registry = _registry(tmp_path)
    registry._conn.execute("INSERT INTO journal (record) VALUES (?)",
                           (pickle.dumps((os.system, ("true",))),))
    with pytest.raises(StorageError, match=r"damaged journal record .*plain values only"):
        registry.get_calls("e1")
    registry._conn.execute("DELETE FROM journal")
    registry.close()


def test_versions_follow_commit_order_across_journal_rows_and_direct_inserts(tmp_path: Path):
    registry = _registry(tmp_path)
    registry.save_call(_completed("c#1", 0, "a1"), [_inline("a1", "report", b"1")])
    registry.add_artifacts([_artifact("a2", "report")])  # not journaled: folds what came before
    registry.save_call(_completed("c#2", 1, "a3"), [_inline("a3", "report", b"3")])
    versions = {a.artifact_id: a.version for a in registry.list_artifacts(exec_id="e1")}
    assert versions == {"a1": 1, "a2": 2, "a3": 3}
    registry.close()


def test_a_flow_run_here_reads_nothing_of_its_record_back(client, monkeypatch):
    # It has just written its record: its inputs are in hand, and it has no calls or waits.
    reads: list[str] = []
    def counted(method: str):
        real = getattr(SqliteRegistry, method)

        def read(self, *args, **kwargs):
            reads.append(method)
            return real(self, *args, **kwargs)
        return read

    with monkeypatch.context() as patched:
        for method in ("get_calls", "get_waits", "get_artifact", "list_artifacts"):
            patched.setattr(SqliteRegistry, method, counted(method))
        handle = pipeline.run(2)
        assert handle.wait() == "items: 2"
    assert reads == []
    got = client.executions.get(handle.exec_id)
    assert [c.name for c in got.checkpoints] == ["make_state", "summarize"]


def test_journal_rows_left_by_a_killed_process_are_folded_by_the_next(tmp_path: Path):
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from kitaru_local.configs import SqliteRegistryConfig\n"
        "from kitaru_local.sqlite_registry import SqliteRegistry\n"
        "from kitaru_core.interfaces import ComponentContext\n"
        "from kitaru_core.records import ArtifactRecord, CallRecord\n"
        "r = SqliteRegistry(SqliteRegistryConfig(), ComponentContext(Path(sys.argv[1]), 'local'))\n"
        "for i in range(3):\n"
        "    a = ArtifactRecord(f'o{i}', 'e1', 'c', 'output', 'k', 'json', 'int', 1, f'c#{i}', data=b'1')\n"
        "    r.save_call(CallRecord('e1', f'c#{i}', 'c', i, 'completed', output_artifact=f'o{i}'), [a])\n"
        "os._exit(0)  # no close(): the rows stay in the journal\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    registry = _registry(tmp_path)
    assert [c.call_id for c in registry.get_calls("e1")] == ["c#0", "c#1", "c#2"]
    assert [registry.get_artifact(f"o{i}").version for i in range(3)] == [1, 2, 3]
    registry.close()


def test_records_survive_closing_and_reopening_after_many_commits(tmp_path: Path):
    registry = _registry(tmp_path)
    for i in range(600):  # enough commits for the background checkpoints to run
        registry.save_call(CallRecord(exec_id="e1", call_id=f"c#{i + 1}", name="c", seq=i,
                                      status="running"))
    registry.close()
    reopened = _registry(tmp_path)
    assert len(reopened.get_calls("e1")) == 600
    reopened.close()


def test_the_wal_is_started_over_after_a_checkpoint_the_writer_outran(tmp_path: Path):
    # A WAL that only grows makes every commit extend the file (in strict mode its fsync then
    # commits file-system metadata too). SQLite starts it over only when a write begins with
    # every frame copied, which a background checkpoint never leaves behind while a flow keeps
    # committing: the writer catches up after each one.
    registry = _registry(tmp_path)

    def commit(i: int) -> None:
        registry.save_call(CallRecord(exec_id="e1", call_id=f"c#{i + 1}", name="c", seq=i,
                                      status="running"))

    for i in range(100):
        commit(i)
    # A checkpoint from another connection while the writer goes on: a reader's snapshot
    # holds it to the first 100 commits, as a background one is held by the time it took.
    reader = sqlite3.connect(registry.path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM calls").fetchone()
    for i in range(100, 110):
        commit(i)
    checkpoint = sqlite3.connect(registry.path, isolation_level=None)
    checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    reader.execute("COMMIT")
    registry._checkpointer._finished = True  # what the background thread sets when it ends

    commit(110)  # the writer catches up after this commit
    commit(111)  # begins with every frame copied: SQLite starts the WAL over
    _, frames, _ = checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert frames < 10  # 110 or more if the WAL had gone on growing
    for conn in (reader, checkpoint):
        conn.close()
    registry.close()
    assert len(_registry(tmp_path).get_calls("e1")) == 112


def test_a_migrated_artifact_row_reads_with_no_inline_data(tmp_path: Path):
    test_a_version_1_registry_file_is_migrated_when_opened(tmp_path)
    registry = _registry(tmp_path)
    assert registry.get_artifact("v1").data is None  # old rows name a blob, as before
    registry.close()


# -- small values stay in the registry, large ones become blobs --------------------------------


@checkpoint
def sized(n: int) -> str:
    return "x" * n


@flow
def two_sizes(small: int, large: int) -> int:
    return len(sized(small).load()) + len(sized(large).load())


def _blob_files(home: Path) -> set[str]:
    return {p.name for p in (home / "artifacts").rglob("*") if p.is_file()}


def test_small_outputs_stay_inline_and_large_ones_are_blobs(client, kitaru_home: Path):
    limit = SqliteRegistryConfig().inline_max_bytes
    handle = two_sizes.run(10, limit + 100)
    assert handle.wait() == 10 + limit + 100
    small, large = (c.output for c in client.executions.get(handle.exec_id).checkpoints)
    blobs = _blob_files(kitaru_home)
    assert small._record.data is not None and small.key not in blobs
    assert large._record.data is None and large.key in blobs
    assert (small.load(), large.load()) == ("x" * 10, "x" * (limit + 100))
    assert kitaru.load(handle.exec_id, "sized") == "x" * (limit + 100)  # the latest version


def test_inline_max_bytes_0_keeps_every_value_in_the_store(cli, client, tmp_path: Path,
                                                             kitaru_home: Path):
    (tmp_path / "blobs.yaml").write_text(
        "name: blobs\nregistry: {flavor: sqlite, config: {inline_max_bytes: 0}}\n"
    )
    assert cli("stack", "register", str(tmp_path / "blobs.yaml")).exit_code == 0
    handle = two_sizes.run(3, 4, stack="blobs")
    assert handle.wait() == 7
    keys = {a.key for a in client.artifacts.list(exec_id=handle.exec_id)}
    assert keys <= _blob_files(kitaru_home)


def test_an_inline_input_of_an_isolated_call_reaches_the_worker(cli, tmp_path: Path):
    (tmp_path / "proc.yaml").write_text("name: proc\nexecution_target: {flavor: process}\n")
    assert cli("stack", "register", str(tmp_path / "proc.yaml")).exit_code == 0
    assert isolated_pair.run(stack="proc").wait(timeout=120) == "ab"


@checkpoint(runtime="isolated")
def joined(first: str, second: str) -> str:
    return first + second


@flow
def isolated_pair() -> str:
    return joined(sized(0).load() + "a", "b").load()


# -- a call's `running` record is written only once it runs past a tick -------------------------

release = threading.Event()
started = threading.Event()


@checkpoint
def slow() -> str:
    started.set()
    assert release.wait(30)
    return "done"


@checkpoint
def quick() -> str:
    return "quick"


@flow
def slow_then_quick() -> str:
    return slow().load() + quick().load()


def _call_statuses(exec_id: str) -> dict[str, str]:
    from kitaru_core.stack import get_stack

    return {c.call_id: c.status for c in get_stack("local").registry.get_calls(exec_id)}


def test_a_long_call_shows_as_running_and_a_late_tick_does_not_undo_its_completion():
    release.clear()
    started.clear()
    handle = slow_then_quick.run()
    assert started.wait(30)
    deadline = time.monotonic() + 30
    while _call_statuses(handle.exec_id).get("slow#1") != "running":
        assert time.monotonic() < deadline, "the ticker never recorded the running call"
        time.sleep(0.05)
    release.set()
    assert handle.wait(timeout=30) == "donequick"
    time.sleep(0.6)  # one more tick of a ticker, were it still going
    assert _call_statuses(handle.exec_id) == {"slow#1": "completed", "quick#1": "completed"}


# -- argument binding --------------------------------------------------------------------------


def _positional(a, b=1): ...
def _positional_only(a, /, b, c=2): ...
def _varargs(a, *rest): ...
def _keyword_only(a, *, k): ...
def _keyword_only_default(a, *, k=1): ...


@pytest.mark.parametrize("fn", [_positional, _positional_only, _varargs, _keyword_only,
                                _keyword_only_default])
@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_binding_positional_arguments_matches_signature_bind(fn, count):
    args = tuple(range(count))
    try:
        expected = dict(inspect.signature(fn).bind(*args).arguments)
    except TypeError:
        expected = {f"arg{i}": a for i, a in enumerate(args)}
    bound = CheckpointSpec(fn=fn, name="x").bind(args, {})
    assert bound == expected and list(bound) == list(expected)


# -- lean help pages ------------------------------------------------------------------------------


def test_help_pages_show_arguments_options_and_commands():
    from kitaru.cli.main import app

    runner = CliRunner()
    top = runner.invoke(app, ["--help"], prog_name="kitaru")
    assert top.exit_code == 0
    assert "Usage: kitaru [OPTIONS] COMMAND [ARGS]..." in top.stdout
    for word in ("Options", "--stack", "Commands", "executions", "Inspect and operate executions"):
        assert word in top.stdout
    register = runner.invoke(app, ["stack", "register", "--help"], prog_name="kitaru")
    assert register.exit_code == 0
    for word in ("Arguments", "A stack YAML file.", "[required]", "--activate", "[default: table]"):
        assert word in register.stdout


def test_help_does_not_load_typers_markdown_renderer():
    code = (
        "import sys\nfrom kitaru.cli.main import app\n"
        "try:\n    app(['--help'], prog_name='kitaru')\nexcept SystemExit:\n    pass\n"
        "print([m for m in ('typer.rich_utils', 'rich.markdown', 'markdown_it') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TERMINAL_WIDTH": "100"})
    assert out.stdout.strip().splitlines()[-1] == "[]"


# -- the serializer's fast checks agree with their definitions ------------------------------------


def _plain_by_definition(value, depth: int = 0) -> bool:
    """What `_is_plain_json` decides, written the obvious (slow) way."""
    if depth > 64:
        return False
    if type(value) in (str, int, bool, type(None)):
        return True
    if type(value) is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if type(value) is list:
        return all(_plain_by_definition(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain_by_definition(v, depth + 1) for k, v in value.items())
    return False


def _nested(depth: int, leaf) -> list:
    value = [leaf] if leaf is not None else []
    for _ in range(depth):
        value = [value]
    return value


def _random_value(rng, depth: int = 0):
    import math
    from enum import IntEnum

    class Level(IntEnum):
        LOW = 1

    choices = ["s", "é", 3, True, None, 2.5, math.nan, math.inf, -math.inf, (1,), b"b", Level.LOW,
               {1: "int key"}, {"set": {1}}]
    if depth < 4 and rng.random() < 0.5:
        items = [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        if rng.random() < 0.5:
            return items
        return {f"k{i}": v for i, v in enumerate(items)}
    return rng.choice(choices)


def test_the_plain_json_check_decides_as_its_definition():
    import random

    from kitaru_core.serializers import _is_plain_json

    rng = random.Random(7)
    values = [_random_value(rng) for _ in range(3000)]
    values += [_nested(d, leaf) for d in (62, 63, 64, 65) for leaf in (None, 1, "x")]
    values += [{"a": _nested(63, None)}, {"a": _nested(63, 1)}, {}, []]
    decided = [(_is_plain_json(v, 0), _plain_by_definition(v)) for v in values]
    assert all(fast == slow for fast, slow in decided)
    assert {fast for fast, _ in decided} == {True, False}  # both answers were exercised


def test_json_values_serialize_to_the_bytes_of_the_standard_encoder():
    import json
    import random

    from kitaru_core.serializers import serialize

    rng = random.Random(11)
    values = [v for v in (_random_value(rng) for _ in range(3000)) if type(v) in (dict, list)]
    values.append({"text": "naïve ☃ \"quoted\"\n", "n": [1, -2.5e-300, 10**30, None, False]})
    plain = [v for v in values if _plain_by_definition(v)]
    assert len(plain) > 100
    for value in plain:
        data, serializer = serialize(value)
        assert serializer == "json"  # same bytes, so the same content keys as before
        assert data == json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    for value in values:
        if not _plain_by_definition(value):
            assert serialize(value)[1] == "pickle"


@checkpoint(cache=True)
def cached_echo(value: object) -> str:
    return "never"


@flow
def cached_lock_flow() -> str:
    return cached_echo(threading.Lock()).load()


def test_an_unserializable_input_of_a_cached_call_names_the_input_and_the_call():
    from kitaru.errors import SerializationError

    with pytest.raises(FlowFailedError) as info:
        cached_lock_flow.run().wait()
    cause = info.value.__cause__
    assert isinstance(cause, SerializationError)
    assert "input 'value' of checkpoint 'cached_echo#1'" in str(cause)


def test_the_registrys_json_text_is_the_standard_encoders_and_a_cycle_is_still_refused():
    import json
    import math

    from kitaru_local.sqlite_registry import _dumps

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    values = [{"source_artifact": "ab" * 16}, {"é": "☃", "n": [1, 2.5, None, True]}, "text",
              math.nan, {"x": Opaque()}, [1, (2, 3)], {1: "int key"}, -0.0, 10**40]
    for value in values:
        assert _dumps(value) == json.dumps(value, default=repr)
    assert _dumps(None) is None
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match="Circular reference"):
        _dumps(cyclic)
