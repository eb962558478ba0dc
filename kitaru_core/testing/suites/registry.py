"""The Registry conformance suite: the record's semantics every registry flavor keeps.

Each test gets an empty backend (`test_fresh_registry_is_empty` proves the
author's fixture gives one) and builds the registry through the plugin's entry
point. Concurrency tests build several instances on the same backend, as
separate runners would have.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from ...errors import ArtifactNotFoundError, ExecutionNotFoundError
from ...interfaces import Registry
from ...records import (
    ArtifactRecord,
    CallRecord,
    ExecutionRecord,
    LogChunk,
    MemoryRecord,
    MetadataEntry,
    WaitRecord,
)
from ..base import ComponentConformance


def _eid(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex


def execution(exec_id: str | None = None, **fields: Any) -> ExecutionRecord:
    """An execution record as the runner creates one."""
    now = fields.pop("created_at", time.time())
    base: dict[str, Any] = {
        "exec_id": exec_id or _eid(), "flow_name": "review", "status": "running",
        "flow_ref": {"module": "app.flows", "qualname": "review", "cwd": "/srv/app"},
        "stack": {"name": "team", "registry": {"flavor": "x", "config": {}}},
        "owner": "host:1:2", "lease_expires": now + 30, "created_at": now, "started_at": now,
    }
    base.update(fields)
    return ExecutionRecord(**base)


def artifact(exec_id: str, name: str = "research", **fields: Any) -> ArtifactRecord:
    base: dict[str, Any] = {
        "artifact_id": _eid(), "exec_id": exec_id, "name": name, "direction": "output",
        "key": "ab" * 32, "serializer": "json", "type_name": "builtins.str", "size": 7,
        "call_id": f"{name}#1", "created_at": time.time(),
    }
    base.update(fields)
    return ArtifactRecord(**base)


class RegistryConformance(ComponentConformance):
    """Subclass it, set `flavor`, and give a `config` fixture for an empty backend."""

    component_type: ClassVar[str] = "registry"

    @pytest.fixture
    def registry(self, make_component: Callable[[], Registry]) -> Registry:
        return make_component()

    @staticmethod
    def supports_memory(registry: Registry) -> bool:
        return type(registry).put_memory is not Registry.put_memory

    # -- the fixture -----------------------------------------------------------------------
    def test_fresh_registry_is_empty(self, registry: Registry) -> None:
        assert registry.list_executions() == []
        assert registry.list_artifacts() == []

    def test_inline_limit_is_a_size(self, registry: Registry) -> None:
        assert isinstance(registry.inline_limit, int) and registry.inline_limit >= 0

    # -- executions ------------------------------------------------------------------------
    def test_execution_round_trips(self, registry: Registry) -> None:
        rec = execution(failure=None, replay={"source": "x", "at": "a#1", "at_seq": 2,
                                              "checkpoint_overrides": {"a": "id1"}},
                        inputs_artifact="in1", original_exec_id="orig")
        registry.create_execution(rec)
        got = registry.get_execution(rec.exec_id)
        assert got.exec_id == rec.exec_id and got.flow_name == "review"
        assert got.flow_ref == rec.flow_ref and got.stack == rec.stack
        assert got.replay == rec.replay and got.inputs_artifact == "in1"
        assert got.original_exec_id == "orig" and got.owner == "host:1:2"
        assert got.lease_expires == pytest.approx(rec.lease_expires)
        assert got.created_at == pytest.approx(rec.created_at)
        assert got.version == 0 and got.ended_at is None

    def test_execution_and_its_inputs_commit_together(self, registry: Registry) -> None:
        rec = execution()
        inputs = artifact(rec.exec_id, "inputs", direction="input", call_id=None, data=b"{}")
        rec.inputs_artifact = inputs.artifact_id
        registry.create_execution(rec, [inputs])
        assert registry.get_artifact(inputs.artifact_id).exec_id == rec.exec_id
        clash = execution(rec.exec_id)
        orphan = artifact(rec.exec_id, "inputs", direction="input", call_id=None)
        with pytest.raises(Exception):  # noqa: B017 - a duplicate id fails the whole transaction
            registry.create_execution(clash, [orphan])
        with pytest.raises(ArtifactNotFoundError):
            registry.get_artifact(orphan.artifact_id)

    def test_duplicate_execution_id_is_refused(self, registry: Registry) -> None:
        rec = execution()
        registry.create_execution(rec)
        with pytest.raises(Exception):  # noqa: B017 - any error; the first record must survive
            registry.create_execution(execution(rec.exec_id, flow_name="other"))
        assert registry.get_execution(rec.exec_id).flow_name == "review"

    def test_unknown_execution_is_not_found(self, registry: Registry) -> None:
        with pytest.raises(ExecutionNotFoundError):
            registry.get_execution(_eid())

    def test_unique_prefix_finds_execution(self, registry: Registry) -> None:
        a, b = execution("aaaa" + _eid()), execution("bbbb" + _eid())
        registry.create_execution(a)
        registry.create_execution(b)
        assert registry.get_execution(a.exec_id[:6]).exec_id == a.exec_id
        assert registry.get_execution("b").exec_id == b.exec_id

    def test_ambiguous_prefix_is_an_error_naming_the_matches(self, registry: Registry) -> None:
        a, b = execution("cafe1" + _eid()), execution("cafe2" + _eid())
        registry.create_execution(a)
        registry.create_execution(b)
        with pytest.raises(ExecutionNotFoundError) as err:
            registry.get_execution("cafe")
        assert "ambiguous" in str(err.value)
        assert a.exec_id[:12] in str(err.value) and b.exec_id[:12] in str(err.value)

    def test_prefix_characters_are_literal_never_wildcards(self, registry: Registry) -> None:
        plain, underscored = execution("kax" + _eid()), execution("k_x" + _eid())
        registry.create_execution(plain)
        registry.create_execution(underscored)
        assert registry.get_execution("k_x").exec_id == underscored.exec_id
        for pattern in ("%", "%%%%", "k%", "_", "____"):
            with pytest.raises(ExecutionNotFoundError):
                registry.get_execution(pattern)

    def test_list_is_newest_first_with_filters_and_limit(self, registry: Registry) -> None:
        t = time.time()
        recs = [
            execution(flow_name="a", status="completed", created_at=t),
            execution(flow_name="b", status="running", created_at=t + 1),
            execution(flow_name="a", status="waiting", created_at=t + 2),
        ]
        for r in recs:
            registry.create_execution(r)
        assert [e.exec_id for e in registry.list_executions()] == [r.exec_id for r in recs[::-1]]
        assert [e.exec_id for e in registry.list_executions(flow_name="a")] == [
            recs[2].exec_id, recs[0].exec_id]
        assert [e.exec_id for e in registry.list_executions(status="running")] == [recs[1].exec_id]
        assert [e.exec_id for e in registry.list_executions(limit=2)] == [
            recs[2].exec_id, recs[1].exec_id]

    def test_list_pages_by_keyset_stable_under_inserts(self, registry: Registry) -> None:
        t = time.time()
        # Two share a creation time: `exec_id` (descending) orders them.
        recs = [execution(exec_id=f"{i}" + uuid.uuid4().hex, flow_name="a" if i % 2 else "b",
                          created_at=t + min(i, 3)) for i in range(5)]
        for r in recs:
            registry.create_execution(r)
        newest_first = sorted(recs, key=lambda r: (r.created_at, r.exec_id), reverse=True)
        assert [e.exec_id for e in registry.list_executions()] == [r.exec_id for r in newest_first]
        first = registry.list_executions(limit=2)
        last = first[-1]
        # Executions created after the first page was read never shift the next pages.
        registry.create_execution(execution(created_at=t + 10))
        rest = registry.list_executions(before=(last.created_at, last.exec_id))
        assert [e.exec_id for e in first + rest] == [r.exec_id for r in newest_first]
        page = registry.list_executions(before=(last.created_at, last.exec_id), limit=2)
        assert [e.exec_id for e in page] == [r.exec_id for r in newest_first[2:4]]
        flow_a = registry.list_executions(flow_name="a", before=(newest_first[0].created_at,
                                                                 newest_first[0].exec_id))
        assert [e.exec_id for e in flow_a] == [
            r.exec_id for r in newest_first[1:] if r.flow_name == "a"]
        oldest = newest_first[-1]
        assert registry.list_executions(before=(oldest.created_at, oldest.exec_id)) == []

    def test_claim_is_compare_and_set_on_version(self, registry: Registry) -> None:
        rec = execution(status="waiting", owner=None, lease_expires=None)
        registry.create_execution(rec)
        assert registry.claim_execution(rec.exec_id, owner="me", lease_expires=1e12,
                                        expected_version=0)
        got = registry.get_execution(rec.exec_id)
        assert (got.owner, got.status, got.version) == ("me", "running", 1)
        assert not registry.claim_execution(rec.exec_id, owner="you", lease_expires=1e12,
                                            expected_version=0)
        assert registry.get_execution(rec.exec_id).owner == "me"

    def test_concurrent_claimers_exactly_one_wins(
        self, make_component: Callable[[], Registry]
    ) -> None:
        first = make_component()
        rec = execution(status="waiting", owner=None, lease_expires=None)
        first.create_execution(rec)
        registries = [first] + [make_component() for _ in range(3)]
        wins: list[str] = []
        barrier = threading.Barrier(len(registries) * 2)

        def claim(reg: Registry, who: str) -> None:
            barrier.wait()
            if reg.claim_execution(rec.exec_id, owner=who, lease_expires=1e12,
                                   expected_version=0):
                wins.append(who)

        threads = [threading.Thread(target=claim, args=(reg, f"r{i}-{j}"))
                   for i, reg in enumerate(registries) for j in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(wins) == 1
        assert first.get_execution(rec.exec_id).owner == wins[0]

    def test_lease_renewal_is_fenced_by_owner_and_status(self, registry: Registry) -> None:
        rec = execution(owner="me")
        registry.create_execution(rec)
        assert registry.renew_lease(rec.exec_id, owner="me", lease_expires=2e12)
        assert registry.get_execution(rec.exec_id).lease_expires == pytest.approx(2e12)
        assert not registry.renew_lease(rec.exec_id, owner="you", lease_expires=3e12)
        registry.update_execution(rec.exec_id, {"status": "completed"})
        assert not registry.renew_lease(rec.exec_id, owner="me", lease_expires=4e12)
        assert registry.get_execution(rec.exec_id).lease_expires == pytest.approx(2e12)

    def test_update_is_compare_and_set_on_version_and_keeps_the_runner(
        self, registry: Registry
    ) -> None:
        rec = execution(status="running", owner=None, lease_expires=None)
        registry.create_execution(rec)
        runner = {"launch": "l1", "handle": {"pid": 7, "start": "9"}, "launches": 1,
                  "relaunches": 0, "launched_at": 1.5}
        assert registry.update_execution(rec.exec_id, {"runner": runner}, expected_version=0)
        got = registry.get_execution(rec.exec_id)
        assert (got.runner, got.version) == (runner, 1)
        # A second writer that read version 0 loses; the record is unchanged.
        assert not registry.update_execution(rec.exec_id, {"runner": None}, expected_version=0)
        assert registry.get_execution(rec.exec_id).runner == runner
        assert registry.update_execution(rec.exec_id, {"runner": None}, expected_version=1)
        assert registry.get_execution(rec.exec_id).runner is None
        assert [e.runner for e in registry.list_executions() if e.exec_id == rec.exec_id] == [None]

    def test_update_is_fenced_by_owner(self, registry: Registry) -> None:
        rec = execution(owner="me")
        registry.create_execution(rec)
        assert not registry.update_execution(rec.exec_id, {"status": "failed"}, owner="you")
        assert registry.get_execution(rec.exec_id).status == "running"
        assert registry.update_execution(rec.exec_id, {"status": "failed"}, owner="me")
        got = registry.get_execution(rec.exec_id)
        assert got.status == "failed" and got.version == 1

    def test_update_is_compare_and_set_on_status(self, registry: Registry) -> None:
        rec = execution()
        registry.create_execution(rec)
        failure = {"type": "ValueError", "message": "bad", "call": "a#1"}
        assert registry.update_execution(
            rec.exec_id, {"status": "cancelled", "ended_at": 5.0, "failure": failure},
            statuses=("running", "waiting"),
        )
        assert not registry.update_execution(
            rec.exec_id, {"status": "completed"}, statuses=("running", "waiting")
        )
        got = registry.get_execution(rec.exec_id)
        assert (got.status, got.ended_at, got.failure) == ("cancelled", 5.0, failure)

    def test_an_outcome_records_its_result_even_when_the_update_does_not_match(
        self, registry: Registry
    ) -> None:
        done, cancelled = execution(owner="me"), execution(owner="me")
        registry.create_execution(done)
        registry.create_execution(cancelled)
        result = artifact(done.exec_id, "output", call_id=None)
        assert registry.record_outcome(
            done.exec_id, {"status": "completed", "owner": None, "result_artifact": result.artifact_id},
            [result], owner="me", statuses=("running", "waiting"),
        )
        got = registry.get_execution(done.exec_id)
        assert (got.status, got.owner, got.result_artifact) == ("completed", None, result.artifact_id)
        assert registry.get_artifact(result.artifact_id).name == "output"

        assert registry.update_execution(cancelled.exec_id, {"status": "cancelled"})
        late = artifact(cancelled.exec_id, "output", call_id=None)
        assert not registry.record_outcome(
            cancelled.exec_id, {"status": "completed", "result_artifact": late.artifact_id},
            [late], owner="me", statuses=("running", "waiting"),
        )
        assert registry.get_execution(cancelled.exec_id).status == "cancelled"
        assert registry.get_artifact(late.artifact_id).exec_id == cancelled.exec_id

    # -- calls -----------------------------------------------------------------------------
    def test_save_call_upserts_and_lists_in_call_order(self, registry: Registry) -> None:
        rec = execution()
        registry.create_execution(rec)
        e = rec.exec_id
        registry.save_call(CallRecord(e, "b#1", "b", 2, "running", started_at=2.0))
        registry.save_call(CallRecord(e, "a#1", "a", 1, "running", started_at=1.0))
        out = artifact(e, "b", call_id="b#1", data=b'"hello"')
        registry.save_call(
            CallRecord(e, "b#1", "b", 2, "completed", type="llm_call", attempts=2,
                       started_at=2.0, ended_at=3.0, output_artifact=out.artifact_id,
                       error={"type": "X", "message": "first attempt"}, cache_key="ck",
                       task={"task_name": "t-1", "attempt": 2}),
            artifacts=[out],
            logs=[LogChunk(e, "b#1", 0, "stdout", "hi\n", 2.5)],
            metadata=[MetadataEntry(e, "b#1", "tokens", {"in": 3}, 2.6)],
        )
        calls = registry.get_calls(e)
        assert [c.call_id for c in calls] == ["a#1", "b#1"]
        b = calls[1]
        assert (b.status, b.type, b.attempts, b.ended_at) == ("completed", "llm_call", 2, 3.0)
        assert b.error == {"type": "X", "message": "first attempt"}
        assert b.task == {"task_name": "t-1", "attempt": 2}
        assert registry.get_artifact(out.artifact_id).data == b'"hello"'
        assert [c.text for c in registry.get_logs(e)] == ["hi\n"]
        assert [(m.key, m.value) for m in registry.get_metadata(e)] == [("tokens", {"in": 3})]

    def test_cached_call_is_the_newest_completed_one(self, registry: Registry) -> None:
        for ended, status in ((1.0, "completed"), (3.0, "completed"), (5.0, "running")):
            rec = execution()
            registry.create_execution(rec)
            registry.save_call(CallRecord(rec.exec_id, "a#1", "a", 1, status, ended_at=ended,
                                          cache_key="k1"))
        found = registry.find_cached_call("k1")
        assert found is not None and found.ended_at == 3.0 and found.status == "completed"
        assert registry.find_cached_call("other") is None

    # -- artifacts -------------------------------------------------------------------------
    def test_artifact_versions_count_per_name(self, registry: Registry) -> None:
        e1, e2 = execution(), execution()
        registry.create_execution(e1)
        registry.create_execution(e2)
        a1, b1 = artifact(e1.exec_id, "report"), artifact(e1.exec_id, "notes")
        registry.add_artifacts([a1, b1])
        a2 = artifact(e2.exec_id, "report")
        registry.add_artifacts([a2])
        assert registry.get_artifact(a1.artifact_id).version == 1
        assert registry.get_artifact(b1.artifact_id).version == 1
        assert registry.get_artifact(a2.artifact_id).version == 2

    def test_artifact_round_trips_with_inline_data(self, registry: Registry) -> None:
        rec = execution()
        registry.create_execution(rec)
        art = artifact(rec.exec_id, metadata={"type": "document"}, data=b"\x00\xffbytes")
        registry.add_artifacts([art])
        got = registry.get_artifact(art.artifact_id)
        assert (got.name, got.direction, got.key, got.serializer, got.size) == (
            art.name, art.direction, art.key, art.serializer, art.size)
        assert got.metadata == {"type": "document"} and got.data == b"\x00\xffbytes"
        assert isinstance(got.data, bytes)
        assert registry.get_artifact(art.artifact_id[:10]).artifact_id == art.artifact_id
        with pytest.raises(ArtifactNotFoundError):
            registry.get_artifact(_eid())

    def test_list_artifacts_filters_in_creation_order(self, registry: Registry) -> None:
        e1, e2 = execution(), execution()
        registry.create_execution(e1)
        registry.create_execution(e2)
        t = time.time()
        arts = [artifact(e1.exec_id, "a", call_id="a#1", created_at=t),
                artifact(e1.exec_id, "b", call_id="b#1", created_at=t + 1),
                artifact(e2.exec_id, "a", call_id="a#1", created_at=t + 2)]
        registry.add_artifacts(arts)
        ids = [a.artifact_id for a in arts]
        assert [a.artifact_id for a in registry.list_artifacts(exec_id=e1.exec_id)] == ids[:2]
        assert [a.artifact_id for a in registry.list_artifacts(name="a")] == [ids[0], ids[2]]
        assert [a.artifact_id for a in registry.list_artifacts(exec_id=e2.exec_id,
                                                               call_id="a#1")] == [ids[2]]

    # -- waits -----------------------------------------------------------------------------
    def test_create_wait_keeps_the_first_record(self, registry: Registry) -> None:
        rec = execution()
        registry.create_execution(rec)
        schema = {"kind": "type", "ref": "builtins:bool", "json_schema": {"type": "boolean"}}
        w = WaitRecord(rec.exec_id, "approve", 3, "pending", question="Ship?", schema=schema,
                       metadata={"by": "ops"}, timeout=600.0, created_at=1.0)
        stored = registry.create_wait(w)
        assert (stored.question, stored.schema, stored.metadata) == ("Ship?", schema, {"by": "ops"})
        again = registry.create_wait(WaitRecord(rec.exec_id, "approve", 3, "pending",
                                                question="other", created_at=2.0))
        assert again.question == "Ship?" and again.created_at == 1.0
        assert [x.name for x in registry.get_waits(rec.exec_id)] == ["approve"]

    @pytest.mark.parametrize("value", [True, None, 0, "yes", [1, 2], {"a": {"b": None}}])
    def test_a_wait_is_answered_once(self, registry: Registry, value: Any) -> None:
        rec = execution()
        registry.create_execution(rec)
        registry.create_wait(WaitRecord(rec.exec_id, "approve", 1, "pending"))
        assert registry.answer_wait(rec.exec_id, "approve", value)
        assert not registry.answer_wait(rec.exec_id, "approve", "second")
        assert not registry.answer_wait(rec.exec_id, "missing", value)
        (w,) = registry.get_waits(rec.exec_id)
        assert w.status == "answered" and w.value == value and w.answered_at is not None

    def test_waits_list_in_step_order(self, registry: Registry) -> None:
        rec = execution()
        registry.create_execution(rec)
        registry.create_wait(WaitRecord(rec.exec_id, "second", 5, "pending"))
        registry.create_wait(WaitRecord(rec.exec_id, "first", 2, "pending"))
        assert [w.name for w in registry.get_waits(rec.exec_id)] == ["first", "second"]

    def test_pending_waits_gives_each_executions_first_pending_wait(self, registry: Registry) -> None:
        schema = {"kind": "type", "ref": "builtins:bool", "json_schema": {"type": "boolean"}}
        answered, two, none, one = (execution(status="waiting") for _ in range(4))
        for rec in (answered, two, none, one):
            registry.create_execution(rec)
        registry.create_wait(WaitRecord(answered.exec_id, "approve", 1, "pending"))
        registry.answer_wait(answered.exec_id, "approve", True)
        registry.create_wait(WaitRecord(two.exec_id, "later", 7, "pending"))
        registry.create_wait(WaitRecord(two.exec_id, "sooner", 3, "pending", question="Ship?",
                                        schema=schema, metadata={"by": "ops"}, timeout=60.0))
        registry.create_wait(WaitRecord(one.exec_id, "approve", 1, "pending"))
        asked = [one.exec_id, answered.exec_id, "f" * 32, two.exec_id, none.exec_id, one.exec_id]
        found = registry.pending_waits(asked)
        assert [(w.exec_id, w.name) for w in found] == [(one.exec_id, "approve"), (two.exec_id, "sooner")]
        sooner = found[1]
        assert (sooner.status, sooner.question, sooner.schema, sooner.metadata, sooner.timeout) == (
            "pending", "Ship?", schema, {"by": "ops"}, 60.0)
        assert registry.pending_waits([]) == []

    def test_pending_waits_of_many_executions_at_once(self, registry: Registry) -> None:
        # More ids than one SQL statement may bind on some backends (SQLite: 999 by default
        # before 3.32); every other execution has a pending wait.
        recs = [execution(status="waiting") for _ in range(1_200)]
        for rec in recs:
            registry.create_execution(rec)
        for rec in recs[::2]:
            registry.create_wait(WaitRecord(rec.exec_id, "approve", 1, "pending"))
        ids = [r.exec_id for r in reversed(recs)]
        assert [w.exec_id for w in registry.pending_waits(ids)] == ids[1::2]

    def test_suspend_at_wait_lets_go_only_while_the_wait_is_pending(self, registry: Registry) -> None:
        rec = execution(owner="me", status="waiting")
        registry.create_execution(rec)
        registry.create_wait(WaitRecord(rec.exec_id, "approve", 1, "pending"))
        assert not registry.suspend_at_wait(rec.exec_id, owner="you", wait_name="approve")
        assert not registry.suspend_at_wait(rec.exec_id, owner="me", wait_name="missing")
        assert registry.get_execution(rec.exec_id).owner == "me"
        assert registry.suspend_at_wait(rec.exec_id, owner="me", wait_name="approve")
        got = registry.get_execution(rec.exec_id)
        assert (got.status, got.owner, got.lease_expires, got.version) == ("waiting", None, None, 1)
        # Answered first: the runner keeps the execution (and takes the answer).
        other = execution(owner="me")
        registry.create_execution(other)
        registry.create_wait(WaitRecord(other.exec_id, "approve", 1, "pending"))
        assert registry.answer_wait(other.exec_id, "approve", True)
        assert not registry.suspend_at_wait(other.exec_id, owner="me", wait_name="approve")
        kept = registry.get_execution(other.exec_id)
        assert (kept.status, kept.owner, kept.version) == ("running", "me", 0)
        # A cancelled execution is not suspended.
        registry.create_wait(WaitRecord(other.exec_id, "later", 2, "pending"))
        registry.update_execution(other.exec_id, {"status": "cancelled"})
        assert not registry.suspend_at_wait(other.exec_id, owner="me", wait_name="later")

    def test_suspend_and_answer_racing_leave_exactly_one_way_on(
        self, make_component: Callable[[], Registry]
    ) -> None:
        """Either the suspension wins (then the wait is answered after it and the answerer
        finds no owner) or the answer wins (and the runner still owns the execution)."""
        runner, answerer = make_component(), make_component()

        def suspend(exec_id: str, gate: threading.Barrier, outcome: dict[str, bool]) -> None:
            gate.wait()
            outcome["suspended"] = runner.suspend_at_wait(exec_id, owner="runner", wait_name="go")

        def answer(exec_id: str, gate: threading.Barrier, outcome: dict[str, bool]) -> None:
            gate.wait()
            outcome["answered"] = answerer.answer_wait(exec_id, "go", True)
            outcome["owner_seen"] = answerer.get_execution(exec_id).owner is not None

        for _ in range(20):
            rec = execution(owner="runner", status="waiting")
            runner.create_execution(rec)
            runner.create_wait(WaitRecord(rec.exec_id, "go", 1, "pending"))
            gate, outcome = threading.Barrier(2), {}
            threads = [threading.Thread(target=f, args=(rec.exec_id, gate, outcome))
                       for f in (suspend, answer)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert outcome["answered"]
            final = runner.get_execution(rec.exec_id)
            if outcome["suspended"]:
                assert final.owner is None and not outcome["owner_seen"]
            else:
                assert final.owner == "runner"

    # -- logs and metadata -------------------------------------------------------------------
    def test_logs_follow_by_sequence_number(self, registry: Registry) -> None:
        rec = execution()
        registry.create_execution(rec)
        e = rec.exec_id
        registry.append_logs([LogChunk(e, "a#1", 0, "stdout", "one\n", 1.0),
                              LogChunk(e, None, 0, "stderr", "two\n", 2.0)])
        first = registry.get_logs(e)
        assert [c.text for c in first] == ["one\n", "two\n"]
        assert first[0].seq < first[1].seq
        registry.append_logs([LogChunk(e, "a#1", 0, "stdout", "", 3.0, key="cd" * 32)])
        later = registry.get_logs(e, after=first[-1].seq)
        assert [(c.text, c.key) for c in later] == [("", "cd" * 32)]
        assert [c.text for c in registry.get_logs(e, call_id="a#1")] == ["one\n", ""]

    def test_metadata_keeps_order_and_json_values(self, registry: Registry) -> None:
        rec = execution()
        registry.create_execution(rec)
        e = rec.exec_id
        registry.add_metadata([MetadataEntry(e, None, "k", [1, "two", None], 1.0),
                               MetadataEntry(e, "a#1", "k", 3.5, 2.0)])
        assert [(m.call_id, m.value) for m in registry.get_metadata(e)] == [
            (None, [1, "two", None]), ("a#1", 3.5)]

    # -- memory ----------------------------------------------------------------------------
    def test_memory_versions_tombstones_and_history(self, registry: Registry) -> None:
        if not self.supports_memory(registry):
            pytest.skip("this registry declares no memory support (Registry.put_memory)")
        scope = "namespace:team"
        a1 = artifact("mem", "memory:team/k")
        v1 = registry.put_memory(MemoryRecord(scope, "k", artifact_id=a1.artifact_id,
                                              created_at=1.0), a1)
        a2 = artifact("mem", "memory:team/k")
        v2 = registry.put_memory(MemoryRecord(scope, "k", artifact_id=a2.artifact_id,
                                              created_at=2.0), a2)
        assert (v1.version, v2.version) == (1, 2)
        tomb = registry.put_memory(MemoryRecord(scope, "k", deleted=True, created_at=3.0), None)
        assert tomb.version == 3 and tomb.deleted
        latest = registry.get_memory(scope, "k")
        assert latest is not None and latest.deleted
        first = registry.get_memory(scope, "k", version=1)
        assert first is not None and first.artifact_id == a1.artifact_id
        assert registry.get_memory(scope, "absent") is None
        assert registry.list_memory(scope) == []
        assert [m.version for m in registry.list_memory(scope, include_deleted=True)] == [3]
        assert [m.version for m in registry.memory_history(scope, "k")] == [1, 2, 3]
        assert registry.get_artifact(a2.artifact_id).name == "memory:team/k"

    def test_memory_write_is_idempotent_per_call(self, registry: Registry) -> None:
        if not self.supports_memory(registry):
            pytest.skip("this registry declares no memory support (Registry.put_memory)")
        scope = "flow:review"
        rec = MemoryRecord(scope, "k", exec_id="e1", call_id="memory_set#1", created_at=1.0)
        first = registry.put_memory(rec, None)
        again = registry.put_memory(rec, None)
        assert first.version == again.version == 1
        assert len(registry.memory_history(scope, "k")) == 1
        other = registry.put_memory(MemoryRecord(scope, "k", exec_id="e2",
                                                 call_id="memory_set#1"), None)
        assert other.version == 2

    def test_memory_lists_latest_per_key_and_scopes(self, registry: Registry) -> None:
        if not self.supports_memory(registry):
            pytest.skip("this registry declares no memory support (Registry.put_memory)")
        for scope, key in (("namespace:b", "y"), ("namespace:a", "x"), ("namespace:a", "w"),
                           ("namespace:a", "x")):
            registry.put_memory(MemoryRecord(scope, key), None)
        assert [(m.key, m.version) for m in registry.list_memory("namespace:a")] == [
            ("w", 1), ("x", 2)]
        assert registry.list_memory_scopes() == ["namespace:a", "namespace:b"]

    def test_concurrent_memory_writers_get_distinct_versions(
        self, make_component: Callable[[], Registry]
    ) -> None:
        registries = [make_component() for _ in range(3)]
        if not self.supports_memory(registries[0]):
            pytest.skip("this registry declares no memory support (Registry.put_memory)")
        versions: list[int] = []
        lock = threading.Lock()

        def write(reg: Registry) -> None:
            for _ in range(5):
                v = reg.put_memory(MemoryRecord("namespace:c", "k"), None).version
                with lock:
                    versions.append(v)

        threads = [threading.Thread(target=write, args=(r,)) for r in registries]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(versions) == list(range(1, 16))

    def test_memory_absent_is_a_clear_config_error(self, registry: Registry) -> None:
        if self.supports_memory(registry):
            pytest.skip("this registry supports memory")
        from ...errors import ConfigError

        with pytest.raises(ConfigError, match="memory"):
            registry.put_memory(MemoryRecord("namespace:a", "k"), None)

    # -- documents ------------------------------------------------------------------------
    @staticmethod
    def supports_documents(registry: Registry) -> bool:
        return type(registry).put_document is not Registry.put_document

    def test_documents_are_versioned_compare_and_set(self, registry: Registry) -> None:
        if not self.supports_documents(registry):
            pytest.skip("this registry declares no document support (Registry.put_document)")
        from ...errors import DocumentConflictError

        first = registry.put_document("deployment", "review:1", {"tags": ["prod"], "n": 1},
                                      expected_version=0)
        assert (first.version, first.body) == (1, {"tags": ["prod"], "n": 1})
        with pytest.raises(DocumentConflictError, match="review:1"):
            registry.put_document("deployment", "review:1", {}, expected_version=0)
        second = registry.put_document("deployment", "review:1", {"n": 2}, expected_version=1)
        assert second.version == 2 and second.created_at == first.created_at
        with pytest.raises(DocumentConflictError):
            registry.put_document("deployment", "review:1", {"n": 3}, expected_version=1)
        with pytest.raises(DocumentConflictError):
            registry.put_document("deployment", "absent", {"n": 3}, expected_version=4)
        assert registry.put_document("deployment", "review:1", {"n": 9}).version == 3
        got = registry.get_document("deployment", "review:1")
        assert got is not None and (got.version, got.body) == (3, {"n": 9})
        assert registry.get_document("deployment", "absent") is None
        assert registry.get_document("secret", "review:1") is None

    def test_documents_list_by_literal_prefix_and_delete(self, registry: Registry) -> None:
        if not self.supports_documents(registry):
            pytest.skip("this registry declares no document support (Registry.put_document)")
        from ...errors import DocumentConflictError

        for name in ("b:1", "a:2", "a:1", "a_x", "a%y"):
            registry.put_document("tag", name, {"name": name})
        registry.put_document("other", "a:3", {})
        assert [d.name for d in registry.list_documents("tag", prefix="a:")] == ["a:1", "a:2"]
        assert [d.name for d in registry.list_documents("tag", prefix="a%")] == ["a%y"]
        assert [d.name for d in registry.list_documents("tag")] == ["a%y", "a:1", "a:2", "a_x", "b:1"]
        with pytest.raises(DocumentConflictError):
            registry.delete_document("tag", "a:1", expected_version=7)
        assert registry.delete_document("tag", "a:1", expected_version=1)
        assert not registry.delete_document("tag", "a:1")
        assert registry.delete_document("tag", "a:2")
        assert [d.name for d in registry.list_documents("tag", prefix="a:")] == []

    def test_concurrent_document_creators_exactly_one_wins(
        self, make_component: Callable[[], Registry]
    ) -> None:
        registries = [make_component() for _ in range(4)]
        if not self.supports_documents(registries[0]):
            pytest.skip("this registry declares no document support (Registry.put_document)")
        from ...errors import DocumentConflictError

        lock = threading.Lock()

        def create(i: int, reg: Registry, name: str, barrier: threading.Barrier,
                   won: list[int]) -> None:
            barrier.wait(10)
            try:
                reg.put_document("deployment", name, {"by": i}, expected_version=0)
            except DocumentConflictError:
                return
            with lock:
                won.append(i)

        for round_ in range(5):
            name, won = f"counter-{round_}", []
            barrier = threading.Barrier(len(registries))
            threads = [threading.Thread(target=create, args=(i, r, name, barrier, won))
                       for i, r in enumerate(registries)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert len(won) == 1
            stored = registries[0].get_document("deployment", name)
            assert stored is not None and stored.body == {"by": won[0]} and stored.version == 1

    def test_documents_absent_is_a_clear_config_error(self, registry: Registry) -> None:
        if self.supports_documents(registry):
            pytest.skip("this registry supports documents")
        from ...errors import ConfigError

        with pytest.raises(ConfigError, match="documents"):
            registry.get_document("deployment", "x")

    # -- housekeeping ----------------------------------------------------------------------
    @staticmethod
    def supports_housekeeping(registry: Registry) -> bool:
        return type(registry).delete_executions is not Registry.delete_executions

    def test_delete_removes_an_execution_and_its_records(self, registry: Registry) -> None:
        if not self.supports_housekeeping(registry):
            pytest.skip("this registry declares no housekeeping (Registry.delete_executions)")
        gone, kept = execution(), execution()
        for rec in (gone, kept):
            registry.create_execution(rec)
            out = artifact(rec.exec_id, "a", key=rec.exec_id[:8] * 8)
            registry.save_call(CallRecord(rec.exec_id, "a#1", "a", 1, "completed",
                                          output_artifact=out.artifact_id), artifacts=[out],
                               logs=[LogChunk(rec.exec_id, "a#1", 0, "stdout", "", 1.0,
                                              key="ee" * 32 if rec is kept else "ff" * 32)],
                               metadata=[MetadataEntry(rec.exec_id, "a#1", "k", 1, 1.0)])
            registry.create_wait(WaitRecord(rec.exec_id, "w", 2, "pending"))
        assert registry.delete_executions([gone.exec_id, gone.exec_id, _eid()]) == 1
        with pytest.raises(ExecutionNotFoundError):
            registry.get_execution(gone.exec_id)
        for read in (registry.get_calls, registry.get_waits, registry.get_logs,
                     registry.get_metadata):
            assert read(gone.exec_id) == []
            assert read(kept.exec_id) != []
        assert registry.list_artifacts(exec_id=gone.exec_id) == []
        keys = registry.referenced_blob_keys()
        assert kept.exec_id[:8] * 8 in keys and "ee" * 32 in keys
        assert gone.exec_id[:8] * 8 not in keys and "ff" * 32 not in keys

    def test_delete_keeps_what_memory_points_at(self, registry: Registry) -> None:
        if not (self.supports_housekeeping(registry) and self.supports_memory(registry)):
            pytest.skip("this registry declares no housekeeping or no memory")
        rec = execution()
        registry.create_execution(rec)
        value = artifact(rec.exec_id, "memory:flow/k", key="aa" * 32)
        registry.put_memory(MemoryRecord("flow:review", "k", artifact_id=value.artifact_id,
                                         exec_id=rec.exec_id, call_id="memory_set#1"), value)
        registry.delete_executions([rec.exec_id])
        latest = registry.get_memory("flow:review", "k")
        assert latest is not None and latest.artifact_id == value.artifact_id
        assert registry.get_artifact(value.artifact_id).key == "aa" * 32
        assert "aa" * 32 in registry.referenced_blob_keys()

    def test_integrity_check_of_a_sound_record_finds_nothing(self, registry: Registry) -> None:
        registry.create_execution(execution())
        for full in (False, True):
            problems = registry.check_integrity(full=full)
            assert problems is None or problems == []
