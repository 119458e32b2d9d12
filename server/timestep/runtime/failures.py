"""Turn exceptions from a run into stable error codes with messages a person can act on.

Model providers of our own (Ollama, routing) raise `ModelProviderError`s that already carry
their code and message; errors of the OpenAI SDK are named here, with the host they came from.
No message contains an API key.
"""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import urlsplit

import openai
from agents import MaxTurnsExceeded, ModelBehaviorError, UserError

from timestep.domain import RunError, RunErrorCode
from timestep.runtime.models.errors import ModelProviderError
from timestep.runtime.secrets import scrub
from timestep.runtime.steps import StepReplayError

E = TypeVar("E", bound=BaseException)


def describe_failure(error: BaseException) -> RunError:
    described = _describe(error)
    return RunError(described.code, scrub(described.message))


def _describe(error: BaseException) -> RunError:
    replay = caused_by(error, StepReplayError)
    if replay is not None:
        return RunError(replay.code, replay.message)
    if isinstance(error, ModelProviderError):
        return RunError(error.code, error.message)
    if isinstance(error, MaxTurnsExceeded):
        return RunError(RunErrorCode.MAX_TURNS_EXCEEDED, f"The run used up its turn limit: {error}")
    if isinstance(error, openai.APIConnectionError):
        return RunError(
            RunErrorCode.MODEL_UNREACHABLE,
            f"Could not reach the OpenAI API at {_origin(error)} ({error}). Check OPENAI_BASE_URL and "
            "the network.",
        )
    if isinstance(error, openai.APIStatusError):
        return _status_error(error)
    if isinstance(error, ModelBehaviorError):
        return RunError(
            RunErrorCode.MODEL_BEHAVIOR, f"The model did something the agent cannot handle: {error}"
        )
    if isinstance(error, UserError):
        return RunError(RunErrorCode.AGENT_ERROR, f"The agent is misconfigured: {error}")
    return RunError(RunErrorCode.INTERNAL, f"The run failed unexpectedly: {type(error).__name__}: {error}")


def caused_by(error: BaseException | None, kind: type[E]) -> E | None:
    """The `kind` exception behind `error`, itself or a cause of it (the SDK wraps an error of a
    tool call in a UserError)."""
    while error is not None:
        if isinstance(error, kind):
            return error
        error = error.__cause__
    return None


def _status_error(error: openai.APIStatusError) -> RunError:
    status = error.status_code
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return RunError(
            RunErrorCode.MODEL_AUTH,
            f"The OpenAI API at {_origin(error)} refused the API key ({status}). Check OPENAI_API_KEY "
            "in the service's environment.",
        )
    if isinstance(error, openai.NotFoundError):
        return RunError(
            RunErrorCode.MODEL_NOT_FOUND,
            f"The OpenAI API at {_origin(error)} answered 404: {error.message}. Check the model name "
            "(the agent's model or CreateRun.model).",
        )
    if isinstance(error, openai.RateLimitError):
        return RunError(
            RunErrorCode.MODEL_RATE_LIMITED,
            f"The OpenAI API at {_origin(error)} kept answering 429 (rate limited) after retries: "
            f"{error.message}. Wait before creating the run again, and check your OpenAI usage limits.",
        )
    return RunError(RunErrorCode.MODEL_ERROR, f"The model provider answered {status}: {error.message}")


def _origin(error: openai.APIConnectionError | openai.APIStatusError) -> str:
    """scheme://host[:port] of the request that failed (never its headers or query)."""
    parts = urlsplit(str(error.request.url))
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
