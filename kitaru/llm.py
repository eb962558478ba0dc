"""`kitaru.llm`: one model call, recorded where it is made.

    answer = kitaru.llm("Summarize this", model="fast")        # an alias
    answer = kitaru.llm([{"role": "user", "content": "Hi"}], model="openai:gpt-5-mini",
                        system="Be terse.", temperature=0.2, max_tokens=200)

The call goes through Pydantic AI's model layer, so every provider it supports
works. Where it is recorded depends on where it runs:

- in a flow body: the call is a checkpoint of its own (`llm_call#n`, type
  `llm_call`; `name=` renames it). A resume or a replay returns the recorded
  response without calling the model again.
- inside a `@checkpoint`: checkpoints do not nest, so it is a child event of
  that checkpoint (`event:llm_call#n` in its metadata).
- outside any flow: a plain model call, not recorded.

A recorded call stores the prompt (artifact `prompt`: the chat messages, with
`system=` first as a system message) and the response text (the checkpoint's
output, or the event's `response` artifact), and its tokens, latency and
estimated cost as metadata (see `kitaru.usage`). The model is built before
anything is recorded, so an unknown alias, a missing provider package or a
missing API key fail first. Credentials are read by the provider from its usual
environment variables; an alias registered with `--secret NAME` adds that secret's
keys (`OPENAI_API_KEY`, ...) for the ones the environment does not set, resolved in
the process that makes the call, only while the model is built. kitaru never
records them.

Pydantic AI is imported when `llm()` is first called, not with `kitaru`.
"""

from __future__ import annotations

import functools
import re
import sys
import time
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kitaru_core.errors import ConfigError, InvalidPromptError, ModelUnavailableError, UnknownModelError
from kitaru_core.runtime.state import where

from . import models

if TYPE_CHECKING:
    from pydantic_ai.models import Model
    from pydantic_ai.settings import ModelSettings

__all__ = ["LLM_CALL", "chat_messages", "llm"]

LLM_CALL = "llm_call"  # the checkpoint type, the event kind and the default name
ROLES = ("system", "user", "assistant")


def llm(
    prompt: str | list[dict[str, str]],
    *,
    model: str | Model | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    name: str | None = None,
) -> str:
    """Ask a model and return its text answer.

    `prompt` is a string (one user message) or a list of chat messages
    `{"role": "system" | "user" | "assistant", "content": str}` ending with a
    user message. `model` is an alias (`kitaru model register`), a Pydantic AI
    model string (`openai:gpt-5-mini`), a `pydantic_ai.models.Model` object, or
    None for the default model. `system` is sent as instructions; `temperature`
    and `max_tokens` as model settings. `name` names the checkpoint or event
    (default `llm_call`).
    """
    messages = chat_messages(prompt)
    settings = _model_settings(temperature, max_tokens)
    target, alias = models.resolve_with_alias(model)
    secret = models.secret_of(alias)
    recorded = ([{"role": "system", "content": system}] if system else []) + messages
    call_name = name or LLM_CALL
    scope = where()
    if scope == "flow" and isinstance(target, str):
        # An unknown provider or a missing SDK fails here, before anything is recorded. The
        # model itself (which reads the API key) is built in the call: a resume or replay
        # that finds the call recorded needs no credentials.
        _check_model_string(target)
        described = {"model": target, **({"alias": alias} if alias else {})}
        return _as_checkpoint(call_name, functools.partial(_build_model, target, secret), messages,
                              system, settings, recorded, described)
    built = _build_model(target, secret)  # before any record: unknown names, missing SDKs and keys fail here
    described = {"model": _label(target, built), **({"alias": alias} if alias else {})}
    if scope == "flow":
        return _as_checkpoint(call_name, lambda: built, messages, system, settings, recorded,
                              described)
    text, usage = _request(built, messages, system, settings)
    if scope == "checkpoint":
        from kitaru_core.runtime.events import record_child_event

        record_child_event(LLM_CALL, call_name, artifacts={"prompt": recorded, "response": text},
                           metadata={**described, "usage": usage})
    return text


