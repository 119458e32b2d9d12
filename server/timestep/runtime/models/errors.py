"""Errors a model provider raises when it cannot serve a model call, each with a stable run
error code and a message that says which host or key is involved and what to do.

`timestep.runtime.failures.describe_failure` turns them into the run's error as they are. The
messages never contain an API key.
"""

from __future__ import annotations

from agents.exceptions import AgentsException

from timestep.domain import RunErrorCode


class ModelProviderError(AgentsException):
    """A model call that failed for a reason the provider could name."""

    def __init__(self, code: RunErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ModelNotConfiguredError(ModelProviderError):
    """The model's provider lacks what it needs (an API key, a known prefix) to be called at all."""

    def __init__(self, message: str) -> None:
        super().__init__(RunErrorCode.MODEL_NOT_CONFIGURED, message)


class LocalModelNotInstalledError(ModelNotConfiguredError):
    """The local model's packages (the `local` extra) are not installed; the message names the
    command that installs them."""
