"""kitaru.memory: versioned values per key in flow, execution and namespace scopes; reads and
writes in a flow body are recorded, so resumes and replays see what the original saw."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import until_suspended
from kitaru_local.configs import SqliteRegistryConfig
from kitaru_local.sqlite_registry import SCHEMA_VERSION, SqliteRegistry

import kitaru
from kitaru import checkpoint, flow, wait
from kitaru.client import ExecutionStatus
from kitaru.errors import ConfigError, ContextError, ExecutionNotFoundError, MemoryNotFoundError
from kitaru_core.interfaces import ComponentContext, Registry
from kitaru_core.records import MemoryRecord
from kitaru_core.runtime.state import current_call
from kitaru_core.worker import WorkerCall


@pytest.fixture(autouse=True)
def no_default_scope():
    """`configure` outside flows sets a process default: start and end each test without one."""
    kitaru.memory.configure(None)
    yield
    kitaru.memory.configure(None)




# -- versions, history and deletes ----------------------------------------------------------


def test_every_write_is_a_new_version_and_the_history_keeps_them_all():
    kitaru.memory.configure(scope="team")
    first = kitaru.memory.set("style", {"tone": "short"})
    second = kitaru.memory.set("style", {"tone": "friendly"})

    assert (first.scope, first.key, first.version) == ("namespace:team", "style", 1)
    assert second.version == 2
    assert kitaru.memory.get("style") == {"tone": "friendly"}
    assert kitaru.memory.get("style", version=1) == {"tone": "short"}
    assert [(e.version, e.load()) for e in kitaru.memory.history("style")] == [
        (1, {"tone": "short"}), (2, {"tone": "friendly"}),
    ]
    assert [(e.key, e.version) for e in kitaru.memory.list()] == [("style", 2)]
    assert kitaru.memory.current_scope() == "namespace:team"


def test_a_delete_is_a_tombstone_and_the_history_stays():
    kitaru.memory.set("draft", "v1", scope="notes")
    tombstone = kitaru.memory.delete("draft", scope="notes")

    assert (tombstone.version, tombstone.deleted, tombstone.load()) == (2, True, None)
    assert kitaru.memory.get("draft", scope="notes") is None
    assert kitaru.memory.get("draft", scope="notes", default="none") == "none"
    assert kitaru.memory.get("draft", 1, scope="notes") == "v1"  # old versions stay readable
    assert kitaru.memory.list(scope="notes") == []
    assert [(e.version, e.deleted) for e in kitaru.memory.history("draft", scope="notes")] == [
        (1, False), (2, True),
    ]
    kitaru.memory.set("draft", "v3", scope="notes")  # a deleted key can be set again
    assert kitaru.memory.get("draft", scope="notes") == "v3"
    assert kitaru.memory.history("draft", scope="notes")[-1].version == 3


def test_missing_keys_and_versions():
    kitaru.memory.configure(scope="empty")
    assert kitaru.memory.get("never") is None
    assert kitaru.memory.history("never") == []
    with pytest.raises(MemoryNotFoundError, match="holds no value to delete"):
        kitaru.memory.delete("never")
    kitaru.memory.set("once", 1)
    with pytest.raises(MemoryNotFoundError, match=r"'once' in scope 'namespace:empty' has no version 7"):
        kitaru.memory.get("once", version=7)


def test_any_serializable_value_round_trips():
    big = "x" * (SqliteRegistryConfig().inline_max_bytes + 10)  # a blob in the artifact store
    values = {"none": None, "bytes": b"\x00\x01", "set": {1, 2}, "big": big, "nested": {"a": [1, {"b": 2.5}]}}
    for key, value in values.items():
        kitaru.memory.set(key, value, scope="values")
    assert {e.key: e.load() for e in kitaru.memory.list(scope="values")} == values


# -- bad input ----------------------------------------------------------------------------------


def test_memory_outside_a_flow_needs_a_scope():
    with pytest.raises(ContextError, match=r"call kitaru.memory.configure\(scope='name'\).*scope="):
        kitaru.memory.get("prefs")
    with pytest.raises(ContextError, match="outside a flow"):
        kitaru.memory.set("prefs", 1)
    with pytest.raises(ContextError, match=r"no flow runs here.*flow:FLOW_NAME"):
        kitaru.memory.get("prefs", scope="flow")
    with pytest.raises(ContextError):
        kitaru.memory.configure(scope="execution")


@pytest.mark.parametrize("scope", ["", "two words", "bucket:x", "-dash-first", "flow:", "n" * 129])
def test_a_malformed_scope_is_a_config_error(scope):
    with pytest.raises(ConfigError, match="memory scope"):
        kitaru.memory.set("k", 1, scope=scope)


@pytest.mark.parametrize("key", ["", "has space", "a#1", "k" * 257, 42])
def test_a_malformed_key_is_a_config_error(key):
    with pytest.raises(ConfigError, match="memory key"):
        kitaru.memory.set(key, 1, scope="ok")


def test_an_unknown_execution_scope_is_a_typed_error():
    with pytest.raises(ExecutionNotFoundError):
        kitaru.memory.get("k", scope="execution:0123456789abcdef")


def test_a_registry_without_memory_support_says_so(tmp_path: Path):
    registry = SqliteRegistry(SqliteRegistryConfig(), ComponentContext(tmp_path, "plain"))
    with pytest.raises(ConfigError, match="does not support memory"):
        Registry.put_memory(registry, MemoryRecord("namespace:x", "k"), None)  # the base default
    registry.close()


def test_memory_in_an_isolated_checkpoints_worker_is_a_context_error():
    token = current_call.set(WorkerCall({"exec_id": "e1"}, store=None))  # what the worker sets
    try:
        with pytest.raises(ContextError, match="isolated checkpoint"):
            kitaru.memory.get("k", scope="team")
    finally:
        current_call.reset(token)


# -- scopes -------------------------------------------------------------------------------------


@checkpoint
def remember_in_checkpoint(value: str) -> str | None:
    kitaru.memory.set("seen_by_checkpoint", value)  # the flow's scope here too, unrecorded
    return kitaru.memory.get("where", scope="execution")


@flow
def scoped(tag: str) -> dict:
    earlier = kitaru.memory.get("where")  # the default in a flow: the flow's scope
    kitaru.memory.set("where", f"flow {tag}")
    kitaru.memory.set("where", f"execution {tag}", scope="execution")
    kitaru.memory.set("where", f"shared {tag}", scope="shared")
    from_checkpoint = remember_in_checkpoint(tag).load()
    return {"earlier": earlier, "from_checkpoint": from_checkpoint,
            "execution": kitaru.memory.get("where", scope="execution")}


def test_flow_execution_and_namespace_scopes_are_separate(client):
    first = scoped.run("one")
    assert first.wait() == {"earlier": None, "from_checkpoint": "execution one",
                            "execution": "execution one"}
    second = scoped.run("two")
    # The flow's scope is shared by its executions; each execution has its own.
    assert second.wait() == {"earlier": "flow one", "from_checkpoint": "execution two",
                             "execution": "execution two"}

    assert client.memory.get("where", scope="flow:scoped") == "flow two"
    assert client.memory.get("where", scope="shared") == "shared two"
    assert client.memory.get("where", scope="namespace:shared") == "shared two"
    assert client.memory.get("where", scope=f"execution:{first.exec_id[:8]}") == "execution one"
    assert client.memory.get("seen_by_checkpoint", scope="flow:scoped") == "two"
    assert {"flow:scoped", "namespace:shared", f"execution:{first.exec_id}",
            f"execution:{second.exec_id}"} <= set(client.memory.scopes())
    writers = [e.exec_id for e in client.memory.history("where", scope="flow:scoped")]
    assert writers == [first.exec_id, second.exec_id]


@flow
def configured() -> tuple[str | None, str | None]:
    kitaru.memory.configure(scope="execution")
    kitaru.memory.set("note", "mine")
    return kitaru.memory.current_scope(), kitaru.memory.get("note", scope="flow")


@checkpoint
def configure_in_checkpoint() -> None:
    kitaru.memory.configure(scope="x")


@flow
def configures_in_checkpoint() -> None:
    configure_in_checkpoint()


def test_configure_in_a_flow_sets_that_executions_default(client):
    kitaru.memory.configure(scope="process_default")  # outside flows only: never used by a flow
    handle = configured.run()
    assert handle.wait() == (f"execution:{handle.exec_id}", None)
    assert client.memory.get("note", scope=f"execution:{handle.exec_id}") == "mine"
    assert kitaru.memory.current_scope() == "namespace:process_default"
    assert kitaru.memory.get("note") is None


def test_configure_inside_a_checkpoint_is_a_context_error():
    with pytest.raises(kitaru.errors.FlowFailedError, match="not allowed inside a checkpoint"):
        configures_in_checkpoint.run().wait()


# -- recorded reads and writes: resume and replay ------------------------------------------------


@checkpoint
def answer(prefs: dict) -> str:
    return f"answer in a {prefs['tone']} tone"


@checkpoint
def polish(text: str) -> str:
    return text + "!"


@flow
def assistant() -> str:
    prefs = kitaru.memory.get("prefs", scope="users")
    text = answer(prefs)
    return polish(text).load()


def test_a_replay_sees_the_values_the_original_read():
    kitaru.memory.set("prefs", {"tone": "short"}, scope="users")
    original = assistant.run()
    assert original.wait() == "answer in a short tone!"
    kitaru.memory.set("prefs", {"tone": "formal"}, scope="users")

    replay = assistant.replay(original.exec_id, at="polish")  # the read is before `at`
    assert replay.wait() == "answer in a short tone!"
    rerun = assistant.replay(original.exec_id, at="memory_get:prefs")  # from the read on: live
    assert rerun.wait() == "answer in a formal tone!"
    assert assistant.run().wait() == "answer in a formal tone!"


def test_a_replay_can_override_what_a_read_returned():
    kitaru.memory.set("prefs", {"tone": "short"}, scope="users")
    original = assistant.run()
    assert original.wait() == "answer in a short tone!"
    override = {"memory_get:prefs": {"output": {"tone": "pirate"}}}  # the value the read returns
    what_if = assistant.replay(original.exec_id, at="answer", checkpoint_overrides=override)
    assert what_if.wait() == "answer in a pirate tone!"
    reused = assistant.replay(original.exec_id, at="polish", checkpoint_overrides=override)
    assert reused.wait() == "answer in a short tone!"  # `answer` is before `at`: its output reused
    assert kitaru.memory.get("prefs", scope="users") == {"tone": "short"}  # memory untouched


@flow
def greet_then_wait() -> str:
    name = kitaru.memory.get("name", scope="people", default="nobody")
    kitaru.memory.set("greeted", name, scope="people")
    wait(name="go", timeout=0)
    return f"hello {name}"


def test_a_resume_sees_the_original_read_and_does_not_write_again(client):
    kitaru.memory.set("name", "ada", scope="people")
    handle = greet_then_wait.run()
    until_suspended(handle)
    kitaru.memory.set("name", "grace", scope="people")

    client.executions.input(handle.exec_id, wait="go", resume=False)
    done = client.executions.resume(handle.exec_id, background=False)

    assert done.status is ExecutionStatus.COMPLETED
    assert kitaru.load(handle.exec_id, "output") == "hello ada"
    greeted = kitaru.memory.history("greeted", scope="people")
    assert [(e.version, e.load(), e.exec_id) for e in greeted] == [(1, "ada", handle.exec_id)]
    calls = {c.call_id: c for c in done.checkpoints}
    assert calls["memory_get:name#1"].type == "memory_read"
    assert calls["memory_set:greeted#1"].type == "memory_write"
    assert all(a.direction != "input" for c in calls.values() for a in c.artifacts)
    assert calls["memory_get:name#1"].output.load()["version"] == 1  # the version it read


@checkpoint
def plan_step() -> str:
    return "planned"


@flow
def planner(goal: str) -> str:
    kitaru.memory.set("goal", goal, scope="execution")
    plan_step()
    return kitaru.memory.get("goal", scope="execution", default="lost")


def test_a_replay_starts_with_the_originals_execution_memory_as_of_at(client):
    original = planner.run("ship it")
    assert original.wait() == "ship it"
    replay = planner.replay(original.exec_id, at="plan_step")  # the write was before `at`
    assert replay.wait() == "ship it"
    carried = client.memory.history("goal", scope=f"execution:{replay.exec_id}")
    assert [(e.version, e.load(), e.exec_id) for e in carried] == [(1, "ship it", replay.exec_id)]
    assert client.memory.history("goal", scope=f"execution:{original.exec_id}")[0].version == 1


def test_a_write_from_the_same_call_is_stored_once(tmp_path: Path):
    registry = SqliteRegistry(SqliteRegistryConfig(), ComponentContext(tmp_path, "local"))
    record = MemoryRecord("flow:f", "k", exec_id="e1", call_id="memory_set:k#1", created_at=1.0)
    first = registry.put_memory(record, None)
    again = registry.put_memory(record, None)  # the call ran again after a crash
    other = registry.put_memory(MemoryRecord("flow:f", "k", exec_id="e1", call_id="memory_set:k#2"),
                                None)
    assert (first.version, again.version, other.version) == (1, 1, 2)
    assert len(registry.memory_history("flow:f", "k")) == 2
    registry.close()


# -- the registry file ---------------------------------------------------------------------------


def test_a_version_3_registry_file_gains_the_memory_table(tmp_path: Path):
    context = ComponentContext(tmp_path, "local")
    registry = SqliteRegistry(SqliteRegistryConfig(), context)
    assert registry.list_memory_scopes() == []
    registry.close()
    with sqlite3.connect(tmp_path / "kitaru.db") as conn:  # back to the version-3 layout
        conn.execute("DROP TABLE memory")
        conn.execute("PRAGMA user_version=3")
    with sqlite3.connect(tmp_path / "kitaru.db") as conn:
        assert "memory" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}

    reopened = SqliteRegistry(SqliteRegistryConfig(), context)
    stored = reopened.put_memory(MemoryRecord("namespace:n", "k", artifact_id=None), None)
    assert stored.version == 1
    assert reopened._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    reopened.close()


# -- the command line ------------------------------------------------------------------------------


def test_the_memory_commands_round_trip_as_json(cli):
    made = cli("memory", "set", "prefs", '{"tone": "short"}', "--scope", "team", "-o", "json")
    assert made.exit_code == 0, made.stderr
    assert made.json()["scope"] == "namespace:team" and made.json()["version"] == 1
    assert cli("memory", "set", "prefs", '"long"', "-s", "team").exit_code == 0

    got = cli("memory", "get", "prefs", "--scope", "team", "-o", "json").json()
    assert (got["version"], got["value"]) == (2, "long")
    first = cli("memory", "get", "prefs", "--scope", "team", "--version", "1")
    assert first.exit_code == 0 and '"tone": "short"' in first.stdout
    listed = cli("memory", "list", "--scope", "team", "-o", "json").json()
    assert [(e["key"], e["version"]) for e in listed] == [("prefs", 2)]

    deleted = cli("memory", "delete", "prefs", "--scope", "team", "-o", "json").json()
    assert deleted["deleted"] is True and deleted["version"] == 3
    history = cli("memory", "history", "prefs", "--scope", "team", "-o", "json").json()
    assert [(h["version"], h["deleted"], h["value"]) for h in history] == [
        (1, False, {"tone": "short"}), (2, False, "long"), (3, True, None),
    ]
    scopes = cli("memory", "scopes", "-o", "json").json()
    assert scopes == [{"scope": "namespace:team", "kind": "namespace", "name": "team", "keys": 0}]
    assert kitaru.KitaruClient().memory.get("prefs", scope="team", version=2) == "long"


def test_the_memory_commands_fail_clearly(cli):
    assert cli("memory", "set", "k", "1", "-s", "team").exit_code == 0
    not_json = cli("memory", "set", "greeting", '{"tone": short}', "--scope", "team")
    assert not_json.exit_code == 1  # starts like JSON, so it was meant as JSON: refused
    assert "is not valid JSON" in not_json.stderr

    missing = cli("memory", "get", "nope", "--scope", "team")
    assert missing.exit_code == 1 and "no memory key 'nope'" in missing.stderr
    assert "its keys: k" in missing.stderr
    unknown = cli("memory", "list", "--scope", "nowhere")
    assert unknown.exit_code == 1 and "scope 'namespace:nowhere' holds no memory" in unknown.stderr
    bad = cli("memory", "get", "k", "--scope", "two words")
    assert bad.exit_code == 2 and "namespace name" in bad.stderr
    bare = cli("memory", "list", "--scope", "flow")
    assert bare.exit_code != 0 and "flow:FLOW_NAME" in bare.stderr
    assert cli("memory", "get", "k", "-s", "team", "--version", "9").exit_code == 1
    assert cli("memory", "delete", "nope", "-s", "team").exit_code == 1
    assert cli("memory", "get", "k").exit_code == 2  # --scope is required
    for result in (not_json, missing, unknown, bad, bare):
        assert "Traceback" not in result.stderr
