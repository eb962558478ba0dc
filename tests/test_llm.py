"""`kitaru.llm`: model aliases, where calls are recorded, replay without calling the model,
usage totals, credentials never recorded, and the guard against real provider calls.

Every model here is Pydantic AI's FunctionModel or TestModel; a real provider model is
only built to show that the test guard refuses to send its request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import kitaru
from kitaru import checkpoint, flow, llm
from kitaru import models as model_aliases
from kitaru.client import ExecutionStatus
from kitaru.errors import (
    ConfigError,
    FlowFailedError,
    InvalidPromptError,
    ModelUnavailableError,
    UnknownModelError,
)

# -- a counted FunctionModel that shows what it was sent ----------------------------------------

seen: list[dict[str, Any]] = []


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Answers "<n>: <last user text>" and remembers what the request carried."""
    last = messages[-1]
    assert isinstance(last, ModelRequest)
    text = last.parts[-1].content
    seen.append({"messages": messages, "instructions": info.instructions,
                 "settings": info.model_settings})
    return ModelResponse(parts=[TextPart(f"{len(seen)}: {text}")],
                         usage=RequestUsage(input_tokens=10 * len(seen), output_tokens=3))


echo = FunctionModel(answer, model_name="echo")


@pytest.fixture(autouse=True)
def fresh_model():
    seen.clear()
    fail_after_llm["on"] = False


# -- in a flow body: each call is its own checkpoint ---------------------------------------------


@flow
def interview(topic: str) -> str:
    first = llm(f"question about {topic}", model=echo)
    second = llm(f"follow-up to {first}", model=echo, name="follow_up")
    return second


def test_each_call_in_a_flow_is_a_checkpoint_with_prompt_response_and_usage(client):
    handle = interview.run("agents")
    assert handle.wait() == "2: follow-up to 1: question about agents"
    execution = client.executions.get(handle.exec_id)
    first, second = execution.checkpoints
    assert (first.call_id, first.type, second.call_id, second.type) == (
        "llm_call#1", "llm_call", "follow_up#1", "llm_call")
    saved = {a.name: a.load() for a in first.artifacts if a.direction == "saved"}
    assert saved == {"prompt": [{"role": "user", "content": "question about agents"}]}
    assert first.output.load() == "1: question about agents"  # the response is the output
    usage = first.metadata["llm_usage"]
    assert (usage["model"], usage["input_tokens"], usage["output_tokens"]) == ("echo", 10, 3)
    assert usage["latency_s"] >= 0 and usage["cost_usd"] is None  # no price for a test model
    assert first.metadata["model"] == "function:echo"
    assert first.usage == {"model_calls": 1, "input_tokens": 10, "output_tokens": 3,
                           "cost_usd": None}
    assert execution.usage == {"model_calls": 2, "input_tokens": 30, "output_tokens": 6,
                               "cost_usd": None}
    assert kitaru.load(handle.exec_id, "follow_up") == "2: follow-up to 1: question about agents"


def test_executions_get_shows_the_usage_totals(client, cli):
    handle = interview.run("agents")
    handle.wait()
    data = cli("executions", "get", handle.exec_id, "-o", "json").json()
    assert data["usage"] == {"model_calls": 2, "input_tokens": 30, "output_tokens": 6,
                             "cost_usd": None}
    assert [c["usage"]["model_calls"] for c in data["checkpoints"]] == [1, 1]
    text = cli("executions", "get", handle.exec_id).stdout
    assert "model use 2 model calls, 30 in / 6 out tokens, cost unknown" in text
    listed = cli("executions", "list", "-o", "json").json()
    assert "usage" not in listed[0]  # a list has no per-call details to sum


fail_after_llm = {"on": False}


@flow
def draft_then_check(topic: str) -> str:
    draft = llm(f"draft on {topic}", model=echo)
    if fail_after_llm["on"]:
        raise RuntimeError("the check failed")
    return llm(f"check {draft}", model=echo)


def test_a_retry_returns_recorded_responses_without_calling_the_model(client):
    fail_after_llm["on"] = True
    handle = draft_then_check.run("durability")
    with pytest.raises(FlowFailedError):
        handle.wait()
    assert len(seen) == 1
    fail_after_llm["on"] = False
    execution = client.executions.retry(handle.exec_id, background=False)
    assert execution.status is ExecutionStatus.COMPLETED
    assert len(seen) == 2  # only the second call reached the model
    assert kitaru.load(handle.exec_id, "output") == "2: check 1: draft on durability"


