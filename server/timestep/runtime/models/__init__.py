"""Model providers: routing model names to OpenAI, Ollama (local and cloud), the local model
(llama.cpp in-process) or registered providers."""

from timestep.runtime.models.errors import ModelNotConfiguredError, ModelProviderError
from timestep.runtime.models.local import LocalModel, LocalModelProvider
from timestep.runtime.models.multi import MultiModelProvider
from timestep.runtime.models.ollama import OllamaModel, OllamaModelProvider
from timestep.runtime.models.provider_map import MultiModelProviderMap
from timestep.settings import split_model_name

__all__ = [
    "LocalModel",
    "LocalModelProvider",
    "ModelNotConfiguredError",
    "ModelProviderError",
    "MultiModelProvider",
    "MultiModelProviderMap",
    "OllamaModel",
    "OllamaModelProvider",
    "split_model_name",
]
