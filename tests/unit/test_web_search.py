"""web_search against a fake Firecrawl: the request it makes from the tool's parameters, the
results the model reads, and every failure as text the model can act on."""

from __future__ import annotations

import json
import socket

import pytest
from agents.tool_context import ToolContext
from timestep import web_search
from timestep.runtime.tools import search_web

from tests.conftest import FIRECRAWL_TEST_KEY
from timestep_testing.fakes.firecrawl import FakeFirecrawl, hit, results
from timestep_testing.fakes.openai_responses import error

KEY = FIRECRAWL_TEST_KEY


async def invoke(arguments: dict[str, object]) -> str:
    """Call the tool the way the Agents SDK does: JSON arguments in, the tool's output back."""
    context = ToolContext(
        context=None, tool_name="web_search", tool_call_id="call_1", tool_arguments=json.dumps(arguments)
    )
    output = await web_search.on_invoke_tool(context, json.dumps(arguments))
    assert isinstance(output, str)
    return output


async def test_results_are_numbered_with_title_url_and_description(firecrawl: FakeFirecrawl) -> None:
    firecrawl.script(
        results(
            hit("https://www.python.org/downloads/", "Download Python", "The latest release."),
            hit("https://docs.python.org/3/whatsnew/", "What's New", "Changes."),
        )
    )

    output = await invoke({"query": "python release", "user_location": None, "filters": None})

    assert output == (
        "1. Download Python\n   URL: https://www.python.org/downloads/\n   The latest release.\n\n"
        "2. What's New\n   URL: https://docs.python.org/3/whatsnew/\n   Changes."
    )
    assert firecrawl.requests == [{"query": "python release", "limit": 10}]
    assert firecrawl.headers[0]["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(("size", "limit"), [("low", 5), ("medium", 10), ("high", 20)])
async def test_search_context_size_sets_the_result_count(
    firecrawl: FakeFirecrawl, size: str, limit: int
) -> None:
    firecrawl.script(results(*(hit(f"https://site{n}.example") for n in range(25))))

    output = await invoke({"query": "q", "search_context_size": size})

    assert firecrawl.requests[0]["limit"] == limit
    assert output.count("URL: ") == limit


async def test_location_and_allowed_domains_shape_the_search_and_filter_the_results(
    firecrawl: FakeFirecrawl,
) -> None:
    firecrawl.script(
        results(
            hit("https://docs.python.org/3/", "Docs"),
            hit("https://python.org.evil.example/", "Look-alike"),
            hit("https://www.python.org/", "Home"),
        )
    )

    output = await invoke(
        {
            "query": "tutorial",
            "user_location": "Berlin, Germany",
            "filters": {"allowed_domains": ["https://www.Python.org/", "pypi.org"]},
        }
    )

    assert firecrawl.requests[0] == {
        "query": "tutorial (site:pypi.org OR site:python.org)",
        "limit": 10,
        "location": "Berlin, Germany",
    }
    assert "docs.python.org" in output
    assert "https://www.python.org/" in output
    assert "evil" not in output


async def test_no_results_says_so(firecrawl: FakeFirecrawl) -> None:
    firecrawl.script(results())

    assert await invoke({"query": "zxqv"}) == "No web results for 'zxqv'."


async def test_without_a_key_the_model_is_told_web_search_is_not_set_up(
    firecrawl: FakeFirecrawl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIRECRAWL_API_KEY")

    output = await invoke({"query": "anything"})

    assert "FIRECRAWL_API_KEY" in output
    assert "not available" in output
    assert firecrawl.requests == []


@pytest.mark.parametrize(
    ("status", "message", "says"),
    [
        (401, "Unauthorized: Invalid token", "refused the service's API key (401"),
        (402, "Insufficient credits", "out of credits"),
        (429, "Rate limit exceeded", "rate limiting"),
        (500, "Internal server error", "Firecrawl answered 500: Internal server error"),
    ],
)
async def test_firecrawl_errors_come_back_as_text_without_the_key(
    firecrawl: FakeFirecrawl, status: int, message: str, says: str
) -> None:
    firecrawl.script(error(status, message))

    output = await invoke({"query": "q"})

    assert output.startswith("web_search failed: ")
    assert says in output
    assert KEY not in output


async def test_an_unreachable_firecrawl_comes_back_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("FIRECRAWL_API_KEY", KEY)
    monkeypatch.setenv("FIRECRAWL_BASE_URL", f"http://127.0.0.1:{port}")

    output = await search_web("q")

    assert output.startswith(f"web_search failed: could not reach Firecrawl at http://127.0.0.1:{port}")


def test_the_schema_has_the_seeds_parameters() -> None:
    schema = web_search.params_json_schema

    assert list(schema["properties"]) == ["query", "user_location", "filters", "search_context_size"]
    assert schema["properties"]["search_context_size"]["enum"] == ["low", "medium", "high"]
    assert schema["$defs"]["WebSearchFilters"]["properties"].keys() == {"allowed_domains"}
    assert web_search.strict_json_schema
