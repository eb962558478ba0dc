"""Every checkpoint output is a typed, content-addressed, versioned artifact;
`kitaru.save` / `kitaru.load` / `kitaru.log`; values that cannot be serialized."""

from __future__ import annotations

import io
import logging
import math
import pickle
import socket
import threading
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

import kitaru
from kitaru import checkpoint, flow
from kitaru.errors import ArtifactNotFoundError, ContextError, FlowFailedError, SerializationError
from kitaru_core.serializers import deserialize, serialize


class Report(BaseModel):
    title: str
    score: float


@dataclass
class Point:
    x: int
    y: int


# -- serializers ----------------------------------------------------------------------------


@checkpoint
def as_json() -> dict:
    return {"items": [1, 2.5, "three", None, True], "nested": {"k": "v"}}


@checkpoint
def as_model() -> Report:
    return Report(title="weekly", score=0.9)


@checkpoint
def as_bytes() -> bytes:
    return b"\x00\x01binary"


@checkpoint
def as_pickle() -> Point:
    return Point(3, 4)


@checkpoint
def as_tuple_and_int_keys() -> dict:
    return {1: ("a", "b")}  # not plain JSON: int keys and a tuple must come back as they were


@flow
def every_serializer() -> str:
    as_json()
    as_model()
    as_bytes()
    as_pickle()
    as_tuple_and_int_keys()
    return "done"


def test_each_output_is_an_artifact_with_its_serializer(client):
    handle = every_serializer.run()
    assert handle.wait() == "done"
    execution = client.executions.get(handle.exec_id)
    outputs = {c.name: c.output for c in execution.checkpoints}
    expected = {
        "as_json": ("json", {"items": [1, 2.5, "three", None, True], "nested": {"k": "v"}}),
        "as_model": ("pydantic", Report(title="weekly", score=0.9)),
        "as_bytes": ("bytes", b"\x00\x01binary"),
        "as_pickle": ("pickle", Point(3, 4)),
        "as_tuple_and_int_keys": ("pickle", {1: ("a", "b")}),
    }
    for name, (serializer, value) in expected.items():
        art = outputs[name]
        assert art.serializer == serializer, name
        assert art.direction == "output"
        assert art.call_id == f"{name}#1"
        # Round trip through the client, by artifact id.
        loaded = client.artifacts.get(art.artifact_id).load()
        assert loaded == value, name
        assert type(loaded) is type(value)
    assert outputs["as_model"].type_name == f"{__name__}.Report"
    assert outputs["as_bytes"].type_name == "bytes"
    assert outputs["as_bytes"].size == len(b"\x00\x01binary")


# -- content addressing and versions --------------------------------------------------------


@checkpoint
def constant(tag: str) -> dict:
    return {"answer": 42}


@flow
def constant_twice() -> None:
    constant("first")
    constant("second")


def test_same_value_same_key_and_versions_count_up_per_name(client):
    first = constant_twice.run()
    first.wait()
    second = constant_twice.run()
    second.wait()
    outputs = [
        c.output for eid in (first.exec_id, second.exec_id)
        for c in client.executions.get(eid).checkpoints
    ]
    assert len(outputs) == 4
    assert len({a.key for a in outputs}) == 1
    assert len({a.artifact_id for a in outputs}) == 4
    assert [a.version for a in outputs] == [1, 2, 3, 4]
    # Inputs with different values have different keys.
    tags = [a for c in client.executions.get(first.exec_id).checkpoints for a in c.artifacts
            if a.direction == "input"]
    assert [a.load() for a in tags] == ["first", "second"]
    assert tags[0].key != tags[1].key
    # Another name starts its own count.
    assert [a.version for a in tags] == [1, 2]


def test_artifacts_list_filters_by_name(client):
    handle = constant_twice.run()
    handle.wait()
    named = client.artifacts.list(handle.exec_id, name="constant")
    assert [(a.call_id, a.version) for a in named] == [("constant#1", 1), ("constant#2", 2)]


# -- kitaru.save / kitaru.load --------------------------------------------------------------


@checkpoint
def write_report(topic: str) -> str:
    kitaru.save("report", Report(title=topic, score=1.0), type="report")
    kitaru.save("notes", ["draft", topic])
    return f"summary of {topic}"


@checkpoint
def read_back(exec_id: str) -> dict:
    return kitaru.load(exec_id, "notes")


@flow
def report_flow(topic: str) -> str:
    summary = write_report(topic)
    return summary.load()


@flow
def reader_flow(exec_id: str) -> dict:
    return read_back(exec_id).load()


def test_save_inside_a_checkpoint_and_load_by_every_name(client):
    handle = report_flow.run("agents")
    assert handle.wait() == "summary of agents"
    eid = handle.exec_id
    assert kitaru.load(eid, "report") == Report(title="agents", score=1.0)
    assert kitaru.load(eid, "notes") == ["draft", "agents"]
    assert kitaru.load(eid, "write_report") == "summary of agents"
    assert kitaru.load(eid, "write_report#1") == "summary of agents"
    assert kitaru.load(eid, "output") == "summary of agents"
    # Saved artifacts are recorded with the call that saved them.
    call = client.executions.get(eid).checkpoints[0]
    saved = {a.name: a for a in call.artifacts if a.direction == "saved"}
    assert set(saved) == {"report", "notes"}
    assert saved["report"].serializer == "pydantic"
    assert saved["report"].metadata == {"artifact_type": "report"}
    assert saved["notes"].load() == ["draft", "agents"]


