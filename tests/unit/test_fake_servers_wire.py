"""The fake Ollama and Firecrawl servers speak their real wire formats, checked with a plain HTTP
client (the behaviour through real clients is covered by the Ollama model and web_search tests)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from timestep_testing.fakes.firecrawl import FakeFirecrawl, hit, results
from timestep_testing.fakes.ollama import FakeOllama
from timestep_testing.fakes.openai_responses import INPUT_TOKENS_PER_REQUEST, response, text, tool_call


async def post(url: str, body: dict[str, Any]) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        return resp.status, resp.content_type, await resp.text()


async def test_ollama_streams_ndjson_lines_then_a_final_line_with_token_counts() -> None:
    async with FakeOllama() as ollama:
        ollama.script(response(text("Hi there"), tool_call("lookup", {"q": "x"})))
        body = {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}

        status, content_type, raw = await post(f"{ollama.base_url}/api/chat", body)

    assert (status, content_type) == (200, "application/x-ndjson")
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [line["message"].get("content") for line in lines[:2]] == ["Hi", " there"]
    assert lines[2]["message"]["tool_calls"] == [{"function": {"name": "lookup", "arguments": {"q": "x"}}}]
    assert [line["done"] for line in lines] == [False, False, False, True]
    final = lines[-1]
    assert (final["done_reason"], final["prompt_eval_count"], final["eval_count"]) == (
        "stop",
        INPUT_TOKENS_PER_REQUEST,
        2 + 5,
    )
    assert all(line["model"] == "llama3.2" for line in lines)


async def test_ollama_without_streaming_answers_one_object() -> None:
    async with FakeOllama() as ollama:
        ollama.script(tool_call("lookup", {"q": "x"}, call_id="call_7"))

        status, _, raw = await post(
            f"{ollama.base_url}/api/chat", {"model": "m", "messages": [], "stream": False}
        )
        missing_status, _, missing = await post(f"{ollama.base_url}/api/generate", {})

    reply = json.loads(raw)
    assert status == 200
    assert reply["done"] is True
    assert reply["message"]["tool_calls"] == [
        {"function": {"name": "lookup", "arguments": {"q": "x"}}, "id": "call_7"}
    ]
    assert (missing_status, missing) == (404, "404 page not found")
    assert ollama.unmatched == [("POST", "/api/generate")]


async def test_firecrawl_answers_v2_search_results_up_to_the_limit() -> None:
    async with FakeFirecrawl() as firecrawl:
        firecrawl.script(results(hit("https://a.example", "A", "first"), hit("https://b.example")))

        status, _, raw = await post(f"{firecrawl.base_url}/v2/search", {"query": "q", "limit": 1})

    assert status == 200
    assert json.loads(raw) == {
        "success": True,
        "data": {"web": [{"url": "https://a.example", "title": "A", "description": "first", "position": 1}]},
        "creditsUsed": 1,
    }
    assert firecrawl.requests == [{"query": "q", "limit": 1}]