def test_a_replay_calls_the_model_only_from_the_replayed_call_on(client):
    original = draft_then_check.run("replay")
    original.wait()
    assert len(seen) == 2
    replay = draft_then_check.replay(original.exec_id, at="llm_call#2")
    assert replay.wait() == "3: check 1: draft on replay"
    assert len(seen) == 3
    overridden = draft_then_check.replay(
        original.exec_id, at="llm_call#2", checkpoint_overrides={"llm_call#1": {"output": "edited draft"}})
    assert overridden.wait() == "4: check edited draft"


# -- inside a checkpoint: a child event of that checkpoint ----------------------------------------


@checkpoint
def summarize(text: str) -> str:
    short = llm(f"summarize {text}", model=echo, name="summary")
    return short.upper()


@flow
def report(text: str) -> str:
    return summarize(text).load()


def test_a_call_inside_a_checkpoint_is_a_child_event_not_a_checkpoint(client, cli):
    handle = report.run("the news")
    assert handle.wait() == "1: SUMMARIZE THE NEWS"
    execution = client.executions.get(handle.exec_id)
    assert [c.call_id for c in execution.checkpoints] == ["summarize#1"]
    call = execution.checkpoints[0]
    event = call.events["summary#1"]
    assert (event["kind"], event["model"], event["usage"]["input_tokens"]) == (
        "llm_call", "function:echo", 10)
    parts = {a.name: a.load() for a in call.artifacts if a.direction == "saved"}
    assert parts == {"summary#1.prompt": [{"role": "user", "content": "summarize the news"}],
                     "summary#1.response": "1: summarize the news"}
    assert call.usage["model_calls"] == 1 and execution.usage["model_calls"] == 1
    text = cli("executions", "get", handle.exec_id).stdout
    assert "events inside checkpoints" in text and "summary#1" in text


def test_outside_a_flow_a_call_is_just_a_model_call(client):
    assert llm("hello", model=echo) == "1: hello"
    assert client.executions.list() == []
    assert llm("hello", model="test") == "success (no tool calls)"  # Pydantic AI's TestModel


# -- what reaches the model --------------------------------------------------------------------


def test_system_temperature_and_max_tokens_reach_the_model():
    llm("hi", model=echo, system="Be terse.", temperature=0.2, max_tokens=50)
    assert seen[0]["instructions"] == "Be terse."
    assert seen[0]["settings"] == {"temperature": 0.2, "max_tokens": 50}
    llm("hi", model=echo)
    assert seen[1]["instructions"] is None and seen[1]["settings"] is None


@flow
def chat(history: list) -> str:
    return llm(history, model=echo, system="You are kind.")


def test_a_list_of_chat_messages_is_sent_as_a_conversation(client):
    history = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "How are you?"},
    ]
    handle = chat.run(history)
    assert handle.wait() == "1: How are you?"
    sent = seen[0]["messages"]
    assert [type(m).__name__ for m in sent] == ["ModelRequest", "ModelResponse", "ModelRequest"]
    assert [type(p).__name__ for p in sent[0].parts] == ["SystemPromptPart", "UserPromptPart"]
    assert sent[1].parts[0].content == "Bonjour"
    assert seen[0]["instructions"] == "You are kind."
    prompt = kitaru.load(handle.exec_id, "prompt")
    assert prompt == [{"role": "system", "content": "You are kind."}, *history]


@pytest.mark.parametrize("prompt, complaint", [
    ([], "non-empty list"),
    (42, "got int 42"),
    ([{"role": "user"}], 'exactly the keys "role" and "content"'),
    ([{"role": "robot", "content": "hi"}], "role 'robot'"),
    ([{"role": "user", "content": ["hi"]}], "content is a string"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
     "ends with the user message"),
])
def test_a_malformed_prompt_is_refused_with_what_is_wrong(prompt, complaint):
    with pytest.raises(InvalidPromptError, match=complaint):
        llm(prompt, model=echo)
    assert seen == []


@pytest.mark.parametrize("option, value", [("temperature", "hot"), ("max_tokens", 0)])
def test_bad_settings_are_refused(option, value):
    with pytest.raises(ConfigError, match=option):
        llm("hi", model=echo, **{option: value})


