"""Flows and checkpoints in one process on the local stack: handles, concurrency,
retries, cache, process defaults."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

import kitaru
from kitaru import checkpoint, flow
from kitaru.client import ExecutionStatus
from kitaru.errors import FlowFailedError, WaitTimeoutError
from kitaru_core.stack import StackStore

#: How many times each checkpoint function really ran (reset before every test).
calls: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset_counters() -> None:
    calls.clear()
    _gate.clear()


# -- bare and option forms --------------------------------------------------------------


@checkpoint
def add(a: int, b: int) -> int:
    calls["add"] += 1
    return a + b


@checkpoint(type="llm_call", retries=1, retry_delay=0.01)
def summarize(text: str) -> str:
    calls["summarize"] += 1
    return text.upper()


@checkpoint(runtime="isolated")
def isolated_square(x: int) -> int:
    calls["isolated_square"] += 1
    return x * x


@checkpoint(name="renamed")
def named_step(x: int) -> int:
    return x + 100


@flow
def bare_flow(n: int) -> int:
    return add(n, 1).load()


@flow(retries=0)
def options_flow(text: str) -> dict:
    return {
        "summary": summarize(text).load(),
        "square": isolated_square(7).load(),
        "renamed": named_step(1).load(),
    }


def test_bare_decorators_run_and_return_a_handle(client):
    handle = bare_flow.run(41)
    assert isinstance(handle, kitaru.FlowHandle)
    assert handle.wait() == 42
    assert handle.get() == 42
    assert handle.status is ExecutionStatus.COMPLETED
    execution = client.executions.get(handle.exec_id)
    assert execution.flow_name == "bare_flow"
    assert [c.call_id for c in execution.checkpoints] == ["add#1"]


def test_checkpoint_options_are_recorded(client):
    handle = options_flow.run("hi")
    assert handle.wait() == {"summary": "HI", "square": 49, "renamed": 101}
    checkpoints = {c.call_id: c for c in client.executions.get(handle.exec_id).checkpoints}
    assert set(checkpoints) == {"summarize#1", "isolated_square#1", "renamed#1"}
    assert checkpoints["summarize#1"].type == "llm_call"
    assert checkpoints["summarize#1"].attempts == 1
    assert checkpoints["renamed#1"].name == "renamed"
    assert checkpoints["isolated_square#1"].output.load() == 49


def test_calling_a_flow_runs_it_and_returns_the_result():
    assert bare_flow(1) == 2


def test_checkpoint_outside_a_flow_is_a_plain_function():
    assert add(2, 3) == 5
    assert summarize("x") == "X"
    handle = add.submit(1, 1)
    assert handle.load() == 2
    assert [h.load() for h in add.map([1, 2], [10, 20])] == [11, 22]
    assert kitaru.current_execution_id() is None


# -- handles: status, wait(timeout), result ------------------------------------------------

_gate = threading.Event()


@checkpoint
def blocked_until_gate() -> str:
    assert _gate.wait(timeout=10), "test never opened the gate"
    return "through"


@flow
def gated_flow() -> str:
    return blocked_until_gate().load()


def test_handle_status_and_wait_timeout_while_running():
    handle = gated_flow.run()
    assert handle.status is ExecutionStatus.RUNNING
    with pytest.raises(WaitTimeoutError, match=handle.exec_id):
        handle.wait(timeout=0.05)
    _gate.set()
    assert handle.wait(timeout=None) == "through"
    assert handle.status is ExecutionStatus.COMPLETED


# -- output handles -------------------------------------------------------------------


@checkpoint
def total(values: list[int]) -> int:
    return sum(values)


@checkpoint
def describe(value: int, label: str = "n") -> str:
    return f"{label}={value}"


@flow
def handles_flow(n: int) -> dict:
    a = add(n, 1)
    b = add(a, 10)
    both = total([a, b])
    text = describe(value=both, label="sum")
    return {"a": a.load(), "b": b.load(), "total": both.load(), "text": text.load(),
            "a_call": a.call_id}


def test_output_handles_pass_to_other_checkpoints_and_load(client):
    handle = handles_flow.run(1)
    assert handle.wait() == {"a": 2, "b": 12, "total": 14, "text": "sum=14", "a_call": "add#1"}
    execution = client.executions.get(handle.exec_id)
    assert [c.call_id for c in execution.checkpoints] == ["add#1", "add#2", "total#1", "describe#1"]
    b_inputs = {a.name: a.load() for a in execution.checkpoints[1].artifacts if a.direction == "input"}
    assert b_inputs == {"a": 2, "b": 10}
    describe_inputs = {a.name: a.load() for a in execution.checkpoints[3].artifacts
                       if a.direction == "input"}
    assert describe_inputs == {"value": 14, "label": "sum"}


@flow
def explicit_id_flow() -> int:
    return add.with_id("first-sum")(1, 2).load() + add(3, 4).load()


def test_with_id_gives_an_explicit_call_id(client):
    handle = explicit_id_flow.run()
    assert handle.wait() == 10
    ids = [c.call_id for c in client.executions.get(handle.exec_id).checkpoints]
    assert ids == ["first-sum", "add#1"]


# -- submit / map: concurrent calls -----------------------------------------------------

_BARRIER_PARTIES = 3


def _barrier() -> threading.Barrier:
    return threading.Barrier(_BARRIER_PARTIES, timeout=10)


_barriers: dict[str, threading.Barrier] = {}


@checkpoint
def meet(key: str, i: int) -> int:
    # Every party must be inside this function at the same time, or the barrier breaks.
    _barriers[key].wait()
    calls["meet"] += 1
    return i * 10


@flow
def submit_flow(key: str) -> list[int]:
    handles = [meet.submit(key, i) for i in range(_BARRIER_PARTIES)]
    return [h.result() for h in handles]


@flow
def map_flow(key: str) -> list[int]:
    handles = meet.map([key] * _BARRIER_PARTIES, range(_BARRIER_PARTIES))
    return [h.load() for h in handles]


@pytest.mark.parametrize("the_flow", [submit_flow, map_flow], ids=["submit", "map"])
def test_submitted_calls_run_concurrently_with_numbered_ids(the_flow, client):
    key = the_flow.name
    _barriers[key] = _barrier()
    handle = the_flow.run(key)
    assert handle.wait(timeout=30) == [0, 10, 20]
    assert calls["meet"] == _BARRIER_PARTIES
    execution = client.executions.get(handle.exec_id)
    by_id = {c.call_id: c for c in execution.checkpoints}
    assert set(by_id) == {"meet#1", "meet#2", "meet#3"}
    assert all(c.status == "completed" for c in by_id.values())
    # The n-th submission is `meet#n`, whatever order they finished in.
    assert [by_id[f"meet#{i + 1}"].output.load() for i in range(3)] == [0, 10, 20]


@flow
def submit_without_waiting_flow() -> str:
    add.submit(1, 2)  # never awaited in the body: the runner still joins it
    return "done"


def test_submitted_calls_finish_before_the_execution_completes(client):
    handle = submit_without_waiting_flow.run()
    assert handle.wait() == "done"
    execution = client.executions.get(handle.exec_id)
    assert [(c.call_id, c.status) for c in execution.checkpoints] == [("add#1", "completed")]


# -- checkpoint retries --------------------------------------------------------------------

@checkpoint(retries=2, retry_delay=0.01, backoff=3.0)
def flaky(fail_times: int) -> str:
    calls["flaky"] += 1
    if calls["flaky"] <= fail_times:
        raise ConnectionError(f"transient failure {calls['flaky']}")
    return "ok"


@flow
def flaky_flow(fail_times: int) -> str:
    return flaky(fail_times).load()


def test_checkpoint_retries_until_success_with_backoff(client):
    handle = flaky_flow.run(2)
    assert handle.wait() == "ok"
    assert calls["flaky"] == 3
    call = client.executions.get(handle.exec_id).checkpoints[0]
    assert call.status == "completed"
    assert call.attempts == 3
    assert call.error is None
    stderr = "".join(e.text for e in client.executions.logs(handle.exec_id, checkpoint="flaky#1")
                     if e.stream == "stderr")
    # The delay grows by `backoff` each attempt: 0.01s, then 0.03s.
    assert "attempt 1 failed" in stderr and "retrying in 0.01s" in stderr
    assert "attempt 2 failed" in stderr and "retrying in 0.03s" in stderr


def test_checkpoint_fails_after_its_retries_are_used_up(client):
    handle = flaky_flow.run(5)
    with pytest.raises(FlowFailedError, match="flaky#1") as info:
        handle.wait()
    assert "ConnectionError" in str(info.value)
    assert calls["flaky"] == 3
    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.failure["call_id"] == "flaky#1"
    call = execution.checkpoints[0]
    assert (call.status, call.attempts) == ("failed", 3)
    assert call.error["message"] == "transient failure 3"
    assert call.output is None


# -- flow retries ------------------------------------------------------------------------


@checkpoint
def prepare() -> str:
    calls["prepare"] += 1
    return "prepared"


@checkpoint
def fails_first_time(base: str) -> str:
    calls["fails_first_time"] += 1
    if calls["fails_first_time"] == 1:
        raise RuntimeError("first attempt of the body fails")
    return base + "+finished"


@flow(retries=1)
def retried_flow() -> str:
    return fails_first_time(prepare()).load()


@flow
def unretried_flow() -> str:
    return fails_first_time(prepare()).load()


def test_flow_retries_rerun_the_body_and_reuse_completed_checkpoints(client):
    handle = retried_flow.run()
    assert handle.wait() == "prepared+finished"
    assert calls == {"prepare": 1, "fails_first_time": 2}
    execution = client.executions.get(handle.exec_id)
    assert execution.status is ExecutionStatus.COMPLETED
    by_id = {c.call_id: c for c in execution.checkpoints}
    assert set(by_id) == {"prepare#1", "fails_first_time#1"}
    assert by_id["prepare#1"].attempts == 1
    assert by_id["fails_first_time#1"].attempts == 2


def test_flow_without_retries_fails_once():
    with pytest.raises(FlowFailedError, match="fails_first_time#1"):
        unretried_flow.run().wait()
    assert calls == {"prepare": 1, "fails_first_time": 1}


# -- cache ---------------------------------------------------------------------------------


@checkpoint(cache=True)
def cached_embed(text: str) -> list[int]:
    calls["cached_embed"] += 1
    return [ord(c) for c in text]


@checkpoint
def uncached_embed(text: str) -> list[int]:
    calls["uncached_embed"] += 1
    return [ord(c) for c in text]


@flow
def cache_flow(text: str) -> list[int]:
    return cached_embed(text).load()


@flow
def no_cache_flow(text: str) -> list[int]:
    return uncached_embed(text).load()


def test_cache_reuses_a_completed_call_across_executions(client):
    first = cache_flow.run("ab")
    assert first.wait() == [97, 98]
    second = cache_flow.run("ab")
    assert second.wait() == [97, 98]
    assert calls["cached_embed"] == 1
    reused = client.executions.get(second.exec_id).checkpoints[0]
    assert reused.status == "completed"
    assert reused.attempts == 0
    assert reused.output.metadata["cache_hit"] == f"{first.exec_id}/cached_embed#1"
    # Different inputs are a different cache entry.
    assert cache_flow.run("abc").wait() == [97, 98, 99]
    assert calls["cached_embed"] == 2


def test_cache_is_off_by_default():
    assert no_cache_flow.run("ab").wait() == [97, 98]
    assert no_cache_flow.run("ab").wait() == [97, 98]
    assert calls["uncached_embed"] == 2


# -- current_execution_id -----------------------------------------------------------------


@checkpoint
def my_execution_id() -> str | None:
    return kitaru.current_execution_id()


@flow
def ids_flow() -> dict:
    return {"body": kitaru.current_execution_id(), "checkpoint": my_execution_id().load()}


def test_current_execution_id_in_body_and_checkpoint_none_outside():
    assert kitaru.current_execution_id() is None
    handle = ids_flow.run()
    assert handle.wait() == {"body": handle.exec_id, "checkpoint": handle.exec_id}
    assert kitaru.current_execution_id() is None
    assert my_execution_id() is None


# -- kitaru.configure process defaults ------------------------------------------------------


@checkpoint(retry_delay=0.01)
def default_retries_step() -> str:
    calls["default_retries_step"] += 1
    if calls["default_retries_step"] < 3:
        raise TimeoutError("try again")
    return "ok"


@checkpoint(retries=0, retry_delay=0.01)
def no_retries_step() -> str:
    calls["no_retries_step"] += 1
    raise TimeoutError("never retried")


@checkpoint(cache=False)
def never_cached(x: int) -> int:
    calls["never_cached"] += 1
    return x


@checkpoint
def default_cached(x: int) -> int:
    calls["default_cached"] += 1
    return x


@flow
def default_retries_flow() -> str:
    return default_retries_step().load()


@flow
def explicit_no_retries_flow() -> str:
    return no_retries_step().load()


@flow
def configured_cache_flow(x: int) -> int:
    return default_cached(x).load() + never_cached(x).load()


@flow(retries=0)
def pinned_no_retries_flow() -> str:
    return no_retries_step().load()


def test_configure_retries_are_the_flows_retries_and_the_decorator_wins():
    # As in Kitaru 0.21, `configure(retries=)` is the flow-level retry count: the whole
    # body runs again, so even a checkpoint without retries of its own is called again.
    kitaru.configure(retries=2)
    assert default_retries_flow.run().wait() == "ok"
    assert calls["default_retries_step"] == 3
    with pytest.raises(FlowFailedError, match="never retried"):
        explicit_no_retries_flow.run().wait()
    assert calls["no_retries_step"] == 3
    calls.clear()
    with pytest.raises(FlowFailedError, match="never retried"):
        pinned_no_retries_flow.run().wait()  # `@flow(retries=0)` is more specific
    assert calls["no_retries_step"] == 1


def test_configure_cache_is_the_runs_cache_and_explicit_false_checkpoints_stay_uncached():
    kitaru.configure(cache=True)
    assert configured_cache_flow.run(5).wait() == 10
    assert configured_cache_flow.run(5).wait() == 10
    assert calls["default_cached"] == 1
    assert calls["never_cached"] == 2


def test_configure_without_arguments_changes_nothing():
    kitaru.configure(retries=1)
    settings = kitaru.configure()
    assert settings.retries == 1 and settings.cache is None and settings.stack is None


@flow(stack="local")
def pinned_to_local() -> int:
    return add(1, 1).load()


def _register_alt_stack(home: Path) -> None:
    stack_file = home.parent / "alt.yaml"
    stack_file.write_text(
        "name: alt\n"
        "registry: {flavor: sqlite, config: {path: '${home}/alt.db'}}\n"
        "artifact_store: {flavor: local, config: {root: '${home}/alt-artifacts'}}\n"
    )
    StackStore(home).register(stack_file)


def test_configure_stack_picks_the_stack_and_flow_option_wins(kitaru_home):
    _register_alt_stack(kitaru_home)
    kitaru.configure(stack="alt")
    on_alt = bare_flow.run(1)
    assert on_alt.wait() == 2
    on_local = pinned_to_local.run()
    assert on_local.wait() == 2
    alt = kitaru.KitaruClient(stack="alt").executions
    local = kitaru.KitaruClient(stack="local").executions
    assert [e.exec_id for e in alt.list()] == [on_alt.exec_id]
    assert alt.get(on_alt.exec_id).stack_name == "alt"
    assert [e.exec_id for e in local.list()] == [on_local.exec_id]
    # `run(stack=...)` is the most specific of all.
    explicit = bare_flow.run(2, stack="local")
    assert explicit.wait() == 3
    assert local.latest().exec_id == explicit.exec_id
    assert (kitaru_home / "alt.db").exists()


# Two checkpoints that share a name but not a source are different cache entries.
@checkpoint(name="shared_name", cache=True)
def shared_name_v1(x: int) -> str:
    calls["shared_name_v1"] += 1
    return f"v1:{x}"


@checkpoint(name="shared_name", cache=True)
def shared_name_v2(x: int) -> str:
    calls["shared_name_v2"] += 1
    return f"v2:{x}"


@flow
def shared_v1_flow(x: int) -> str:
    return shared_name_v1(x).load()


@flow
def shared_v2_flow(x: int) -> str:
    return shared_name_v2(x).load()


def test_cache_key_includes_the_checkpoint_source():
    assert shared_v1_flow.run(1).wait() == "v1:1"
    assert shared_v2_flow.run(1).wait() == "v2:1"
    assert shared_v1_flow.run(1).wait() == "v1:1"
    assert calls["shared_name_v1"] == 1
    assert calls["shared_name_v2"] == 1


@checkpoint
def boom(i: int) -> int:
    if i == 1:
        raise ValueError(f"item {i} is bad")
    if i == 2:
        # Still running when the body fails: the runner must wait for it before
        # recording the failure, so no call is left `running` in a failed execution.
        _gate.wait(timeout=0.3)
    return i


@flow
def one_submitted_call_fails() -> list[int]:
    handles = boom.map(range(3))
    return [h.load() for h in handles]


def test_a_failing_submitted_call_fails_the_execution_and_names_the_call(client):
    handle = one_submitted_call_fails.run()
    with pytest.raises(FlowFailedError, match=r"boom#2.*item 1 is bad"):
        handle.wait()
    statuses = {c.call_id: c.status for c in client.executions.get(handle.exec_id).checkpoints}
    assert statuses == {"boom#1": "completed", "boom#2": "failed", "boom#3": "completed"}


@flow
def duplicate_ids_flow() -> list[int]:
    return [add.with_id("same")(1, 1).load(), add.with_id("same")(10, 10).load()]


@flow
def explicit_id_like_an_automatic_one() -> list[int]:
    return [add.with_id("add#1")(1, 1).load(), add(10, 10).load()]


@pytest.mark.parametrize("the_flow", [duplicate_ids_flow, explicit_id_like_an_automatic_one])
def test_a_call_id_used_twice_in_one_run_is_an_error_not_silent_reuse(the_flow, client):
    handle = the_flow.run()
    with pytest.raises(FlowFailedError, match="used twice"):
        handle.wait()
    assert calls["add"] == 1
    execution = client.executions.get(handle.exec_id)
    assert [c.output.load() for c in execution.checkpoints] == [2]


@flow
def returns_handles() -> dict:
    return {"single": add(1, 2), "nested": [add(3, 4), {"deep": add(5, 6)}]}


def test_handles_returned_from_the_body_become_their_values():
    assert returns_handles.run().wait() == {"single": 3, "nested": [7, {"deep": 11}]}
