"""Model routing: which provider a model name goes to, where Ollama models run, and why a model
cannot be used — decided from the name alone, without any model call."""

from __future__ import annotations

import pytest
from agents import Model, ModelProvider, OpenAIResponsesModel
from timestep import (
    ModelNotConfiguredError,
    MultiModelProvider,
    MultiModelProviderMap,
    OllamaModelProvider,
)
from timestep.runtime.models import OllamaModel
from timestep.runtime.models.ollama import cloud_api_name, is_cloud_model, normalize_host
from timestep.runtime.providers import ModelConfig

LOCAL = "http://127.0.0.1:11999"
CLOUD = "https://cloud.example"


class EchoProvider(ModelProvider):
    """A registered provider that records the names it is asked for."""

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def get_model(self, model_name: str | None) -> Model:
        self.asked.append(model_name)
        return OllamaModelProvider(api_key="", base_url=LOCAL).get_model("stand-in")


def provider() -> MultiModelProvider:
    models = MultiModelProviderMap()
    models.add_provider("ollama", OllamaModelProvider(api_key="", base_url=LOCAL, cloud_base_url=CLOUD))
    return MultiModelProvider(models, openai_api_key="sk-routing")


@pytest.mark.parametrize(
    ("name", "model_type"),
    [
        ("gpt-4.1", OpenAIResponsesModel),
        ("openai/gpt-4.1", OpenAIResponsesModel),
        ("ollama/llama3.2", OllamaModel),
        ("ollama/hf.co/org/model:Q4_K_M", OllamaModel),
    ],
)
def test_each_prefix_routes_to_its_provider(name: str, model_type: type[Model]) -> None:
    assert isinstance(provider().get_model(name), model_type)


def test_the_openai_prefix_is_dropped_and_an_ollama_model_keeps_its_whole_path() -> None:
    routed = provider()

    openai_model = routed.get_model("openai/gpt-4.1")
    ollama_model = routed.get_model("ollama/hf.co/org/model:Q4_K_M")

    assert isinstance(openai_model, OpenAIResponsesModel)
    assert openai_model.model == "gpt-4.1"
    assert isinstance(ollama_model, OllamaModel)
    assert ollama_model.target.model == "hf.co/org/model:Q4_K_M"


def test_an_unknown_prefix_is_a_clear_error_listing_the_known_prefixes() -> None:
    routed = provider()
    routed.provider_map.add_provider("acme", EchoProvider())

    with pytest.raises(ModelNotConfiguredError) as caught:
        routed.get_model("mistral/large")

    assert caught.value.code == "model_not_configured"
    assert "'mistral'/" in caught.value.message
    assert "acme/, local/, ollama/, openai/" in caught.value.message
    assert "MultiModelProviderMap.add_provider" in caught.value.message


def test_a_registered_prefix_gets_the_name_without_its_prefix_and_wins_over_built_ins() -> None:
    acme, replacement = EchoProvider(), EchoProvider()
    models = MultiModelProviderMap()
    models.add_provider("acme", acme)
    models.add_provider("openai", replacement)
    routed = MultiModelProvider(models, openai_api_key="")

    routed.get_model("acme/rocket-1")
    routed.get_model("openai/gpt-4.1")

    assert acme.asked == ["rocket-1"]
    assert replacement.asked == ["gpt-4.1"], "a map entry replaces the built-in OpenAI route"
    assert routed.missing("openai/gpt-4.1") is None, "the registered provider needs no OpenAI key"


def test_the_provider_map_api() -> None:
    first, second = EchoProvider(), EchoProvider()
    models = MultiModelProviderMap()

    models.add_provider("a", first)

    assert models.has_prefix("a")
    assert models.get_provider("a") is first
    assert models.get_provider("b") is None
    mapping = models.get_mapping()
    mapping["b"] = second
    assert not models.has_prefix("b"), "get_mapping returns a copy"
    models.set_mapping(mapping)
    assert models.get_mapping() == {"a": first, "b": second}
    models.remove_provider("a")
    assert not models.has_prefix("a")
    with pytest.raises(KeyError):
        models.remove_provider("a")
    with pytest.raises(ValueError, match="no '/'"):
        models.add_provider("a/b", first)


