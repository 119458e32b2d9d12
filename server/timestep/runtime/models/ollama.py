"""Ollama models, local and Ollama Cloud, for the Agents SDK.

Where a model runs is decided for each model name, every time a model is looked up:

* a name ending in ``-cloud`` or ``:cloud`` (Ollama's cloud models, e.g. ``gpt-oss:120b-cloud``)
  goes to Ollama Cloud (https://ollama.com) when an API key is configured, with the suffix
  removed, since ollama.com serves them as ``gpt-oss:120b``. Without a key it goes to the local
  Ollama, which runs cloud models itself once signed in (``ollama signin``) — both as Ollama
  documents them;
* any other name goes to the local Ollama at ``OLLAMA_HOST`` (default http://localhost:11434);
* the API key is sent (``Authorization: Bearer``) only to Ollama Cloud, never to a local host.

Wire API: Ollama's native ``POST /api/chat`` (streamed as NDJSON), not its OpenAI-compatible
``/v1``. The native API is Ollama's own: ``/v1`` is a translation layer in front of it. Natively,
tool calls arrive as parsed JSON objects alongside the text in the same streamed chunks, a
tool result names the tool it answers (``tool_name``), reasoning comes as its own ``thinking``
field, images are plain base64, errors are ``{"error": ...}`` with the real status, and token
counts are on the final chunk. Conversion to and from the SDK's Responses items reuses the SDK's
Chat Completions converter and stream handler (as the SDK's own LiteLLM adapter does), so tool
calls — including ones that need approval — handoffs, structured outputs and streamed text
events behave as they do for any other model; the conversion is `ollama_chat.py`.

HTTP goes through ``httpx2`` (the OpenAI SDK's HTTP client) so this module decides exactly which
host receives the key, how 429, 502, 503 and 504 are retried (honouring ``Retry-After``) and how
each failure is reported (see `timestep.runtime.models.errors`). Each provider keeps one client,
so its calls share one connection pool, until `OllamaModelProvider.aclose`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx2
from agents import Model, ModelProvider, Usage
from agents.models.chatcmpl_converter import Converter
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessage

from timestep.domain import RunErrorCode
from timestep.runtime.models.chat_completions import ChatCompletionsModel, ModelCall
from timestep.runtime.models.errors import ModelNotConfiguredError, ModelProviderError
from timestep.runtime.models.ollama_chat import (
    JSON,
    ChunkStream,
    OllamaTarget,
    completion_message,
    ollama_messages,
    ollama_usage,
)

DEFAULT_OLLAMA_HOST = "http://localhost:11434"
OLLAMA_CLOUD_URL = "https://ollama.com"
CLOUD_SUFFIXES = ("-cloud", ":cloud")
DEFAULT_TIMEOUT = 600.0  # seconds: a local model may take minutes to load and answer
DEFAULT_MAX_RETRIES = 2
# Retried: rate limits and gateway/overload answers. A 500 from Ollama is a real failure
# (e.g. out of memory), not retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_DELAY = 8.0
# Calls of one provider at once (more wait for a connection), as the OpenAI SDK allows: every
# run's calls share the provider's client.
CONNECTION_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)

_OLLAMA_PORT = 11434


# ----- where a model runs -------------------------------------------------------------------


def normalize_host(value: str) -> str:
    """An Ollama host as OLLAMA_HOST accepts it ("localhost", "0.0.0.0:11434", "https://h/p")
    as a base URL; plain-HTTP hosts without a port get Ollama's 11434."""
    value = value.strip().rstrip("/")
    if not value:
        return DEFAULT_OLLAMA_HOST
    if "://" not in value:
        value = f"http://{value}"
    parts = urlsplit(value)
    host = parts.hostname or "localhost"
    netloc = f"[{host}]" if ":" in host else host
    port = parts.port or (_OLLAMA_PORT if parts.scheme == "http" else None)
    if port:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def is_cloud_model(name: str) -> bool:
    """True for Ollama's cloud model names, e.g. "gpt-oss:120b-cloud" or "glm-4.6:cloud"."""
    return name.endswith(CLOUD_SUFFIXES)


def cloud_api_name(name: str) -> str:
    """The name ollama.com's API serves a cloud model under: "gpt-oss:120b-cloud" → "gpt-oss:120b"."""
    for suffix in CLOUD_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


