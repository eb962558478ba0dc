"""The `postgres` registry's checkpoint statement and its artifact version sequences.

The Registry kit covers the record's semantics; these check what the hand-encoded path
could get wrong (every value type reads back exactly, a failing statement still raises
psycopg's typed error and leaves the connection usable, a statement deallocated on the
server is prepared again) and how versions are numbered by a sequence per name (a database
from before them continues its counters; a sequence dropped meanwhile is made again).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitaru_core.interfaces import ComponentContext
from kitaru_core.records import ArtifactRecord, CallRecord, ExecutionRecord

psycopg = pytest.importorskip("psycopg")
from kitaru_postgres.config import PostgresRegistryConfig  # noqa: E402
from kitaru_postgres.registry import PostgresRegistry  # noqa: E402


@pytest.fixture
def registry(postgres_url: str, tmp_path: Path) -> Iterator[PostgresRegistry]:
    reg = PostgresRegistry(PostgresRegistryConfig(url=postgres_url, max_connections=1),
                           ComponentContext(home=tmp_path, stack_name="pg"))
    yield reg
    reg.close()


def _prepared_here(registry: PostgresRegistry) -> set[str]:
    """The statements prepared on the pool's only connection."""
    with registry._pool.connection() as conn:
        return {r[0] for r in conn.execute("SELECT name FROM pg_prepared_statements")}


def _execution(registry: PostgresRegistry) -> str:
    exec_id = uuid.uuid4().hex
    registry.create_execution(ExecutionRecord(exec_id, "flow", "running", created_at=1.0))
    return exec_id


def _artifact(exec_id: str, name: str, **fields: object) -> ArtifactRecord:
    values: dict[str, object] = {
        "artifact_id": uuid.uuid4().hex, "exec_id": exec_id, "name": name,
        "direction": "output", "key": "sha256:" + "ab" * 32, "serializer": "json",
        "type_name": "builtins.str", "size": 3, "call_id": "step#1", "created_at": 2.5,
    }
    values.update(fields)
    return ArtifactRecord(**values)  # type: ignore[arg-type]


def test_every_value_type_reads_back_exactly(registry: PostgresRegistry) -> None:
    exec_id = _execution(registry)
    out = _artifact(exec_id, "résumé ✓", metadata={"ünï": [1, 2.5, None, "x\"y"]},
                    data=b"\x00\xff\\x00 bytes", size=2**40, created_at=1732982345.1234567)
    inp = _artifact(exec_id, "i", direction="input", type_name=None, data=None, metadata=None)
    call = CallRecord(exec_id, "step#1", "step ✓", 7, "completed", "llm", 2,
                      started_at=0.1 + 0.2, ended_at=1e-300, output_artifact=out.artifact_id,
                      error={"type": "ValueError", "message": "bad \n\"value\""},
                      cache_key="k\u00e9y", task={"owner": "me", "n": 3})
    registry.save_call(call, [out, inp])
    assert "kitaru_save_call_2" in _prepared_here(registry)  # libpq's path, not the fallback
    assert registry.get_calls(exec_id) == [call]
    for sent in (out, inp):
        got = registry.get_artifact(sent.artifact_id)
        assert (got.name, got.direction, got.key, got.type_name, got.size, got.call_id,
                got.created_at, got.metadata, got.data) == (
            sent.name, sent.direction, sent.key, sent.type_name, sent.size, sent.call_id,
            sent.created_at, sent.metadata, sent.data)
        assert got.version == 1


def test_a_failing_statement_raises_psycopgs_typed_error(registry: PostgresRegistry) -> None:
    exec_id = _execution(registry)
    first = _artifact(exec_id, "out")
    registry.save_call(CallRecord(exec_id, "step#1", "step", 1, "completed"), [first])
    again = _artifact(exec_id, "out", artifact_id=first.artifact_id)
    with pytest.raises(psycopg.errors.UniqueViolation):
        registry.save_call(CallRecord(exec_id, "step#2", "step", 2, "completed"), [again])
    # Nothing of the failed call was recorded, and the (single) connection still works.
    assert [c.call_id for c in registry.get_calls(exec_id)] == ["step#1"]
    registry.save_call(CallRecord(exec_id, "step#2", "step", 2, "completed"),
                       [_artifact(exec_id, "out")])
    assert [c.call_id for c in registry.get_calls(exec_id)] == ["step#1", "step#2"]
    # The failed write took version numbers: versions stay unique and increasing, with a gap.
    versions = [a.version for a in registry.list_artifacts(exec_id=exec_id)]
    assert versions[0] == 1 and versions[1] > 2