# -- aliases and the default model ---------------------------------------------------------------


def test_an_alias_names_a_model_string():
    model_aliases.register("fast", "openai/gpt-5-mini")  # provider/name is read as provider:name
    model_aliases.register("offline", "test")
    assert model_aliases.resolve("fast") == "openai:gpt-5-mini"
    assert model_aliases.resolve("Fast") == "openai:gpt-5-mini"  # aliases ignore case
    assert model_aliases.resolve("anthropic:claude-sonnet-4-5") == "anthropic:claude-sonnet-4-5"
    assert model_aliases.resolve(echo) is echo
    assert llm("hi", model="offline") == "success (no tool calls)"


def test_an_unknown_alias_lists_the_registered_ones():
    model_aliases.register("fast", "openai:gpt-5-mini")
    with pytest.raises(UnknownModelError) as raised:
        llm("hi", model="fats")
    message = str(raised.value)
    assert "unknown model 'fats'" in message
    assert "Registered aliases: fast (openai:gpt-5-mini)" in message
    assert "kitaru model register fats --model" in message


@flow
def ask_unknown() -> str:
    return llm("hi", model="nobody")


def test_an_unknown_model_fails_before_anything_is_recorded(client):
    handle = ask_unknown.run()
    with pytest.raises(FlowFailedError, match="unknown model 'nobody'"):
        handle.wait()
    assert client.executions.get(handle.exec_id).checkpoints == []


def test_aliases_from_the_environment_win_over_the_file(monkeypatch):
    model_aliases.register("smart", "openai:gpt-5")
    monkeypatch.setenv("KITARU_MODEL_SMART", "anthropic:claude-sonnet-4-5")
    monkeypatch.setenv("KITARU_MODEL_LOCAL", "test")
    assert model_aliases.resolve("smart") == "anthropic:claude-sonnet-4-5"
    assert llm("hi", model="local") == "success (no tool calls)"
    listed = {a.alias: (a.model, a.source) for a in model_aliases.list()}
    assert listed == {"smart": ("anthropic:claude-sonnet-4-5", "env"), "local": ("test", "env")}


def test_a_bad_model_string_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("KITARU_MODEL_BROKEN", "gpt5")
    with pytest.raises(ConfigError, match="KITARU_MODEL_BROKEN='gpt5'"):
        model_aliases.resolve("anything")


def test_the_default_model_is_the_registered_default_unless_the_environment_sets_one(monkeypatch):
    with pytest.raises(UnknownModelError, match=r"no default model is set.*KITARU_DEFAULT_MODEL"):
        llm("hi")
    model_aliases.register("offline", "test", default=True)
    assert model_aliases.resolve(None) == "test"
    assert llm("hi") == "success (no tool calls)"
    monkeypatch.setenv("KITARU_DEFAULT_MODEL", "openai:gpt-5-mini")
    assert model_aliases.resolve(None) == "openai:gpt-5-mini"
    monkeypatch.setenv("KITARU_DEFAULT_MODEL", "offline")  # an alias works too
    assert model_aliases.resolve(None) == "test"


def test_removing_the_default_alias_leaves_no_default():
    model_aliases.register("offline", "test", default=True)
    removed = model_aliases.remove("offline")
    assert removed.default is True
    assert model_aliases.default_model() is None


@pytest.mark.parametrize("alias", ["openai:gpt", "a/b", "", "test", "-x"])
def test_alias_names_are_checked(alias):
    with pytest.raises(ConfigError):
        model_aliases.register(alias, "openai:gpt-5-mini")


# -- provider setup problems -----------------------------------------------------------------------


@flow
def ask_openai() -> str:
    return llm("hi", model="openai:gpt-5-mini")


def test_a_missing_api_key_names_the_variable(client, monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelUnavailableError, match="set the OPENAI_API_KEY environment variable"):
        llm("hi", model="openai:gpt-5-mini")  # outside a flow: before anything else
    # In a flow the model is built in the call (so that a recorded call needs no key): the
    # call fails, recorded with the same message, and a retry with the key set runs it.
    handle = ask_openai.run()
    with pytest.raises(FlowFailedError, match="set the OPENAI_API_KEY environment variable"):
        handle.wait()
    (call,) = client.executions.get(handle.exec_id).checkpoints
    assert (call.call_id, call.type, call.status) == ("llm_call#1", "llm_call", "failed")


