"""The local model without running it: how a conversation and its tools are put to a small model,
how a forced tool call is read back, which file is loaded, and why a `local/…` model cannot run
— each an actionable message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from agents import Agent, ModelSettings
from openai.types.chat import ChatCompletionMessageParam
from timestep import LocalModelProvider, ModelNotConfiguredError, ModelProviderError, MultiModelProvider
from timestep.examples.agents import AGENTS, LOCAL_AGENTS
from timestep.runtime.models.local_files import model_file_problem
from timestep.runtime.models.local_prompt import (
    ToolSpec,
    call_schema,
    forced_tools,
    prompt_messages,
    read_call,
)
from timestep.runtime.pricing import Price, PriceTable
from timestep.runtime.providers import ModelConfig
from timestep.settings import local_model_name, provider_limits_key

MODEL = "local/gemma3-270m"
EMAIL = ToolSpec(
    "send_email",
    "Send an email.",
    {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]},
)
WEATHER = ToolSpec(
    "get_weather", "Get the weather.", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def messages(*items: dict[str, Any]) -> list[ChatCompletionMessageParam]:
    return [cast(ChatCompletionMessageParam, item) for item in items]


@pytest.mark.parametrize("choice", [None, "auto", "none"])
def test_without_a_forced_choice_the_reply_is_text(choice: str | None) -> None:
    assert forced_tools(choice, [EMAIL, WEATHER], MODEL) == []


def test_a_named_tool_or_required_forces_a_call() -> None:
    assert forced_tools("send_email", [EMAIL, WEATHER], MODEL) == [EMAIL]
    assert forced_tools("required", [EMAIL, WEATHER], MODEL) == [EMAIL, WEATHER]
    assert forced_tools("required", [], MODEL) == []


def test_a_forced_tool_that_is_not_offered_is_a_model_error_naming_the_offered_tools() -> None:
    with pytest.raises(ModelProviderError) as caught:
        forced_tools("issue_refund", [EMAIL, WEATHER], MODEL)

    assert caught.value.code == "model_error"
    assert "'issue_refund'" in caught.value.message
    assert "send_email, get_weather" in caught.value.message


def test_the_call_schema_admits_only_the_forced_tools_with_their_arguments() -> None:
    single = call_schema([EMAIL])
    either = call_schema([EMAIL, WEATHER])

    assert single["properties"]["name"] == {"const": "send_email"}
    assert single["properties"]["arguments"] == EMAIL.parameters
    assert single["additionalProperties"] is False
    assert [option["properties"]["name"]["const"] for option in either["anyOf"]] == [
        "send_email",
        "get_weather",
    ]


def test_a_generated_call_is_read_with_its_arguments_as_json() -> None:
    call = read_call('{"name": "send_email", "arguments": {"to": "bob@example.com"}}', [EMAIL], MODEL, "stop")

    assert call.name == "send_email"
    assert json.loads(call.arguments_json) == {"to": "bob@example.com"}
    assert call.call_id.startswith("call_")


def test_a_call_cut_off_by_max_tokens_is_a_model_behavior_error_that_says_so() -> None:
    with pytest.raises(ModelProviderError) as caught:
        read_call('{"name": "send_email", "arguments": {"to": "bo', [EMAIL], MODEL, "length")

    assert caught.value.code == "model_behavior"
    assert "max_tokens" in caught.value.message


def test_the_conversation_becomes_one_system_text_and_alternating_turns() -> None:
    prompt = prompt_messages(
        "Be brief.",
        messages(
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": "Email Bob"},
            {"role": "user", "content": [{"type": "text", "text": "that I am late"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "send_email", "arguments": '{"to": "b"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sent"},
        ),
        forced=[],
        output_schema=None,
        model=MODEL,
    )

    assert prompt == [
        {"role": "system", "content": "Be brief.\n\nUse tools."},
        {"role": "user", "content": "Email Bob\n\nthat I am late"},
        {"role": "assistant", "content": '{"name": "send_email", "arguments": {"to": "b"}}'},
        {"role": "user", "content": "Result of send_email: sent"},
    ]


def test_forced_tools_and_structured_outputs_are_described_in_the_system_text() -> None:
    forced = prompt_messages(
        None, messages({"role": "user", "content": "hi"}), forced=[EMAIL], output_schema=None, model=MODEL
    )
    structured = prompt_messages(
        None,
        messages({"role": "user", "content": "hi"}),
        forced=[],
        output_schema={"type": "object"},
        model=MODEL,
    )

    assert forced[0]["role"] == "system"
    assert "send_email: Send an email." in forced[0]["content"]
    assert structured[0]["content"].endswith('JSON schema: {"type": "object"}')


def test_a_conversation_opening_with_the_assistant_gets_an_empty_user_turn_first() -> None:
    prompt = prompt_messages(
        None, messages({"role": "assistant", "content": "Hello"}), forced=[], output_schema=None, model=MODEL
    )

    assert [turn["role"] for turn in prompt] == ["user", "assistant"]


def test_content_is_passed_to_the_model_as_it_is() -> None:
    text = "nul\x00 emoji 🧪 lone \ud800 surrogate"
    prompt = prompt_messages(
        None, messages({"role": "user", "content": text}), forced=[], output_schema=None, model=MODEL
    )

    assert prompt[-1]["content"] == text


def test_an_image_is_refused_as_unsupported_input() -> None:
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    with pytest.raises(ModelProviderError) as caught:
        prompt_messages(
            None, messages({"role": "user", "content": image}), forced=[], output_schema=None, model=MODEL
        )

    assert caught.value.code == "model_input_unsupported"
    assert "text only" in caught.value.message


# ----- which file, and why it cannot run -------------------------------------------------------


def test_a_model_file_is_named_by_its_stem_and_the_packaged_one_is_gemma3_270m() -> None:
    assert local_model_name("/models/qwen2.5-0.5b-instruct.gguf") == "qwen2.5-0.5b-instruct"
    assert local_model_name("") == "gemma3-270m"


def test_a_missing_file_is_named_with_the_variable_to_fix(tmp_path: Path) -> None:
    problem = model_file_problem(str(tmp_path / "absent.gguf"))

    assert problem is not None
    assert "TIMESTEP_LOCAL_MODEL" in problem
    assert "absent.gguf, which does not exist" in problem


def test_a_file_that_is_not_gguf_is_refused_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes")
    directory = tmp_path / "models"
    directory.mkdir()

    problem = model_file_problem(str(notes))

    assert problem is not None
    assert "is not a GGUF model file" in problem
    assert "b'just'" in problem
    assert "cannot be read" in (model_file_problem(str(directory)) or "")


def test_a_gguf_file_passes_the_check(tmp_path: Path) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00")

    assert model_file_problem(str(model)) is None


def test_a_local_model_of_another_name_is_not_configured_and_the_message_names_the_served_one(
    tmp_path: Path,
) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00")
    routed = MultiModelProvider(openai_api_key="")
    routed.provider_map.add_provider("local", LocalModelProvider(str(model)))

    problem = routed.missing("local/gemma3-270m")
    with pytest.raises(ModelNotConfiguredError):
        routed.get_model("local/other")

    assert problem is not None
    assert "local/tiny" in problem
    assert "TIMESTEP_LOCAL_MODEL" in problem
    assert routed.missing("local/tiny") is None


def test_the_local_prefix_is_known_has_limits_of_its_own_and_costs_nothing() -> None:
    assert "local" in MultiModelProvider(openai_api_key="").known_prefixes()
    assert provider_limits_key("local/gemma3-270m", {}) == "local"
    assert PriceTable().price_of("local/gemma3-270m") == Price(0.0, 0.0, 0.0)


def test_openai_counts_as_configured_with_a_key_or_an_endpoint() -> None:
    assert not ModelConfig().openai_configured
    assert ModelConfig(openai_api_key="sk-x").openai_configured
    assert ModelConfig(openai_base_url="http://127.0.0.1:1/v1").openai_configured


def test_the_local_examples_are_the_same_agents_and_force_the_approval_tool_first() -> None:
    local: dict[str, Agent[Any]] = {agent.name: agent for agent in LOCAL_AGENTS}
    remote: dict[str, Agent[Any]] = {agent.name: agent for agent in AGENTS}

    assert local.keys() == remote.keys()
    assert {agent.model for agent in LOCAL_AGENTS} == {MODEL}
    assert local["assistant"].model_settings == ModelSettings(tool_choice="send_email")
    assert local["assistant"].reset_tool_choice is True
    assert [tool.name for tool in local["assistant"].tools] == [
        tool.name for tool in remote["assistant"].tools
    ]
