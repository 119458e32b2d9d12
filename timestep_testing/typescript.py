"""The TypeScript client package (clients/typescript), built once per test process for the tests
that use it (its own tests, and the interop package's, which depends on it)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Final

CLIENT_PACKAGE: Final = Path(__file__).resolve().parent.parent / "clients" / "typescript"
BUILD_TIMEOUT: Final = 120.0
"""Upper bound for generating and compiling it (never a sleep)."""


@functools.cache
def build_client() -> None:
    """Generate the client's code from the current protos and compile it (strict: a type error
    fails the tests that need it)."""
    if not (CLIENT_PACKAGE / "node_modules" / ".bin" / "tsc").exists():
        raise RuntimeError(
            f"The TypeScript client is not installed: `npm ci` in {CLIENT_PACKAGE} (`make test`)."
        )
    subprocess.run(["npm", "run", "--silent", "build"], cwd=CLIENT_PACKAGE, check=True, timeout=BUILD_TIMEOUT)