@flow
def ask_twice_then_fail(fail: bool) -> str:
    first = llm("one", model="openai:gpt-5-mini")
    second = llm("two", model="openai:gpt-5-mini")
    if fail:
        raise RuntimeError("after the model calls")
    return f"{first} | {second}"


def test_a_recorded_call_needs_no_credentials_on_retry_or_replay(client, monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-kitaru-test-not-a-real-key")
    import pydantic_ai.models.openai as openai_models

    async def answer(self, messages, model_settings, params):  # a recorded answer, no network
        return ModelResponse(parts=[TextPart(f"answer {len(messages)}")], model_name="gpt-5-mini")

    monkeypatch.setattr(openai_models.OpenAIResponsesModel, "request", answer)
    handle = ask_twice_then_fail.run(True)
    with pytest.raises(FlowFailedError, match="after the model calls"):
        handle.wait()

    monkeypatch.delenv("OPENAI_API_KEY")  # another machine, without the key
    monkeypatch.setattr(openai_models.OpenAIResponsesModel, "request", None)  # and no model
    replayed = ask_twice_then_fail.replay(handle.exec_id, at="llm_call#2",
                                          checkpoint_overrides={"llm_call#2": {"output": "fixed"}},
                                          flow_overrides={"fail": False})
    assert replayed.wait() == "answer 1 | fixed"


def test_a_missing_provider_package_says_what_to_install():
    try:
        import anthropic  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the anthropic SDK is installed here")
    with pytest.raises(ModelUnavailableError, match=r'pip install "pydantic-ai-slim\[anthropic\]"'):
        llm("hi", model="anthropic:claude-sonnet-4-5")


def test_a_provider_pydantic_ai_does_not_know_is_an_unknown_model():
    with pytest.raises(UnknownModelError, match="does not know model 'nonsense:foo'"):
        llm("hi", model="nonsense:foo")


# -- the test guard: a real provider is never called from the test suite -------------------------


def test_the_guard_refuses_a_real_provider_request_and_the_call_is_recorded_failed(client,
                                                                                   monkeypatch):
    pytest.importorskip("openai")
    from pydantic_ai import models

    assert models.ALLOW_MODEL_REQUESTS is False  # set by conftest for every test
    monkeypatch.setenv("OPENAI_API_KEY", "sk-kitaru-test-not-a-real-key")
    with pytest.raises(RuntimeError, match="Model requests are not allowed"):
        llm("hi", model="openai:gpt-5-mini")  # built fine (no network), refused before sending
    handle = ask_openai.run()
    with pytest.raises(FlowFailedError, match="Model requests are not allowed"):
        handle.wait()
    (call,) = client.executions.get(handle.exec_id).checkpoints
    assert (call.call_id, call.type, call.status) == ("llm_call#1", "llm_call", "failed")
    assert "Model requests are not allowed" in call.error["message"]


# -- credentials are never recorded ------------------------------------------------------------------

SECRET = "sk-kitaru-test-secret-5f0c2a9d"


@checkpoint
def with_inner_call(topic: str) -> str:
    return llm(f"inside {topic}", model=echo)


@flow
def secret_free(topic: str) -> str:
    outer = llm(f"outside {topic}", model="fast")
    return outer + with_inner_call(topic).load()


def test_no_api_key_reaches_a_record_an_artifact_or_a_log(client, cli, monkeypatch,
                                                          kitaru_home: Path):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("KITARU_MODEL_FAST", "test")
    assert cli("model", "register", "smart", "--model", "openai:gpt-5-mini", "--default").exit_code == 0
    assert cli("model", "list").exit_code == 0
    handle = secret_free.run("keys")
    handle.wait()
    if _has_openai():
        failed = ask_openai.run()  # builds the OpenAI model with the key, refused by the guard
        with pytest.raises(FlowFailedError):
            failed.wait()
    cli("executions", "get", handle.exec_id, "-o", "json")
    files = [p for p in kitaru_home.rglob("*") if p.is_file()]
    assert any(p.name == "kitaru.db" for p in files)
    leaked = [str(p) for p in files if SECRET.encode() in p.read_bytes()]
    assert leaked == []


def _has_openai() -> bool:
    try:
        import openai  # noqa: F401
    except ImportError:
        return False
    return True


# -- cost estimates ---------------------------------------------------------------------------------


def test_usage_of_a_priced_model_estimates_its_cost():
    from pydantic_ai.direct import model_request_sync

    from kitaru.model_calls import usage_of

    def priced(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("ok")], provider_name="openai",
                             usage=RequestUsage(input_tokens=1000, output_tokens=200))

    response = model_request_sync(FunctionModel(priced, model_name="gpt-5-mini"),
                                  [ModelRequest.user_text_prompt("x")])
    usage = usage_of(response, 0.25)
    assert (usage["model"], usage["provider"]) == ("gpt-5-mini", "openai")
    assert (usage["input_tokens"], usage["output_tokens"], usage["latency_s"]) == (1000, 200, 0.25)
    assert usage["cost_usd"] is not None and usage["cost_usd"] > 0