def test_save_returns_the_artifact_id(client):
    ids: dict[str, str] = {}

    @checkpoint
    def saver() -> None:
        ids["saved"] = kitaru.save("thing", {"a": 1})

    @flow
    def saver_flow() -> None:
        saver()

    saver_flow.run().wait()
    art = client.artifacts.get(ids["saved"])
    assert (art.name, art.direction, art.call_id) == ("thing", "saved", "saver#1")
    assert art.load() == {"a": 1}


def test_load_inside_another_execution():
    source = report_flow.run("x")
    source.wait()
    assert reader_flow.run(source.exec_id).wait() == ["draft", "x"]


def test_load_of_an_unknown_name_lists_the_known_ones():
    handle = report_flow.run("x")
    handle.wait()
    with pytest.raises(ArtifactNotFoundError, match=r"'missing'.*notes.*report.*write_report"):
        kitaru.load(handle.exec_id, "missing")


# -- kitaru.log -------------------------------------------------------------------------------


@checkpoint
def llm_like(prompt: str) -> str:
    kitaru.log(tokens=12, model="fast")
    kitaru.log(cost=0.01)
    return prompt[::-1]


@flow
def logging_flow(prompt: str) -> str:
    kitaru.log(stage="start", user={"id": 7})
    answer = llm_like(prompt).load()
    kitaru.log(stage="end")
    return answer


def test_log_metadata_from_checkpoint_and_flow_body(client):
    handle = logging_flow.run("abc")
    assert handle.wait() == "cba"
    execution = client.executions.get(handle.exec_id)
    # The flow body's entries belong to the execution; the latest value of a key wins.
    assert execution.metadata == {"stage": "end", "user": {"id": 7}}
    assert execution.checkpoints[0].metadata == {"tokens": 12, "model": "fast", "cost": 0.01}
    assert execution.to_dict()["checkpoints"][0]["metadata"]["tokens"] == 12


# -- values that cannot be serialized ---------------------------------------------------------


@checkpoint
def returns_a_lock() -> object:
    return threading.Lock()


@checkpoint
def returns_a_generator() -> object:
    return (i for i in range(3))


@checkpoint
def saves_a_lock() -> str:
    kitaru.save("lock", threading.Lock())
    return "unreachable"


@checkpoint
def returns_an_open_file() -> object:
    return open(__file__)


@checkpoint
def returns_a_socket() -> object:
    return socket.socket()


@checkpoint
def returns_a_file_in_a_dict() -> object:
    return {"report": open(__file__)}


@checkpoint
def saves_a_file() -> str:
    kitaru.save("source", open(__file__))  # noqa: SIM115
    return "unreachable"


@checkpoint
def fine() -> int:
    return 1


@flow
def lock_flow() -> None:
    fine()
    returns_a_lock()


@flow
def generator_flow() -> None:
    returns_a_generator()


@flow
def save_lock_flow() -> None:
    saves_a_lock()


@flow
def file_flow() -> None:
    returns_an_open_file()


@flow
def socket_flow() -> None:
    returns_a_socket()


@flow
def nested_file_flow() -> None:
    returns_a_file_in_a_dict()


@flow
def save_file_flow() -> None:
    saves_a_file()


@pytest.mark.parametrize(
    ("the_flow", "call_id", "type_word"),
    [
        (lock_flow, "returns_a_lock#1", "lock"),
        (generator_flow, "returns_a_generator#1", "generator"),
        (save_lock_flow, "saves_a_lock#1", "lock"),
        (file_flow, "returns_an_open_file#1", "TextIOWrapper"),
        (socket_flow, "returns_a_socket#1", "socket"),
        (nested_file_flow, "returns_a_file_in_a_dict#1", "dict"),
        (save_file_flow, "saves_a_file#1", "TextIOWrapper"),
    ],
    ids=["lock", "generator", "saved-lock", "open-file", "socket", "file-in-a-dict", "saved-file"],
)
def test_unserializable_value_fails_the_checkpoint_naming_call_and_type(
    the_flow, call_id, type_word, client
):
    handle = the_flow.run()
    with pytest.raises(FlowFailedError) as info:
        handle.wait()
    cause = info.value.__cause__
    assert isinstance(cause, SerializationError)
    assert call_id in str(cause)
    assert type_word in str(cause)
    execution = client.executions.get(handle.exec_id)
    assert execution.failure["call_id"] == call_id
    assert execution.failure["type"].endswith("SerializationError")
    failed = next(c for c in execution.checkpoints if c.call_id == call_id)
    assert failed.status == "failed"
    assert failed.attempts == 1  # not retried: the same value would fail again
    assert call_id in failed.error["message"] and type_word in failed.error["message"]


