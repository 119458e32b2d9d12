"""bench.profile groups py-spy's collapsed stacks by library: self time goes to the leaf's
library, cumulative time once per sample to every library on the stack under the event loop's
dispatch of a callback (what is above it, start-up and the loop, says nothing of the work)."""

from __future__ import annotations

import pytest

from bench.profile import PY_SPY_RATE, from_py_spy, layer

SITE = "/venv/lib/python3.11/site-packages"


def test_layers_follow_the_path_of_the_code() -> None:
    assert layer(f"{SITE}/openai/_streaming.py") == "openai + pydantic (SSE events)"
    assert layer(f"{SITE}/pydantic/main.py") == "openai + pydantic (SSE events)"
    assert layer(f"{SITE}/grpc/aio/_server.py") == "grpc"
    assert layer(f"{SITE}/asyncpg/connection.py") == "asyncpg"
    assert layer(f"{SITE}/dbos/_core.py") == "DBOS + SQLAlchemy"
    assert layer(f"{SITE}/agents/run.py") == "Agents SDK"
    assert layer("/repo/server/timestep/runs/apply.py") == "timestep (service)"
    assert layer("/repo/server/timestep/examples/agents.py") == "timestep (service)"
    assert layer("/usr/lib/python3.11/json/decoder.py") == "json"
    assert layer("/usr/lib/python3.11/selectors.py") == "idle (waiting for I/O)"
    assert layer("<frozen importlib._bootstrap>") == "other (stdlib, ...)"
    assert layer(None) == "other (stdlib, ...)"


LOOP = (
    "main (bench/profile.py:277);_run_once (/usr/lib/python3.11/asyncio/base_events.py:1922);"
    "Handle._run (/usr/lib/python3.11/asyncio/events.py:80);"
)


def test_py_spy_stacks_give_self_and_cumulative_time_per_layer() -> None:
    lines = [
        f"{LOOP}apply (/repo/server/timestep/runs/apply.py:40);"
        f"execute ({SITE}/asyncpg/connection.py:350) {PY_SPY_RATE}",
        f"{LOOP}apply (/repo/server/timestep/runs/apply.py:41);"
        f"loads (/usr/lib/python3.11/json/__init__.py:346);"
        f"decode (/usr/lib/python3.11/json/decoder.py:337) {PY_SPY_RATE * 3}",
        "main (bench/profile.py:277);"
        f"EpollSelector.select (/usr/lib/python3.11/selectors.py:468) {PY_SPY_RATE}",
        "",
    ]
    profile = from_py_spy("load", 2, lines)
    assert profile.total_s == pytest.approx(5.0)
    assert profile.self_s == {
        "asyncpg": pytest.approx(1.0),
        "json": pytest.approx(3.0),
        "idle (waiting for I/O)": pytest.approx(1.0),
    }
    # json has two frames on the second stack: its samples count once.
    assert profile.cumulative_s["json"] == pytest.approx(3.0)
    assert profile.cumulative_s["timestep (service)"] == pytest.approx(4.0)
    # The loop and the benchmark's main, above the dispatch, are on every stack: not counted.
    assert profile.cumulative_s["asyncio"] == 0
    assert profile.cumulative_s["timestep client (load)"] == 0
    assert profile.functions_s["decode", "json/decoder.py", "json"] == pytest.approx(3.0)
    report = profile.report("run")
    assert "| json | 1500.00 | 60.0 | 1500.00 | 60.0 |" in report


def test_py_spy_short_file_names_have_their_layer() -> None:
    """Without --full-filenames py-spy names files from their package on."""
    assert layer("pydantic/type_adapter.py") == "openai + pydantic (SSE events)"
    assert layer("timestep/runs/apply.py") == "timestep (service)"
    assert layer("asyncio/events.py") == "asyncio"
