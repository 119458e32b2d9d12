"""Function tools that ship with Timestep."""

from timestep.runtime.tools.web_search import WebSearchFilters, search_web, web_search

__all__ = ["WebSearchFilters", "search_web", "web_search"]
