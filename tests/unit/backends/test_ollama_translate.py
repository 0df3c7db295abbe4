"""OpenAI requests translated to Ollama's native API (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from sparkplane.backends.base import Operation
from sparkplane.backends.ollama_translate import Unsupported, to_ollama

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def chat(payload: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    base = {"model": "client-name", "messages": [{"role": "user", "content": "hi"}]}
    call = to_ollama(Operation.CHAT, {**base, **payload}, "llama3.2:latest", stream=stream)
    assert call.path == "/api/chat"
    return call.body


def test_chat_names_the_device_model_and_always_says_whether_to_stream() -> None:
    assert chat({})["model"] == "llama3.2:latest"
    assert chat({}, stream=False)["stream"] is False
    assert chat({}, stream=True)["stream"] is True
    assert "options" not in chat({})


def test_sampling_fields_become_ollama_options() -> None:
    body = chat(
        {
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 7,
            "max_tokens": 50,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "top_k": 20,
            "min_p": 0.05,
            "repeat_penalty": 1.1,
            "stop": "\n\n",
            "keep_alive": "10m",
        }
    )
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "num_predict": 50,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "top_k": 20,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "stop": ["\n\n"],
    }
    assert body["keep_alive"] == "10m"


def test_stop_list_and_max_completion_tokens_win() -> None:
    body = chat({"stop": ["a", "b"], "max_tokens": 50, "max_completion_tokens": 9})
    assert body["options"]["stop"] == ["a", "b"]
    assert body["options"]["num_predict"] == 9


def test_text_parts_are_joined_and_data_url_images_become_images() -> None:
    parts = [
        {"type": "text", "text": "What is"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "in this picture?"},
    ]
    body = chat({"messages": [{"role": "user", "content": parts}]})
    assert body["messages"] == [
        {"role": "user", "content": "What is\nin this picture?", "images": [PNG]}
    ]


def test_image_urls_that_are_not_data_urls_are_refused() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(Unsupported) as refused:
        chat({"messages": [{"role": "user", "content": parts}]})
    assert refused.value.status == 400
    assert refused.value.param == "messages[0].content[0].image_url"


def test_unknown_content_parts_are_refused() -> None:
    parts = [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]
    with pytest.raises(Unsupported, match="input_audio"):
        chat({"messages": [{"role": "user", "content": parts}]})


def test_developer_messages_are_system_messages_to_ollama() -> None:
    body = chat({"messages": [{"role": "developer", "content": "be brief"}]})
    assert body["messages"][0]["role"] == "system"


def test_tools_calls_and_results_map_to_ollama_shapes() -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    history = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "11 degrees"},
    ]
    body = chat({"messages": history, "tools": [tool]})
    assert body["tools"] == [tool]
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "content": "11 degrees",
        "tool_name": "get_weather",
    }


def test_tool_choice_none_sends_no_tools() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    assert "tools" not in chat({"tools": [tool], "tool_choice": "none"})


def test_tool_call_arguments_that_are_not_json_objects_are_refused() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2"}}
    messages = [{"role": "assistant", "content": None, "tool_calls": [call]}]
    with pytest.raises(Unsupported):
        chat({"messages": messages})


def test_response_format_becomes_format() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    assert chat({"response_format": {"type": "json_object"}})["format"] == "json"
    spec = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert chat({"response_format": spec})["format"] == schema
    assert "format" not in chat({"response_format": {"type": "text"}})
    with pytest.raises(Unsupported):
        chat({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})


def test_more_than_one_choice_is_refused() -> None:
    with pytest.raises(Unsupported) as refused:
        chat({"n": 2})
    assert refused.value.param == "n"


@pytest.mark.parametrize("prompt", ["Once upon", ["Once upon"]])
def test_completion_prompts_go_to_generate_as_one_string(prompt: object) -> None:
    payload = {"model": "m", "prompt": prompt, "suffix": "The end.", "max_tokens": 5}
    call = to_ollama(Operation.COMPLETION, payload, "llama3.2:latest", stream=True)
    assert call.path == "/api/generate"
    assert call.body == {
        "model": "llama3.2:latest",
        "prompt": "Once upon",
        "stream": True,
        "suffix": "The end.",
        "raw": False,
        "options": {"num_predict": 5},
    }


@pytest.mark.parametrize("prompt", [[1, 2, 3], [[1, 2]], ["a", "b"], []])
def test_prompts_ollama_cannot_complete_are_refused(prompt: object) -> None:
    with pytest.raises(Unsupported) as refused:
        to_ollama(Operation.COMPLETION, {"model": "m", "prompt": prompt}, "x", stream=False)
    assert refused.value.param == "prompt"


def test_embeddings_go_to_embed_with_truncation_and_dimensions() -> None:
    payload = {"model": "m", "input": ["a", "b"], "dimensions": 4}
    call = to_ollama(Operation.EMBEDDING, payload, "all-minilm:latest", stream=False)
    assert call.path == "/api/embed"
    assert call.body == {
        "model": "all-minilm:latest",
        "input": ["a", "b"],
        "truncate": True,
        "dimensions": 4,
    }


def test_token_id_embedding_inputs_are_refused() -> None:
    with pytest.raises(Unsupported):
        to_ollama(Operation.EMBEDDING, {"model": "m", "input": [1, 2]}, "x", stream=False)
