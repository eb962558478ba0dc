"""Each model request of a `KitaruAgent` run: a checkpoint in a flow body, a child event inside one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import CompletedStreamedResponse, Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

import kitaru
from kitaru_core.runtime.events import record_child_event
from kitaru_core.runtime.state import current_execution, where

from ...model_calls import dump_messages, dump_response, load_response, usage_of
from ._options import CapturePolicy
from ._run import AgentRunState, checkpoint_call, spec, unit_done

MODEL_REQUEST = "model_request"


class KitaruModel(WrapperModel):
    """Each request: a checkpoint in a flow body, a child event inside a checkpoint.

    A streamed request in a flow body streams live (the run sees each delta as it comes) and is
    recorded when its stream ends; from the record it is replayed as a completed stream.
    """

    def __init__(self, wrapped: Model, run: AgentRunState) -> None:
        super().__init__(wrapped)
        self._run = run

    @property
    def _capture(self) -> CapturePolicy:
        return self._run.agent.capture

    @property
    def _config(self) -> dict[str, Any]:
        return self._run.agent.model_checkpoint_config

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        scope = where()
        if scope is None:
            return await super().request(messages, model_settings, model_request_parameters)
        wrapped, timeout = self.wrapped, self._config.get("timeout")

        async def live() -> ModelResponse:
            return await asyncio.wait_for(
                wrapped.request(messages, model_settings, model_request_parameters), timeout
            )

        if scope == "checkpoint":
            return await self._as_child_event(messages, live)
        made: list[ModelResponse] = []

        async def model_request() -> dict[str, Any]:
            self._save_prompt(messages)
            started = time.perf_counter()
            response = await live()
            kitaru.log(llm_usage=usage_of(response, time.perf_counter() - started))
            made.append(response)
            return dump_response(response)

        handle = await checkpoint_call(MODEL_REQUEST, "llm_call", model_request, self._config)
        return made[-1] if made else load_response(handle.load())

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        scope = where()
        if scope is None:
            async with super().request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream
            return
        if scope == "checkpoint":
            async with self._live_stream(messages, model_settings, model_request_parameters,
                                         run_context) as (stream, finished):
                yield stream
            self._record_child_event(messages, finished[0], finished[1])
            return
        execution = current_execution.get()
        assert execution is not None
        step = execution.reserve([MODEL_REQUEST])[0]
        request_spec = spec(MODEL_REQUEST, "llm_call", self.request_stream, self._config)
        recorded = execution.answered(request_spec, step)
        if recorded is not None:
            self._run.model_events_live = False  # delivered when it ran
            unit_done(executed=False)
            yield CompletedStreamedResponse(load_response(recorded.load()),
                                            model_request_parameters=model_request_parameters,
                                            replay_events=True)
            return
        self._run.model_events_live = True
        async with self._live_stream(messages, model_settings, model_request_parameters,
                                     run_context) as (stream, finished):
            yield stream

        async def model_request() -> dict[str, Any]:
            self._save_prompt(messages)
            kitaru.log(llm_usage=usage_of(finished[0], finished[1]))
            return dump_response(finished[0])

        await checkpoint_call(MODEL_REQUEST, "llm_call", model_request, {**self._config, "retries": 0},
                              step=step)

    @asynccontextmanager
    async def _live_stream(self, messages: list[ModelMessage], model_settings: ModelSettings | None,
                           params: ModelRequestParameters, run_context: Any) -> AsyncIterator[Any]:
        """The wrapped model's stream; on exit (the consumer done) `finished` holds the
        complete response and its latency, the rest of the stream drained first."""
        finished: list[Any] = []
        started = time.perf_counter()
        async with self.wrapped.request_stream(messages, model_settings, params, run_context) as stream:
            yield stream, finished
            async for _ in stream:
                pass
        finished[:] = [stream.get(), time.perf_counter() - started]

    async def _as_child_event(self, messages: list[ModelMessage], live: Callable[[], Any]) -> ModelResponse:
        started = time.perf_counter()
        response = await live()
        self._record_child_event(messages, response, time.perf_counter() - started)
        return response

    def _record_child_event(self, messages: list[ModelMessage], response: ModelResponse,
                            latency: float) -> None:
        capture = self._capture
        if not capture.emit_child_events:
            return
        usage = usage_of(response, latency)
        parts: dict[str, Any] = {}
        if capture.save_responses:
            parts["response"] = dump_response(response)
        if capture.save_prompts:
            parts["prompt"] = prompt_of(messages, capture)
        record_child_event("llm_call", MODEL_REQUEST, artifacts=parts,
                           metadata={"model": usage["model"], "usage": usage})

    def _save_prompt(self, messages: list[ModelMessage]) -> None:
        if self._capture.save_prompts:
            kitaru.save("prompt", prompt_of(messages, self._capture))


def prompt_of(messages: list[ModelMessage], capture: CapturePolicy) -> list[dict[str, Any]]:
    """A request's new messages as stored (`prompt`), without the results of tools
    whose capture is "none": those must not reach the record through the prompt either."""
    dumped = dump_messages(messages[-1:])
    for message in dumped:
        for part in message.get("parts", []):
            if part.get("part_kind") == "tool-return" and capture.for_tool(part["tool_name"]) == "none":
                part["content"] = "<not recorded: tool_capture 'none'>"
    return dumped
