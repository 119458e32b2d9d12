"""The TypeScript package is installed (`npm ci`, which `make test` runs) and its gRPC client is
generated from the current protos once per test session."""

from __future__ import annotations

import pytest

from tests.interop.typescript import prepare_package


@pytest.fixture(scope="session")
def typescript_package() -> None:
    prepare_package()
