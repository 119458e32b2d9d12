"""The golden vectors in `golden/`: for each scenario of `scenarios.SCENARIOS`, the state each
pinned SDK writes for it and what the codec converts each into.

- `<name>.python.json`: openai-agents 0.24.0 (schema 1.21)
- `<name>.typescript.json`: @openai/agents 0.20.0 (schema 1.22); the raw API responses it keeps
  carry the fake server's clock, zeroed here
- `<name>.python_to_typescript.json`, `<name>.typescript_to_python.json`: the codec's output

All are stored pretty-printed (the SDKs' own spacing differs; key order is kept), so a change to
an SDK or to the codec shows up as a readable diff. Regenerate after changing either:

    python -m tests.interop.golden_vectors
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Final

from timestep.state.codec import convert
from timestep.state.document import PYTHON, TYPESCRIPT, StateDocument

from tests.interop.scenarios import SCENARIOS, Scenario, python_state, typescript_state
from tests.interop.typescript import prepare_package
from timestep_testing.fakes.openai_responses import FakeOpenAI

DIRECTORY: Final = Path(__file__).resolve().parent / "golden"
_CLOCK_FIELDS: Final = ("created_at", "completed_at")


def path(scenario: str, kind: str) -> Path:
    """kind: "python", "typescript", "python_to_typescript" or "typescript_to_python"."""
    return DIRECTORY / f"{scenario}.{kind}.json"


def load(scenario: str, kind: str) -> str:
    return path(scenario, kind).read_text()


def _pretty(state_json: str) -> str:
    return json.dumps(json.loads(state_json), indent=2, ensure_ascii=False) + "\n"


def _without_clock(state_json: str) -> str:
    state = json.loads(state_json)
    for response in [*state.get("modelResponses", []), state.get("lastModelResponse") or {}]:
        raw = response.get("providerData") or {}
        raw.update({key: 0 for key in _CLOCK_FIELDS if key in raw})
    return json.dumps(state, ensure_ascii=False)


async def _write(scenario: Scenario) -> None:
    async with FakeOpenAI() as fake:
        python = await python_state(scenario, fake)
    async with FakeOpenAI() as fake:
        typescript = _without_clock(await typescript_state(scenario, fake))
    states: dict[str, Any] = {
        "python": python,
        "typescript": typescript,
        "python_to_typescript": convert(StateDocument.parse(python), TYPESCRIPT).text,
        "typescript_to_python": convert(StateDocument.parse(typescript), PYTHON).text,
    }
    for kind, state_json in states.items():
        path(scenario.name, kind).write_text(_pretty(state_json))


async def main() -> None:
    prepare_package()
    DIRECTORY.mkdir(exist_ok=True)
    for scenario in SCENARIOS:
        await _write(scenario)
        print(f"wrote {scenario.name}")


if __name__ == "__main__":
    asyncio.run(main())
