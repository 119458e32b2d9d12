"""web_search: a function tool that searches the web through Firecrawl's search API.

Configured from the environment when it runs: FIRECRAWL_API_KEY (required) and
FIRECRAWL_BASE_URL (default https://api.firecrawl.dev, e.g. for a self-hosted Firecrawl).
Every failure — no key, a refused key, no credits, rate limits, an unreachable server — comes
back as text the model can read and act on, never as an exception that fails the run; the key
never appears in what the tool returns.
"""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
from agents import function_tool
from pydantic import BaseModel, Field

from timestep.runtime.secrets import scrub

FIRECRAWL_BASE_URL = "https://api.firecrawl.dev"
SEARCH_TIMEOUT = 30.0  # seconds
RESULTS_BY_CONTEXT_SIZE: dict[str, int] = {"low": 5, "medium": 10, "high": 20}

SearchContextSize = Literal["low", "medium", "high"]


class WebSearchFilters(BaseModel):
    allowed_domains: list[str] | None = Field(
        default=None,
        description='Only return results from these domains (and their subdomains), e.g. ["python.org"].',
    )


@function_tool
async def web_search(
    query: str,
    user_location: str | None = None,
    filters: WebSearchFilters | None = None,
    search_context_size: SearchContextSize = "medium",
) -> str:
    """Search the web and return the top results with their titles, URLs and descriptions.

    Args:
        query: What to search for.
        user_location: Where the user is, to localize results, e.g. "Berlin, Germany".
        filters: Restrictions on the results, such as allowed domains.
        search_context_size: How many results to return: low (5), medium (10) or high (20).
    """
    domains = filters.allowed_domains if filters is not None else None
    return await search_web(query, user_location, domains, search_context_size)


async def search_web(
    query: str,
    user_location: str | None = None,
    allowed_domains: list[str] | None = None,
    search_context_size: SearchContextSize = "medium",
) -> str:
    """What `web_search` returns: numbered results, or a sentence saying why there are none."""
    api_key = os.environ.get("FIRECRAWL_API_KEY", "")
    if not api_key:
        return (
            "web_search is not available: the service has no FIRECRAWL_API_KEY configured. "
            "Answer without web results and tell the user that web search is not set up."
        )
    base_url = (os.environ.get("FIRECRAWL_BASE_URL") or FIRECRAWL_BASE_URL).rstrip("/")
    domains = sorted({_domain(d) for d in allowed_domains or [] if _domain(d)})
    body: dict[str, Any] = {
        "query": f"{query} ({' OR '.join(f'site:{d}' for d in domains)})" if domains else query,
        "limit": RESULTS_BY_CONTEXT_SIZE.get(search_context_size, RESULTS_BY_CONTEXT_SIZE["medium"]),
    }
    if user_location:
        body["location"] = user_location
    try:
        async with httpx2.AsyncClient(timeout=SEARCH_TIMEOUT) as client:
            response = await client.post(
                f"{base_url}/v2/search", json=body, headers={"Authorization": f"Bearer {api_key}"}
            )
    except httpx2.TransportError as error:
        return (
            f"web_search failed: could not reach Firecrawl at {base_url} ({type(error).__name__}). "
            "Try again later, or answer without web results."
        )
    failure = _failure(response)
    if failure is not None:
        return f"web_search failed: {failure}"
    results = [r for r in _results(response.json()) if not domains or _allowed(r.get("url", ""), domains)]
    if not results:
        return f"No web results for {query!r}."
    return "\n\n".join(_entry(number, result) for number, result in enumerate(results, start=1))


def _entry(number: int, result: dict[str, Any]) -> str:
    title = result.get("title") or "Untitled"
    description = result.get("description") or ""
    return f"{number}. {title}\n   URL: {result.get('url', '')}\n   {description}".rstrip()


def _failure(response: httpx2.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        data = None
    detail = data.get("error") if isinstance(data, dict) else None
    detail = scrub(str(detail or response.text[:200] or "no details"))  # Firecrawl may quote our key
    status = response.status_code
    if status in (401, 403):
        return (
            f"Firecrawl refused the service's API key ({status}: {detail}). The operator must fix "
            "FIRECRAWL_API_KEY; answer without web results."
        )
    if status == 402:
        return f"the Firecrawl account is out of credits (402: {detail}). Answer without web results."
    if status == 429:
        return f"Firecrawl is rate limiting searches (429: {detail}). Try again in a moment."
    if status >= 400:
        return f"Firecrawl answered {status}: {detail}."
    if not isinstance(data, dict) or data.get("success") is False:
        return f"Firecrawl did not return results: {detail}."
    return None


def _results(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The web results of a v2 search ({"data": {"web": [...]}}) or a v1 one ({"data": [...]})."""
    found = data.get("data")
    if isinstance(found, dict):
        found = found.get("web")
    return [r for r in found or [] if isinstance(r, dict)] if isinstance(found, list) else []


def _domain(value: str) -> str:
    """ "https://www.Example.com/x" → "example.com"."""
    value = value.strip().lower()
    host = urlsplit(value if "://" in value else f"//{value}").hostname or ""
    return host.removeprefix("www.")


def _allowed(url: str, domains: list[str]) -> bool:
    host = _domain(url)
    return any(host == d or host.endswith(f".{d}") for d in domains)