def chat_messages(prompt: Any) -> list[dict[str, str]]:
    """The prompt as a validated list of `{"role", "content"}` chat messages (copies)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list | tuple) or not prompt:
        raise InvalidPromptError(
            f"kitaru.llm(prompt=...) expects a string or a non-empty list of chat messages "
            f'like {{"role": "user", "content": "..."}}, got {_what(prompt)}'
        )
    out = []
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
            raise InvalidPromptError(
                f"kitaru.llm: message {i} is {_what(message)}; each message is a dict with exactly "
                f'the keys "role" and "content"'
            )
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise InvalidPromptError(
                f"kitaru.llm: message {i} has role {role!r}; use one of {', '.join(ROLES)}"
            )
        if not isinstance(content, str):
            raise InvalidPromptError(
                f"kitaru.llm: message {i} ({role}) has content {_what(content)}; content is a string"
            )
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise InvalidPromptError(
            f"kitaru.llm: the last message is from the {out[-1]['role']}; a chat prompt ends with "
            "the user message the model should answer"
        )
    return out


# -- the call where it is made ------------------------------------------------------------


def _as_checkpoint(
    call_name: str,
    model: Callable[[], Model],
    messages: list[dict[str, str]],
    system: str | None,
    settings: ModelSettings | None,
    recorded: list[dict[str, str]],
    described: dict[str, Any],
) -> str:
    """The call as a checkpoint of the flow: the response text is its recorded output."""
    from .checkpoints import checkpoint
    from .primitives import log, save

    def llm_call() -> str:
        save("prompt", recorded)
        text, usage = _request(model(), messages, system, settings)
        log(llm_usage=usage, **described)
        return text

    # cache=False: the closure takes no inputs, so a cache key could not tell two prompts apart.
    step = checkpoint(llm_call, name=call_name, type=LLM_CALL, cache=False)
    return step().load()


def _request(
    model: Model, messages: list[dict[str, str]], system: str | None,
    settings: ModelSettings | None,
) -> tuple[str, dict[str, Any]]:
    """Send the request; the response text and its usage (kitaru.usage conventions)."""
    from pydantic_ai.direct import model_request

    from .model_calls import run_sync, usage_of

    request = _pydantic_messages(messages, system)
    started = time.perf_counter()
    response = run_sync(lambda: model_request(model, request, model_settings=settings))
    latency = time.perf_counter() - started
    return response.text or "", usage_of(response, latency)


def _pydantic_messages(messages: list[dict[str, str]], system: str | None) -> list[Any]:
    from pydantic_ai.messages import (
        ModelRequest,
        ModelResponse,
        SystemPromptPart,
        TextPart,
        UserPromptPart,
    )

    out: list[Any] = []
    parts: list[Any] = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "assistant":
            if parts:
                out.append(ModelRequest(parts=parts))
                parts = []
            out.append(ModelResponse(parts=[TextPart(content)]))
        else:
            parts.append(SystemPromptPart(content) if role == "system" else UserPromptPart(content))
    out.append(ModelRequest(parts=parts, instructions=system))
    return out


# -- the model and its settings -----------------------------------------------------------


def _build_model(target: Any, secret: str | None = None) -> Model:
    """A Pydantic AI model for a model string (or the `Model` object given), checked up front;
    `secret`: the alias's secret, whose keys the provider reads as its credentials."""
    try:
        from pydantic_ai.exceptions import UserError
        from pydantic_ai.models import Model, infer_model
    except ImportError as exc:
        raise ModelUnavailableError(
            'kitaru.llm needs Pydantic AI: pip install "kitaru[pydantic-ai]"'
        ) from exc
    if isinstance(target, Model):
        return target
    if not isinstance(target, str):
        raise UnknownModelError(
            f"kitaru.llm(model=...) expects an alias, a 'provider:name' string or a "
            f"pydantic_ai.models.Model, got {_what(target)}"
        )
    provider = target.partition(":")[0]
    try:
        if secret is None:
            return infer_model(target)
        from .secrets import secret_environment

        with secret_environment(secret):
            return infer_model(target)
    except ImportError as exc:
        found = re.search(r'pip install "[^"]+"', str(exc))
        hint = found.group(0) if found else f'pip install "pydantic-ai-slim[{provider}]"'
        raise ModelUnavailableError(f"model {target!r} needs the {provider} client package: {hint}") from None
    except UserError as exc:
        message = str(exc)
        if message.startswith("Unknown model"):
            raise UnknownModelError(
                f"Pydantic AI does not know model {target!r}: check the provider prefix "
                f"{provider!r} (openai, anthropic, google-gla, groq, mistral, bedrock, ...) and the "
                "model name"
            ) from None
        env = re.search(r"`([A-Z][A-Z0-9_]*)`", message)
        how = (f"set the {env.group(1)} environment variable" if env
               else f"configure the provider ({message})")
        if env and secret:
            how += f" or the key {env.group(1)} of secret {secret!r} (`kitaru secrets set {secret} ...`)"
        raise ModelUnavailableError(
            f"model {target!r} cannot be used yet: {how}. kitaru passes provider credentials "
            "through from the environment and never records them"
        ) from None


def _check_model_string(target: str) -> None:
    """Fail now, without credentials, if `target` names no provider Pydantic AI knows or one
    whose client package is missing (building the model, later, also checks the API key)."""
    if target == "test":
        return
    provider = target.partition(":")[0]
    try:
        from pydantic_ai.providers import infer_provider_class
    except ImportError as exc:
        raise ModelUnavailableError(
            'kitaru.llm needs Pydantic AI: pip install "kitaru[pydantic-ai]"'
        ) from exc
    if ":" not in target:
        _build_model(target)  # raises the unknown-model error with its explanation
        return
    try:
        infer_provider_class(provider)
    except ValueError:
        _build_model(target)  # raises UnknownModelError naming the provider prefix
    except ImportError:
        _build_model(target)  # raises ModelUnavailableError with the pip line


def _label(target: Any, model: Model) -> str:
    if isinstance(target, str):
        return target
    name = model.model_name
    return name if name.startswith(f"{model.system}:") else f"{model.system}:{name}"


def _model_settings(temperature: float | None, max_tokens: int | None) -> ModelSettings | None:
    settings: dict[str, Any] = {}
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise ConfigError(f"kitaru.llm(temperature=...) expects a number, got {_what(temperature)}")
        settings["temperature"] = float(temperature)
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"kitaru.llm(max_tokens=...) expects an int >= 1, got {max_tokens!r}")
        settings["max_tokens"] = max_tokens
    return settings or None  # type: ignore[return-value]  # ModelSettings is a TypedDict


def _what(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


class _CallableModule(types.ModuleType):
    """`kitaru.llm` is both this module and the function: `import kitaru.llm` binds the
    module to the package attribute, so calling the module calls `llm`."""

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return llm(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