class OllamaModelProvider(ModelProvider):
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        cloud_base_url: str = OLLAMA_CLOUD_URL,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        """Models served by Ollama.

        Args:
            api_key: Ollama Cloud API key; None reads OLLAMA_API_KEY, "" means none.
            base_url: the local Ollama; None reads OLLAMA_HOST (default http://localhost:11434).
                Pointing it at Ollama Cloud sends every model there.
            cloud_base_url: Ollama Cloud's address (for tests and proxies).
            timeout: seconds to wait for a model call.
            max_retries: retries of a call answered with 429, 502, 503 or 504, with backoff.
        """
        self._api_key = api_key if api_key is not None else os.environ.get("OLLAMA_API_KEY", "")
        self._base_url = normalize_host(
            base_url if base_url is not None else os.environ.get("OLLAMA_HOST", "")
        )
        self._cloud_url = normalize_host(cloud_base_url)
        self._timeout = timeout
        self._max_retries = max_retries
        self._http: httpx2.AsyncClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None

    def target(self, model_name: str) -> OllamaTarget:
        """Where `model_name` goes, decided afresh for every name."""
        cloud = (is_cloud_model(model_name) and bool(self._api_key)) or self._base_url == self._cloud_url
        if cloud:
            return OllamaTarget(model_name, cloud_api_name(model_name), self._cloud_url, self._api_key, True)
        return OllamaTarget(model_name, model_name, self._base_url, "", False)

    def missing(self, model_name: str | None) -> str | None:
        if not model_name:
            return 'An Ollama model needs a name, e.g. "ollama/llama3.2".'
        target = self.target(model_name)
        if target.cloud and not target.api_key:
            return (
                f"The model {model_name!r} runs on Ollama Cloud ({target.host}), which needs an API key. "
                "Set OLLAMA_API_KEY in the service's environment (create one at "
                "https://ollama.com/settings/keys), restart the service and create the run again."
            )
        return None

    def get_model(self, model_name: str | None) -> Model:
        problem = self.missing(model_name)
        if problem is not None:
            raise ModelNotConfiguredError(problem)
        assert model_name is not None
        return OllamaModel(self.target(model_name), http=self._client, max_retries=self._max_retries)

    async def aclose(self) -> None:
        """Close the connections of this provider's calls (a later call opens new ones)."""
        http, self._http = self._http, None
        if http is not None and self._http_loop is asyncio.get_running_loop():
            await http.aclose()

    def _client(self) -> httpx2.AsyncClient:
        """The HTTP client of every call of this provider's models, made at the first call. A
        call in another event loop than the client's (a program calling asyncio.run again) gets
        a new client: connections belong to the loop that opened them."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            self._http = httpx2.AsyncClient(
                timeout=httpx2.Timeout(self._timeout, connect=10.0), limits=CONNECTION_LIMITS
            )
            self._http_loop = loop
        return self._http


# ----- the model ----------------------------------------------------------------------------


class OllamaModel(ChatCompletionsModel):
    """One Ollama model at one host, called through the native chat API with the HTTP client
    `http` returns (its provider's)."""

    def __init__(
        self,
        target: OllamaTarget,
        *,
        http: Callable[[], httpx2.AsyncClient],
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.target = target
        self._http = http
        self._max_retries = max_retries

    @property
    def model_name(self) -> str:
        return self.target.requested

    async def complete(self, call: ModelCall) -> tuple[ChatCompletionMessage, Usage]:
        async with self._chat(self._body(call, stream=False)) as response:
            data = self._reply(await self._read(response))
        return completion_message(data.get("message") or {}), ollama_usage(data)

    @asynccontextmanager
    async def stream_chunks(self, call: ModelCall) -> AsyncIterator[AsyncIterator[ChatCompletionChunk]]:
        async with self._chat(self._body(call, stream=True)) as response:
            yield self._chunks(response)

    # ----- request --------------------------------------------------------------------------

    def _body(self, call: ModelCall, *, stream: bool) -> JSON:
        model_settings, output_schema = call.model_settings, call.output_schema
        messages = Converter.items_to_messages(call.input, model=self.target.requested)
        if call.system_instructions:
            messages.insert(0, {"role": "system", "content": call.system_instructions})
        body: JSON = {
            "model": self.target.model,
            "messages": ollama_messages(messages, self.target),
            "stream": stream,
        }
        tool_params = [Converter.tool_to_openai(tool) for tool in call.tools] + [
            Converter.convert_handoff_tool(handoff) for handoff in call.handoffs
        ]
        # Ollama has no tool_choice; "none" is honoured by not offering tools.
        if tool_params and model_settings.tool_choice != "none":
            body["tools"] = tool_params
        if output_schema is not None and not output_schema.is_plain_text():
            body["format"] = output_schema.json_schema()
        options = {
            name: value
            for name, value in (
                ("temperature", model_settings.temperature),
                ("top_p", model_settings.top_p),
                ("num_predict", model_settings.max_tokens),
                ("frequency_penalty", model_settings.frequency_penalty),
                ("presence_penalty", model_settings.presence_penalty),
            )
            if value is not None
        }
        if options:
            body["options"] = options
        effort = model_settings.reasoning.effort if model_settings.reasoning is not None else None
        if effort is not None:
            body["think"] = effort if effort in ("low", "medium", "high") else effort != "none"
        body.update(model_settings.extra_args or {})  # e.g. keep_alive, or options of your own
        return body

    @asynccontextmanager
    async def _chat(self, body: JSON) -> AsyncIterator[httpx2.Response]:
        """POST /api/chat; yields the open response once it is a success, retrying 429/5xx."""
        target = self.target
        headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
        client = self._http()
        attempt = 0
        while True:
            request = client.build_request("POST", f"{target.host}/api/chat", json=body, headers=headers)
            try:
                response = await client.send(request, stream=True)
            except httpx2.TransportError as error:
                raise _transport_failure(target, error) from error
            if response.status_code < 400:
                try:
                    yield response
                finally:
                    await response.aclose()
                return
            detail = _error_detail(await self._read(response))
            await response.aclose()
            if response.status_code in RETRY_STATUSES and attempt < self._max_retries:
                await asyncio.sleep(_retry_delay(attempt, response.headers.get("retry-after")))
                attempt += 1
                continue
            raise status_failure(target, response.status_code, detail, attempt + 1)

    async def _read(self, response: httpx2.Response) -> bytes:
        try:
            return await response.aread()
        except httpx2.TransportError as error:
            raise _transport_failure(self.target, error) from error

    def _reply(self, raw: bytes) -> JSON:
        """A decoded response object; an in-band {"error": ...} becomes a model error."""
        try:
            data = json.loads(raw)
        except ValueError as error:
            raise ModelProviderError(
                RunErrorCode.MODEL_ERROR,
                f"{self.target.where} sent something that is not JSON: {raw[:200]!r}",
            ) from error
        if not isinstance(data, dict):
            raise ModelProviderError(
                RunErrorCode.MODEL_ERROR, f"{self.target.where} sent {raw[:200]!r}, not an object"
            )
        if data.get("error"):
            raise ModelProviderError(
                RunErrorCode.MODEL_ERROR,
                f"{self.target.where} failed on {self.target.requested!r}: {data['error']}",
            )
        return data

    async def _chunks(self, response: httpx2.Response) -> AsyncIterator[ChatCompletionChunk]:
        """The NDJSON stream as Chat Completions chunks, for the SDK's stream handler."""
        stream = ChunkStream(self.target.requested)
        try:
            async for line in response.aiter_lines():
                if line.strip():
                    yield stream.chunk(self._reply(line.encode()))
        except httpx2.TransportError as error:
            raise _transport_failure(self.target, error) from error


# ----- failures -----------------------------------------------------------------------------


def _error_detail(raw: bytes) -> str:
    """The `error` of Ollama's {"error": "..."} body, else the body's start."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace").strip() or "no details"
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        return str(error.get("message", error) if isinstance(error, dict) else error)
    return raw[:300].decode(errors="replace")


def _retry_delay(attempt: int, retry_after: str | None) -> float:
    """Seconds before retry number `attempt` + 1: the server's Retry-After, else 0.5 s doubling."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), MAX_RETRY_DELAY)
        except ValueError:
            pass
    return min(0.5 * 2.0**attempt, MAX_RETRY_DELAY)


def _transport_failure(target: OllamaTarget, error: httpx2.TransportError) -> ModelProviderError:
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if not isinstance(error, httpx2.ConnectError | httpx2.ConnectTimeout):
        return ModelProviderError(
            RunErrorCode.MODEL_UNREACHABLE,
            f"The connection to {target.where} failed during a call to {target.requested!r} ({reason}). "
            "Check that it is up and reachable, then create the run again.",
        )
    if target.cloud:
        fix = "Check the network connection to ollama.com."
    else:
        fix = (
            "Start Ollama there (`ollama serve`), or set OLLAMA_HOST to where it runs; for Ollama "
            "Cloud, set OLLAMA_API_KEY and use a model name ending in -cloud."
        )
    return ModelProviderError(
        RunErrorCode.MODEL_UNREACHABLE,
        f"Could not reach {target.where} for {target.requested!r} ({reason}). {fix}",
    )


def status_failure(target: OllamaTarget, status: int, detail: str, attempts: int) -> ModelProviderError:
    """The run error for an HTTP error status from Ollama."""
    if status in (401, 403):
        if target.cloud:
            return ModelProviderError(
                RunErrorCode.MODEL_AUTH,
                f"Ollama Cloud refused the API key ({status}: {detail}). Check OLLAMA_API_KEY in the "
                "service's environment (keys are at https://ollama.com/settings/keys).",
            )
        return ModelProviderError(
            RunErrorCode.MODEL_AUTH,
            f"{target.where} refused {target.requested!r} ({status}: {detail}). Cloud models through a "
            "local Ollama need `ollama signin` on that host; or set OLLAMA_API_KEY so cloud models "
            "are called on Ollama Cloud directly.",
        )
    if status == 404:
        if target.cloud:
            fix = "Check the name against Ollama's cloud models (https://ollama.com/search?c=cloud)."
        else:
            fix = f"Run `ollama pull {target.model}` on that host (or pick one `ollama list` shows)."
        return ModelProviderError(
            RunErrorCode.MODEL_NOT_FOUND, f"{target.where} has no model {target.model!r} ({detail}). {fix}"
        )
    if status == 429:
        limits = " and check your Ollama Cloud plan's usage limits" if target.cloud else ""
        return ModelProviderError(
            RunErrorCode.MODEL_RATE_LIMITED,
            f"{target.where} kept answering 429 (rate limited) for {target.requested!r} after {attempts} "
            f"attempts: {detail}. Wait before creating the run again{limits}.",
        )
    return ModelProviderError(
        RunErrorCode.MODEL_ERROR, f"{target.where} answered {status} for {target.requested!r}: {detail}"
    )