def test_a_statement_deallocated_on_the_server_is_prepared_again(
    registry: PostgresRegistry,
) -> None:
    exec_id = _execution(registry)
    registry.save_call(CallRecord(exec_id, "step#1", "step", 1, "completed"),
                       [_artifact(exec_id, "out")])
    assert "kitaru_save_call_1" in _prepared_here(registry)
    with registry._pool.connection() as conn:  # the pool's only connection
        conn.execute("DEALLOCATE ALL")
    assert "kitaru_save_call_1" not in _prepared_here(registry)
    for n in (2, 3):
        registry.save_call(CallRecord(exec_id, f"step#{n}", "step", n, "completed"),
                           [_artifact(exec_id, "out")])
    assert [c.seq for c in registry.get_calls(exec_id)] == [1, 2, 3]
    assert "kitaru_save_call_1" in _prepared_here(registry)


def test_versions_continue_from_a_database_that_counted_them_in_a_table(
    postgres_url: str, tmp_path: Path,
) -> None:
    from kitaru_postgres import schema

    with psycopg.connect(postgres_url, autocommit=True) as conn:  # schema 4, as released
        conn.execute("CREATE TABLE kitaru_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO kitaru_schema VALUES (4)")
        for statements in schema.MIGRATIONS[:4]:
            for stmt in statements:
                conn.execute(stmt)
        conn.execute("INSERT INTO artifact_versions VALUES ('report', 41), ('résumé ✓', 2)")
    reg = PostgresRegistry(PostgresRegistryConfig(url=postgres_url),
                           ComponentContext(home=tmp_path, stack_name="pg"))
    try:
        exec_id = _execution(reg)
        reg.save_call(CallRecord(exec_id, "step#1", "step", 1, "completed"),
                      [_artifact(exec_id, "report"), _artifact(exec_id, "résumé ✓"),
                       _artifact(exec_id, "new")])
        versions = {a.name: a.version for a in reg.list_artifacts(exec_id=exec_id)}
        assert versions == {"report": 42, "résumé ✓": 3, "new": 1}
    finally:
        reg.close()


def test_a_version_sequence_dropped_meanwhile_is_made_again(registry: PostgresRegistry) -> None:
    exec_id = _execution(registry)
    registry.add_artifacts([_artifact(exec_id, "out")])
    with registry._pool.connection() as conn:  # a restore or a reset, behind its back
        conn.execute("DROP SEQUENCE kitaru_av_" + hashlib.md5(b"out").hexdigest()[:24])
    registry.save_call(CallRecord(exec_id, "step#1", "step", 1, "completed"),
                       [_artifact(exec_id, "out")])
    registry.add_artifacts([_artifact(exec_id, "out")])
    assert [a.version for a in registry.list_artifacts(exec_id=exec_id)] == [1, 1, 2]


def test_artifacts_of_one_call_are_numbered_and_listed_in_their_order(
    registry: PostgresRegistry,
) -> None:
    exec_id = _execution(registry)
    sent = [_artifact(exec_id, "draft", data=b"1"), _artifact(exec_id, "other"),
            _artifact(exec_id, "draft", data=b"2"), _artifact(exec_id, "draft", data=b"3")]
    registry.save_call(CallRecord(exec_id, "step#1", "step", 1, "completed"), sent)
    got = registry.list_artifacts(exec_id=exec_id)
    assert [(a.artifact_id, a.version) for a in got] == [
        (sent[0].artifact_id, 1), (sent[1].artifact_id, 1), (sent[2].artifact_id, 2),
        (sent[3].artifact_id, 3)]