# -- the command line -----------------------------------------------------------------------------


def test_model_register_list_and_remove(cli, monkeypatch):
    registered = cli("model", "register", "fast", "--model", "openai:gpt-5-mini", "--default",
                     "-o", "json")
    assert registered.exit_code == 0
    assert registered.json() == {"registered": {"alias": "fast", "model": "openai:gpt-5-mini",
                                                "source": "file", "default": True, "secret": None}}
    assert cli("model", "register", "smart", "--model", "anthropic/claude-sonnet-4-5").exit_code == 0
    monkeypatch.setenv("KITARU_MODEL_LOCAL", "test")
    listed = cli("model", "list", "-o", "json").json()
    assert listed["default"] == {"name": "fast", "source": "file", "model": "openai:gpt-5-mini"}
    assert [(a["alias"], a["model"], a["source"], a["default"]) for a in listed["aliases"]] == [
        ("fast", "openai:gpt-5-mini", "file", True),
        ("local", "test", "env", False),
        ("smart", "anthropic:claude-sonnet-4-5", "file", False),
    ]
    table = cli("model", "list").stdout
    assert "fast" in table and "env KITARU_MODEL_LOCAL" in table
    removed = cli("model", "remove", "fast", "-o", "json")
    assert removed.json() == {"removed": {"alias": "fast", "model": "openai:gpt-5-mini",
                                          "source": "file", "default": True, "secret": None}}
    assert cli("model", "list", "-o", "json").json()["default"] is None


def test_model_command_errors_exit_non_zero_and_say_why(cli, monkeypatch):
    cli("model", "register", "fast", "--model", "openai:gpt-5-mini")
    missing = cli("model", "remove", "nope")
    assert missing.exit_code != 0
    assert "no model alias 'nope'" in missing.stderr and "fast (openai:gpt-5-mini)" in missing.stderr
    bad = cli("model", "register", "broken", "--model", "gpt5")
    assert bad.exit_code != 0 and "provider:name" in bad.stderr
    monkeypatch.setenv("KITARU_MODEL_LOCAL", "test")
    from_env = cli("model", "remove", "local")
    assert from_env.exit_code != 0 and "unset the variable" in from_env.stderr


def test_kitaru_model_list_with_a_default_from_the_environment(cli, monkeypatch):
    monkeypatch.setenv("KITARU_DEFAULT_MODEL", "openai:gpt-5-mini")
    out = cli("model", "list")
    assert out.exit_code == 0
    assert "default model: openai:gpt-5-mini (from KITARU_DEFAULT_MODEL)" in out.stdout


# -- the import surface -----------------------------------------------------------------------------


def test_kitaru_llm_is_the_function_and_importing_kitaru_loads_no_llm_library():
    code = (
        "import sys, kitaru\n"
        "before = 'pydantic_ai' in sys.modules\n"
        "import kitaru.llm as module_first\n"  # the submodule imported before the attribute is read
        "print(json.dumps([before, callable(kitaru.llm), kitaru.llm('hi', model='test')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True,
                         text=True, check=True, env={**os.environ})
    assert json.loads(out.stdout) == [False, True, "success (no tool calls)"]
    assert callable(kitaru.llm) and kitaru.llm.__name__ == "llm"


def test_the_cli_model_commands_run_in_a_process():
    out = run_cli("model", "register", "fast", "--model", "test", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["registered"]["model"] == "test"
