"""Ollama's whole answers and errors translated to OpenAI's shapes (pure)."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from sparkplane.backends.base import Operation
from sparkplane.backends.ollama_reply import answer, created_at, reply_for
from tests.unit.backends.ollama_samples import (
    WHEN,
    WHEN_EPOCH,
    chat_done,
    reply,
)


def test_chat_answer_is_a_valid_chat_completion_under_the_clients_model_name() -> None:
    doc = {**chat_done(prompt=26, generated=298), "message": {"role": "assistant", "content": "Hi"}}
    status, body = answer(reply(Operation.CHAT), 200, orjson.dumps(doc))
    assert status == 200
    completion = ChatCompletion.model_validate_json(body)
    assert completion.id == "chatcmpl-t0k"
    assert completion.model == "client-name"
    assert completion.created == WHEN_EPOCH
    assert completion.choices[0].message.content == "Hi"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (26, 298)
    assert completion.usage.total_tokens == 324


def test_chat_answer_with_tool_calls() -> None:
    calls = [
        {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},
        {"function": {"name": "get_time", "arguments": {"zone": "JST"}}},
    ]
    message = {"role": "assistant", "content": "", "tool_calls": calls}
    _, body = answer(reply(Operation.CHAT), 200, orjson.dumps({**chat_done(), "message": message}))
    choice = ChatCompletion.model_validate_json(body).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    got = [(c.function.name, orjson.loads(c.function.arguments)) for c in choice.message.tool_calls]
    assert got == [("get_weather", {"city": "Tokyo"}), ("get_time", {"zone": "JST"})]
    assert len({c.id for c in choice.message.tool_calls}) == 2


def test_length_stop_and_thinking() -> None:
    message = {"role": "assistant", "content": "Hel", "thinking": "short answer"}
    doc = {**chat_done(reason="length"), "message": message}
    _, body = answer(reply(Operation.CHAT), 200, orjson.dumps(doc))
    completion = orjson.loads(body)
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["choices"][0]["message"]["reasoning_content"] == "short answer"


def test_generate_answer_is_a_valid_completion_and_echo_puts_the_prompt_first() -> None:
    doc = {"created_at": WHEN, "response": " there", "done": True, "done_reason": "stop"}
    _, body = answer(reply(Operation.COMPLETION, echo="Hello"), 200, orjson.dumps(doc))
    completion = Completion.model_validate_json(body)
    assert completion.id == "cmpl-t0k"
    assert completion.choices[0].text == "Hello there"
    assert completion.model == "client-name"


def test_embed_answer_is_a_valid_embedding_list() -> None:
    doc = {"model": "all-minilm", "embeddings": [[0.5, -0.25], [1.0, 0.0]], "prompt_eval_count": 8}
    _, body = answer(reply(Operation.EMBEDDING), 200, orjson.dumps(doc))
    result = CreateEmbeddingResponse.model_validate_json(body)
    assert [d.embedding for d in result.data] == [[0.5, -0.25], [1.0, 0.0]]
    assert [d.index for d in result.data] == [0, 1]
    assert result.usage.prompt_tokens == 8
    assert result.model == "client-name"


def test_embed_answer_in_base64_is_little_endian_float32() -> None:
    doc = {"embeddings": [[0.5, -0.25, 3.0]]}
    _, body = answer(reply(Operation.EMBEDDING, base64=True), 200, orjson.dumps(doc))
    encoded = orjson.loads(body)["data"][0]["embedding"]
    assert struct.unpack("<3f", base64.b64decode(encoded)) == (0.5, -0.25, 3.0)


def test_model_not_found_is_an_openai_404() -> None:
    status, body = answer(reply(Operation.CHAT), 404, b'{"error":"model \'nope\' not found"}')
    assert status == 404
    assert orjson.loads(body) == {
        "error": {
            "message": "model 'nope' not found",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


@pytest.mark.parametrize(
    ("status", "body", "type_"),
    [
        (400, b'{"error":"invalid options"}', "invalid_request_error"),
        (500, b'{"error":"llama runner process has terminated"}', "upstream_error"),
        (502, b"Bad Gateway", "upstream_error"),
    ],
)
def test_ollama_errors_keep_their_status(status: int, body: bytes, type_: str) -> None:
    got_status, got = answer(reply(Operation.COMPLETION), status, body)
    error = orjson.loads(got)["error"]
    assert got_status == status
    assert error["type"] == type_
    assert error["message"] in body.decode()


def test_a_200_that_is_not_an_answer_becomes_a_502() -> None:
    status, body = answer(reply(Operation.EMBEDDING), 200, b'{"model": "x"}')
    assert status == 502
    assert "malformed" in orjson.loads(body)["error"]["message"]


def test_created_at_reads_offsets_and_nanoseconds() -> None:
    assert created_at("2024-07-22T13:47:51.147561234-07:00", 0) == WHEN_EPOCH
    assert created_at("0001-01-01T00:00:00Z", 5) == 5
    assert created_at("yesterday", 5) == 5


def test_reply_for_reads_the_clients_wishes() -> None:
    payload = {"model": "alias", "prompt": ["p"], "echo": True}
    payload["stream_options"] = {"include_usage": True}
    r = reply_for(Operation.COMPLETION, payload, token="abc", now=12.9)
    assert (r.model, r.ident, r.created, r.echo, r.include_usage) == (
        "alias",
        "cmpl-abc",
        12,
        "p",
        True,
    )