@checkpoint(retries=3, retry_delay=0.01)
def lock_with_retries() -> object:
    return threading.Lock()


@flow
def lock_retries_flow() -> None:
    lock_with_retries()


def test_serialization_errors_are_not_retried(client):
    handle = lock_retries_flow.run()
    with pytest.raises(FlowFailedError, match="SerializationError"):
        handle.wait()
    assert client.executions.get(handle.exec_id).checkpoints[0].attempts == 1


@flow
def flow_returning_a_lock() -> object:
    fine()
    return threading.Lock()


def test_unserializable_flow_result_fails_the_execution(client):
    handle = flow_returning_a_lock.run()
    with pytest.raises(FlowFailedError, match="lock"):
        handle.wait()
    execution = client.executions.get(handle.exec_id)
    assert execution.status == "failed"
    assert execution.checkpoints[0].status == "completed"


@flow
def takes_anything(value: object) -> str:
    return "ran"


def test_unserializable_flow_input_is_refused_before_anything_starts(client):
    with pytest.raises(SerializationError, match=r"takes_anything.*lock"):
        takes_anything.run(threading.Lock())
    assert client.executions.list() == []


@checkpoint
def saves_twice() -> None:
    kitaru.save("draft", "first version")
    kitaru.save("draft", "second version")


@flow
def saves_twice_flow() -> None:
    saves_twice()


def test_saving_a_name_twice_keeps_both_and_load_returns_the_latest(client):
    handle = saves_twice_flow.run()
    handle.wait()
    drafts = client.artifacts.list(handle.exec_id, name="draft")
    assert [(a.version, a.load()) for a in drafts] == [(1, "first version"), (2, "second version")]
    assert kitaru.load(handle.exec_id, "draft") == "second version"
    assert kitaru.load(handle.exec_id, "output") is None


# -- pickled values must load back as themselves ------------------------------------------------


class BecomesAString:
    """Pickles as its name: loaded back it is a str, not this class."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        return (str, (self.name,))


class NoEquality:
    """Compared by identity: checked by its type only."""

    def __init__(self, x: int) -> None:
        self.x = x


@dataclass
class Money:
    """Pickles without its currency: loaded back, 5 USD becomes 5 EUR."""

    amount: float
    currency: str = "EUR"

    def __reduce__(self):
        return (Money, (self.amount,))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (open(__file__), "an open file, socket or stream"),  # noqa: SIM115
        (threading.Lock(), "cannot pickle"),
        ((i for i in range(3)), "cannot pickle"),
        (BecomesAString("x"), "becomes a str"),
        (Money(5.0, "USD"), "no longer equal to the original"),
        ([1, open(__file__)], "no longer equal"),  # noqa: SIM115 - cloudpickle would store its text
    ],
    ids=["file", "lock", "generator", "another-type", "unequal", "file-in-a-list"],
)
def test_a_value_that_cannot_round_trip_is_refused(value, fragment):
    with pytest.raises(SerializationError, match=fragment) as refused:
        serialize(value)
    assert "return plain data instead" in str(refused.value) or "return what it holds" in str(refused.value)


@pytest.mark.parametrize(
    "value",
    [Point(1, 2), [math.nan, 1.0], {1: ("a", math.nan)}, Money(math.nan), io.StringIO("kept"),
     io.BytesIO(b"kept"), {3, 4}, math.nan, NoEquality(7)],
    ids=["dataclass", "nan-in-a-list", "nan-in-a-dict", "nan-in-a-dataclass", "string-io", "bytes-io",
         "set", "nan", "no-eq"],
)
def test_values_that_round_trip_are_pickled(value):
    data, serializer = serialize(value)
    restored = deserialize(data, serializer)
    assert type(restored) is type(value)
    assert pickle.dumps(restored) == pickle.dumps(value)


# -- a checkpoint called as a plain function, outside any flow ---------------------------------


@checkpoint
def summarize(text: str) -> str:
    kitaru.log(tokens=len(text))
    kitaru.save("draft", text.upper(), type="document")
    return text[:5]


def test_a_checkpoint_using_log_and_save_runs_as_a_plain_function(caplog):
    with caplog.at_level(logging.DEBUG, logger="kitaru"):
        assert summarize("hello world") == "hello"
        assert summarize.with_id("s")("hello world") == "hello"
        assert summarize.submit("hello world").load() == "hello"
    ignored = [r.getMessage() for r in caplog.records if r.name == "kitaru"]
    assert any("kitaru.save('draft') ignored" in m and "'summarize'" in m for m in ignored), ignored
    assert any("kitaru.log(tokens) ignored" in m for m in ignored), ignored


def test_log_and_save_outside_any_checkpoint_are_still_errors():
    with pytest.raises(ContextError, match="inside a flow or a checkpoint"):
        kitaru.log(tokens=1)
    with pytest.raises(ContextError, match="inside a @checkpoint"):
        kitaru.save("draft", "x")
    summarize("after")  # a plain call leaves nothing behind
    with pytest.raises(ContextError):
        kitaru.log(tokens=1)
