"""Turn exceptions from a run into stable error codes with messages a person can act on."""

from __future__ import annotations

import openai
from agents import MaxTurnsExceeded, ModelBehaviorError, UserError

from timestep.domain import RunError


def describe_failure(error: BaseException) -> RunError:
    if isinstance(error, MaxTurnsExceeded):
        return RunError("max_turns_exceeded", f"The run used up its turn limit: {error}")
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return RunError(
            "model_auth",
            f"The model provider refused the API key ({error.status_code}). Check OPENAI_API_KEY "
            "in the service's environment.",
        )
    if isinstance(error, openai.APIConnectionError):
        return RunError(
            "model_unreachable",
            f"Could not reach the model provider ({error}). Check OPENAI_BASE_URL and the network.",
        )
    if isinstance(error, openai.APIStatusError):
        return RunError("model_error", f"The model provider answered {error.status_code}: {error.message}")
    if isinstance(error, ModelBehaviorError):
        return RunError("model_behavior", f"The model did something the agent cannot handle: {error}")
    if isinstance(error, UserError):
        return RunError("agent_error", f"The agent is misconfigured: {error}")
    return RunError("internal", f"The run failed unexpectedly: {type(error).__name__}: {error}")
