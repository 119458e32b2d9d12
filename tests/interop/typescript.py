"""Running the TypeScript side (`tests/interop/ts`) from Python: `npm ci` installs it, and
`prepare_package` builds the TypeScript client it calls the service with (clients/typescript,
generated from proto/, so it is never stale) and compiles it with `tsc` (strict; a type error
fails the tests); then `run_scenario` runs a step of `src/scenarios.ts` and returns the JSON
object it prints.

The TypeScript SDK talks to the model server given as `model_url` (a fake in tests) with a test
key and tracing off, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from timestep_testing.harness import run_to_completion
from timestep_testing.typescript import build_client

PACKAGE: Final = Path(__file__).resolve().parent / "ts"
NODE_TIMEOUT: Final = 60.0
"""Upper bound for one TypeScript step or build (never a sleep)."""


def prepare_package() -> None:
    """Check that `npm ci` ran, build the TypeScript client it uses (from the current protos)
    and compile."""
    if not (PACKAGE / "node_modules" / ".bin" / "tsc").exists():
        raise RuntimeError(
            f"The TypeScript interop package is not installed: run `npm ci` in {PACKAGE} (`make test` does)."
        )
    build_client()
    subprocess.run(["npm", "run", "--silent", "build"], cwd=PACKAGE, check=True, timeout=NODE_TIMEOUT)


async def run_node(script: str, *args: str, model_url: str) -> str:
    """Run the compiled `src/<script>.ts`; its stdout, or an error with its stderr."""
    environment = {
        **os.environ,
        "OPENAI_BASE_URL": model_url,
        "OPENAI_API_KEY": "sk-test-typescript",
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
    }
    code, stdout, stderr = await run_to_completion(
        "node", f"dist/{script}.js", *args, limit_s=NODE_TIMEOUT, cwd=PACKAGE, env=environment
    )
    if code != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed ({code}):\n{stderr}")
    return stdout


async def run_scenario(command: str, spec: Mapping[str, Any], *, model_url: str) -> Any:
    """One step of `src/scenarios.ts` (see its docstring for the commands and the spec)."""
    return json.loads(await run_node("scenarios", command, json.dumps(spec), model_url=model_url))