def test_an_openai_model_without_a_key_is_not_configured_but_an_ollama_model_is() -> None:
    config = ModelConfig(openai_api_key="", ollama_host=LOCAL)

    problem = config.missing("gpt-4.1")

    assert problem is not None
    assert "OPENAI_API_KEY" in problem
    assert config.missing(None) is not None, "the SDK's default model is an OpenAI model"
    assert config.missing("ollama/llama3.2") is None
    assert config.missing("ollama/gpt-oss:120b-cloud") is None, "a signed-in local Ollama runs it"
    with pytest.raises(ModelNotConfiguredError, match="OPENAI_API_KEY"):
        config.provider().get_model("openai/gpt-4.1")


def test_ollama_cloud_as_the_only_host_needs_an_api_key() -> None:
    without_key = OllamaModelProvider(api_key="", base_url=CLOUD, cloud_base_url=CLOUD)
    with_key = OllamaModelProvider(api_key="ok-key", base_url=CLOUD, cloud_base_url=CLOUD)

    problem = without_key.missing("llama3.2")

    assert problem is not None
    assert "OLLAMA_API_KEY" in problem
    assert with_key.missing("llama3.2") is None
    assert with_key.target("llama3.2").api_key == "ok-key"


def test_where_a_model_runs_is_decided_per_name_every_time() -> None:
    ollama = OllamaModelProvider(api_key="ok-key", base_url=LOCAL, cloud_base_url=CLOUD)

    first_local = ollama.target("llama3.2")
    cloud = ollama.target("gpt-oss:120b-cloud")
    tagged_cloud = ollama.target("glm-4.6:cloud")
    local_again = ollama.target("qwen3:4b")

    assert (first_local.host, first_local.model, first_local.api_key) == (LOCAL, "llama3.2", "")
    assert (cloud.host, cloud.model, cloud.api_key, cloud.cloud) == (CLOUD, "gpt-oss:120b", "ok-key", True)
    assert (tagged_cloud.host, tagged_cloud.model) == (CLOUD, "glm-4.6")
    assert (local_again.host, local_again.model, local_again.api_key) == (LOCAL, "qwen3:4b", "")


def test_without_a_key_cloud_names_go_unchanged_to_the_local_ollama() -> None:
    target = OllamaModelProvider(api_key="", base_url=LOCAL, cloud_base_url=CLOUD).target("gpt-oss:20b-cloud")

    assert (target.host, target.model, target.api_key, target.cloud) == (
        LOCAL,
        "gpt-oss:20b-cloud",
        "",
        False,
    )


def test_the_environment_configures_an_ollama_provider_made_without_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box:8080")
    monkeypatch.setenv("OLLAMA_API_KEY", "env-key")

    ollama = OllamaModelProvider()

    assert ollama.target("llama3.2").host == "http://gpu-box:8080"
    assert ollama.target("gpt-oss:120b-cloud").api_key == "env-key"
    assert ollama.target("gpt-oss:120b-cloud").host == "https://ollama.com"


@pytest.mark.parametrize(
    ("value", "base_url"),
    [
        ("", "http://localhost:11434"),
        ("localhost", "http://localhost:11434"),
        ("0.0.0.0:11434", "http://0.0.0.0:11434"),
        ("http://box:8000/", "http://box:8000"),
        ("https://ollama.example/proxy/", "https://ollama.example/proxy"),
        ("[::1]:11434", "http://[::1]:11434"),
    ],
)
def test_ollama_host_values_are_normalized_like_ollama_does(value: str, base_url: str) -> None:
    assert normalize_host(value) == base_url


def test_cloud_model_names() -> None:
    assert is_cloud_model("gpt-oss:120b-cloud")
    assert is_cloud_model("glm-4.6:cloud")
    assert not is_cloud_model("llama3.2")
    assert not is_cloud_model("cloudy:7b")
    assert cloud_api_name("gpt-oss:120b-cloud") == "gpt-oss:120b"
    assert cloud_api_name("llama3.2") == "llama3.2"


def test_the_model_config_never_shows_its_keys() -> None:
    config = ModelConfig(openai_api_key="sk-secret-openai", ollama_api_key="secret-ollama")

    assert "sk-secret-openai" not in repr(config)
    assert "secret-ollama" not in repr(config)
