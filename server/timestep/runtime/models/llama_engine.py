"""llama.cpp in the service's process (through llama-cpp-python): one model loaded at a time, and
one request at a time, on one worker thread of its own.

The CPU is the bound: a request runs on `threads` cores until it ends, so requests queue in the
worker (in order) instead of sharing cores, and the event loop never waits for llama.cpp. A
request whose caller goes away (a cancelled run, a client that stopped reading) stops at its
next token, or never starts if it was still queued.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timestep.domain import RunErrorCode
from timestep.runtime.models.errors import ModelNotConfiguredError, ModelProviderError
from timestep.runtime.models.local_files import resolve_model_file
from timestep.settings import LOCAL_INSTALL

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# The chat template of Gemma models whose GGUF carries none (the packaged Gemma 3 270M):
# Gemma's own, for text turns; the system text opens the first user turn.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set prefix = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{{ prefix if loop.first else '' }}{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def default_threads() -> int:
    """Half the cores (at least one), as llama-cpp-python does: the rest stay the service's."""
    return max((os.cpu_count() or 2) // 2, 1)


@functools.cache
def llama_cpp_problem() -> str | None:
    """Why llama.cpp cannot run here (llama-cpp-python is not installed), or None."""
    try:
        importlib.import_module("llama_cpp")
    except (ImportError, OSError, RuntimeError) as error:  # absent, or its library would not load
        return (
            f"The local model needs llama-cpp-python, which is not installed ({error}). Install it "
            f"with {LOCAL_INSTALL} (it compiles llama.cpp, about 11 minutes on 2 cores the first "
            "time; pip caches the result), or `make serve`, which does; then restart the service."
        )
    return None


@dataclass(frozen=True)
class LoadSpec:
    """Which model to load and how: `model_file` "" is the packaged model."""

    model_file: str
    threads: int
    context_tokens: int


@dataclass(frozen=True)
class GenerationRequest:
    # Chat messages ({"role", "content"}) for the model's chat template.
    messages: list[dict[str, str]]
    # The JSON schema the reply must follow (a forced tool call, a structured output), or None.
    schema: JSON | None
    max_tokens: int
    temperature: float
    top_p: float
    # Yield the reply's text as it is generated (not for a JSON reply that becomes a tool call).
    stream_text: bool


@dataclass(frozen=True)
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    # "stop" (the model ended its turn) or "length" (max_tokens was reached).
    finish_reason: str


@dataclass
class _Loaded:
    spec: LoadSpec
    path: Path
    llama: Any
    formatter: Any


class LlamaEngine:
    """The process's llama.cpp: loads the model a request names (replacing another one) and
    runs requests one at a time."""

    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="timestep-llama")
        self._loaded: _Loaded | None = None

    async def load(self, spec: LoadSpec) -> Path:
        """Load the model now (requests would load it first); returns its file."""
        loaded = await asyncio.get_running_loop().run_in_executor(self._worker, self._ensure_loaded, spec)
        return loaded.path

    async def generate(
        self, spec: LoadSpec, request: GenerationRequest, model: str
    ) -> AsyncGenerator[str | Generation]:
        """The reply's text pieces as they are generated (if `request.stream_text`), then the
        whole `Generation`."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Generation | BaseException] = asyncio.Queue()
        stopped = threading.Event()

        def put(item: str | Generation | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody reads any more
                stopped.set()

        def work() -> None:
            try:
                put(self._generate(spec, request, model, put, stopped))
            except BaseException as error:  # handed to the caller, raised there
                put(error)

        job = loop.run_in_executor(self._worker, work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Generation):
                    return
        finally:
            stopped.set()  # a running request stops at its next token
            job.cancel()  # a queued one never starts

    # ----- on the worker thread ---------------------------------------------------------------

    def _ensure_loaded(self, spec: LoadSpec) -> _Loaded:
        if self._loaded is not None and self._loaded.spec == spec:
            return self._loaded
        self._loaded = None  # one model per process: the old one goes before the new one loads
        problem = llama_cpp_problem()
        if problem is not None:
            raise ModelNotConfiguredError(problem)
        path = resolve_model_file(spec.model_file)
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import CHATML_CHAT_TEMPLATE, Jinja2ChatFormatter

        started = time.perf_counter()
        try:
            llama = Llama(
                model_path=str(path),
                n_ctx=spec.context_tokens,
                n_threads=spec.threads,
                n_threads_batch=spec.threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as error:
            raise ModelNotConfiguredError(
                f"llama.cpp could not load the local model {path} ({error}). Check that the file is a "
                "complete GGUF model of an architecture llama.cpp supports (set TIMESTEP_LOCAL_MODEL "
                "to another file, or unset it for the packaged Gemma 3 270M), then restart the service."
            ) from error
        template = llama.metadata.get("tokenizer.chat_template") or (
            GEMMA_CHAT_TEMPLATE
            if llama.metadata.get("general.architecture", "").startswith("gemma")
            else CHATML_CHAT_TEMPLATE
        )
        formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=_token_text(llama, llama.token_eos()),
            bos_token=_token_text(llama, llama.token_bos()),
            stop_token_ids=[llama.token_eos()],
        )
        log.info(
            "loaded the local model %s in %.1fs (%d threads, %d context tokens)",
            path,
            time.perf_counter() - started,
            spec.threads,
            spec.context_tokens,
        )
        self._loaded = _Loaded(spec, path, llama, formatter)
        return self._loaded

    def _generate(
        self,
        spec: LoadSpec,
        request: GenerationRequest,
        model: str,
        put: Callable[[str], None],
        stopped: threading.Event,
    ) -> Generation:
        if stopped.is_set():
            return Generation("", 0, 0, "stop")
        loaded = self._ensure_loaded(spec)
        llama = loaded.llama
        rendered = _render(loaded.formatter, request.messages)
        tokens = llama.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
        if len(tokens) + request.max_tokens > llama.n_ctx():
            raise ModelProviderError(
                RunErrorCode.MODEL_INPUT_UNSUPPORTED,
                f"The conversation is {len(tokens)} tokens, and with up to {request.max_tokens} more for "
                f"the reply it does not fit the {llama.n_ctx()} tokens {model!r} holds. Shorten the "
                "input or the conversation (a session), or lower ModelSettings.max_tokens.",
            )
        from llama_cpp.llama_grammar import LlamaGrammar

        grammar = (
            LlamaGrammar.from_json_schema(json.dumps(request.schema), verbose=False)
            if request.schema is not None
            else None
        )
        pieces: list[str] = []
        finish_reason = "stop"
        chunks = llama.create_completion(
            tokens,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=rendered.stop,
            stopping_criteria=rendered.stopping_criteria,
            grammar=grammar,
            stream=True,
        )
        try:
            for chunk in chunks:
                if stopped.is_set():
                    break
                choice = chunk["choices"][0]
                if choice["text"]:
                    pieces.append(choice["text"])
                    if request.stream_text:
                        put(choice["text"])
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            chunks.close()
        text = "".join(pieces)
        output_tokens = len(llama.tokenize(text.encode(), add_bos=False, special=True)) if text else 0
        return Generation(text, len(tokens), output_tokens, finish_reason)


def _token_text(llama: Any, token: int) -> str:
    return llama.detokenize([token], special=True).decode(errors="replace") if token >= 0 else ""


def _render(formatter: Any, messages: list[dict[str, str]]) -> Any:
    """The prompt of `messages` in the model's chat template; templates without a system role
    (they raise) get the system text at the start of the first user turn."""
    try:
        return formatter(messages=messages)
    except ValueError:
        if not messages or messages[0]["role"] != "system" or len(messages) < 2:
            raise
        system, first, *rest = messages
        merged = {"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"}
        return formatter(messages=[merged, *rest])


@functools.cache
def process_engine() -> LlamaEngine:
    """The one engine of this process, shared by every local model provider in it."""
    return LlamaEngine()
