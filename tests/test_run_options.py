"""Run options as in Kitaru 0.21: `@flow(cache=, retries=, stack=, image=)`,
`.run(..., cache=, retries=, stack=, image=)`, `kitaru.configure(...)` and `KITARU_*`,
resolved most specific first and frozen into the execution."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import kitaru
from kitaru import checkpoint, flow
from kitaru.errors import ConfigError, FlowFailedError, FlowInputError
from kitaru.settings import ImageSettings

#: How many times each function body really ran (reset before every test).
runs: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    runs.clear()


# -- retries: the whole body again, completed checkpoints reused -----------------------------------


@checkpoint
def fetch(topic: str) -> str:
    runs["fetch"] += 1
    return f"notes on {topic}"


@checkpoint
def flaky(notes: str) -> str:
    runs["flaky"] += 1
    if runs["flaky"] < 3:
        raise ConnectionError(f"flaky failure {runs['flaky']}")
    return notes.upper()


@flow(retries=2)
def research(topic: str) -> str:
    runs["body"] += 1
    return flaky(fetch(topic)).load()


def test_flow_retries_run_the_body_again_and_reuse_completed_checkpoints(client):
    handle = research.run("agents")
    assert handle.wait() == "NOTES ON AGENTS"
    assert runs == {"body": 3, "fetch": 1, "flaky": 3}
    logs = "".join(e.text for e in client.executions.logs(handle.exec_id) if e.call_id is None)
    assert "flow retry 1 of 2" in logs and "flow retry 2 of 2" in logs
    assert client.executions.get(handle.exec_id).options == {"retries": 2}


def test_retries_exhausted_fail_the_execution():
    with pytest.raises(FlowFailedError, match="flaky failure 2"):
        research.run("agents", retries=1).wait()
    assert runs["body"] == 2 and runs["fetch"] == 1


@flow
def always_fails() -> None:
    runs["always_fails"] += 1
    raise RuntimeError("no luck")


@flow(retries=1)
def always_fails_once_retried() -> None:
    runs["always_fails"] += 1
    raise RuntimeError("no luck")


@flow(retries=0)
def always_fails_never_retried() -> None:
    runs["always_fails"] += 1
    raise RuntimeError("no luck")


def _attempts(target: kitaru.Flow, **options: object) -> int:
    runs.clear()
    with pytest.raises(FlowFailedError, match="no luck"):
        target.run(**options).wait()
    return runs["always_fails"]


def test_retries_precedence_run_then_flow_then_configure_then_env_then_default(monkeypatch):
    assert _attempts(always_fails) == 1  # default: no retries
    monkeypatch.setenv("KITARU_RETRIES", "1")
    assert _attempts(always_fails) == 2
    kitaru.configure(retries=2)
    assert _attempts(always_fails) == 3  # configure beats the environment
    assert _attempts(always_fails_once_retried) == 2  # the decorator beats configure
    assert _attempts(always_fails_never_retried) == 1  # an explicit 0 too
    assert _attempts(always_fails_never_retried, retries=3) == 4  # `.run()` beats them all


def test_a_retry_of_the_execution_keeps_the_options_it_ran_with(client):
    first = always_fails.run(retries=1)
    with pytest.raises(FlowFailedError):
        first.wait()
    assert runs["always_fails"] == 2
    kitaru.configure(retries=3)  # a later default does not change a recorded execution
    client.executions.retry(first.exec_id, background=False)
    assert runs["always_fails"] == 4
    assert client.executions.get(first.exec_id).options == {"retries": 1}


# -- cache: the run's setting for its checkpoints --------------------------------------------------


@checkpoint
def unset(x: int) -> int:
    runs["unset"] += 1
    return x


@checkpoint(cache=True)
def cached(x: int) -> int:
    runs["cached"] += 1
    return x


@checkpoint(cache=False)
def side_effect(x: int) -> int:
    runs["side_effect"] += 1
    return x


@flow
def mixed(x: int) -> int:
    return unset(x).load() + cached(x).load() + side_effect(x).load()


@flow(cache=False)
def fresh(x: int) -> int:
    return unset(x).load() + cached(x).load() + side_effect(x).load()


def _twice(target: kitaru.Flow, x: int = 7, **options: object) -> dict[str, int]:
    """How often each checkpoint ran in two runs with the same input `x`."""
    runs.clear()
    assert target.run(x, **options).wait() == 3 * x
    assert target.run(x, **options).wait() == 3 * x
    return dict(runs)


def test_unset_cache_leaves_each_checkpoint_its_own_setting():
    assert _twice(mixed) == {"unset": 2, "cached": 1, "side_effect": 2}


def test_run_cache_true_caches_checkpoints_that_do_not_refuse_it():
    assert _twice(mixed, cache=True) == {"unset": 1, "cached": 1, "side_effect": 2}


def test_run_cache_false_runs_every_checkpoint_fresh():
    mixed.run(7).wait()  # fills the cache of `cached`
    assert _twice(mixed, cache=False) == {"unset": 2, "cached": 2, "side_effect": 2}


def test_cache_precedence_run_then_flow_then_configure_then_env(monkeypatch):
    # Each step uses its own input, so no step finds what an earlier one cached.
    monkeypatch.setenv("KITARU_CACHE", "true")
    assert _twice(mixed, 1)["unset"] == 1
    kitaru.configure(cache=False)  # configure beats the environment
    assert _twice(mixed, 2)["cached"] == 2
    kitaru.configure(cache=True)
    assert _twice(fresh, 3)["cached"] == 2  # the decorator beats configure
    assert _twice(fresh, 4, cache=True)["unset"] == 1  # `.run()` beats the decorator


@flow
def counts_memory() -> int:
    value = kitaru.memory.get("n", default=0)
    kitaru.memory.set("n", value + 1)
    return value


def test_run_cache_true_never_reuses_memory_reads():
    assert counts_memory.run(cache=True).wait() == 0
    assert counts_memory.run(cache=True).wait() == 1


# -- image: merged across layers, recorded with the execution --------------------------------------


@flow(image={"base_image": "python:3.12-slim", "environment": {"MODE": "flow"}})
def imaged(x: int) -> int:
    return unset(x).load()


def test_image_is_merged_field_by_field_and_recorded(client, monkeypatch):
    monkeypatch.setenv("KITARU_IMAGE", '{"apt_packages": ["git"], "environment": {"FROM_ENV": "1"}}')
    kitaru.configure(image=ImageSettings(requirements=["httpx"], environment={"MODE": "configure"}))
    handle = imaged.run(1, image=ImageSettings(environment={"RUN": "yes"}, user="agent"))
    assert handle.wait() == 1
    assert client.executions.get(handle.exec_id).options == {"image": {
        "base_image": "python:3.12-slim", "requirements": ["httpx"], "apt_packages": ["git"],
        "environment": {"FROM_ENV": "1", "MODE": "flow", "RUN": "yes"}, "user": "agent",
    }}


def test_an_image_string_is_a_base_image(client):
    handle = imaged.run(1, image="acme/agents:1.4")
    handle.wait()
    assert client.executions.get(handle.exec_id).options["image"]["base_image"] == "acme/agents:1.4"


# -- a flow's own parameters named like an option --------------------------------------------------


@flow
def named_like_options(topic: str, cache: bool = False, retries: int = 0) -> str:
    return f"{topic}:{cache}:{retries}"


@flow
def needs_retries(retries: int) -> int:
    return retries


def test_option_keywords_go_to_the_run_and_positional_arguments_to_the_flow(client):
    as_option = named_like_options.run("t", cache=True, retries=1)
    assert as_option.wait() == "t:False:0"
    assert client.executions.get(as_option.exec_id).options == {"cache": True, "retries": 1}
    as_inputs = named_like_options.run("t", True, 2)
    assert as_inputs.wait() == "t:True:2"
    assert client.executions.get(as_inputs.exec_id).options == {}


def test_a_required_parameter_named_like_an_option_is_explained(client):
    with pytest.raises(FlowInputError, match=r"`.run\(retries=...\)` sets the run's retries option"):
        needs_retries.run(retries=3)
    assert needs_retries.run(3).wait() == 3
    with pytest.raises(FlowInputError, match="unexpected keyword argument 'topik'"):
        named_like_options.run("t", topik="x")
    assert len(client.executions.list()) == 1  # refused inputs record nothing


def test_bad_option_values_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match=r"run\(retries=-1\)"):
        mixed.run(1, retries=-1)
    with pytest.raises(ConfigError, match=r"run\(cache='yes'\)"):
        mixed.run(1, cache="yes")
    with pytest.raises(ConfigError, match="unknown image field 'bogus'"):
        mixed.run(1, image={"bogus": 1})
    with pytest.raises(ConfigError, match=r"@flow\(retries=True\)"):
        flow(retries=True)(lambda: None)
    with pytest.raises(ConfigError, match="environment"):
        ImageSettings(environment=["A=1"])
    monkeypatch.setenv("KITARU_CACHE", "maybe")
    with pytest.raises(ConfigError, match="KITARU_CACHE='maybe'"):
        mixed.run(1)


def test_replay_takes_its_own_options_and_the_cli_replay_the_originals(client):
    original = research.run("agents", retries=3)
    original.wait()
    runs.clear()
    replayed = research.replay(original.exec_id, at="flaky", cache=False)
    replayed.wait()
    assert client.executions.get(replayed.exec_id).options == {"retries": 2, "cache": False}
    again = client.executions.replay(original.exec_id, at="flaky", wait=True)
    assert client.executions.get(again.results[0].replay_exec_id).options == {"retries": 3}


def test_a_background_launch_hands_the_runs_image_to_the_orchestrator(client, monkeypatch):
    from kitaru_core.runtime import service

    handle = imaged.run(1, image="acme/agents:1.4")
    handle.wait()
    plain = mixed.run(1)
    plain.wait()
    stack = client._stack
    launched: dict[str, dict[str, str]] = {}
    monkeypatch.setattr(stack.orchestrator, "launch",
                        lambda exec_id, *, command, env, cwd: launched.setdefault(exec_id, env))
    for exec_id in (handle.exec_id, plain.exec_id):
        service.launch(stack.registry.get_execution(exec_id), stack, "resume")
    image = json.loads(launched[handle.exec_id][service.RUN_IMAGE_ENV])
    assert image == {"base_image": "acme/agents:1.4", "environment": {"MODE": "flow"}}
    assert service.RUN_IMAGE_ENV not in launched[plain.exec_id]
