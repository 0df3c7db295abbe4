"""The Ollama adapter against a fake Ollama over real HTTP: what a client would
get back through sparkplane, and what Ollama is asked."""

from __future__ import annotations

import asyncio
import base64
import calendar
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from sparkplane.backends.base import (
    DeviceUnreachable,
    InferenceRequest,
    Operation,
    Timeouts,
    Upstream,
)
from sparkplane.backends.http import new_session
from sparkplane.backends.ollama import OllamaBackend
from tests.fakes.ollama import FakeOllama, OllamaBehaviour

TIMEOUTS = Timeouts(connect=2, first_byte=5, idle=5, response=10)
DEVICE_MODEL = "llama3.2:latest"
REPLY = "The sky is blue because of Rayleigh scattering."


@pytest.fixture
async def ollama() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(OllamaBehaviour(reply=REPLY)) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session() as s:
        yield s


@pytest.fixture
def backend(ollama: FakeOllama, session: aiohttp.ClientSession) -> OllamaBackend:
    return OllamaBackend(ollama.url, session, probe_timeout=2)


def request(op: Operation, payload: dict[str, Any], *, stream: bool = False) -> InferenceRequest:
    return InferenceRequest(op=op, model=payload["model"], raw=orjson.dumps(payload), stream=stream)


def chat(stream: bool = False, **extra: Any) -> InferenceRequest:
    payload = {"model": "my-alias", "messages": [{"role": "user", "content": "Why blue?"}]}
    return request(Operation.CHAT, {**payload, "stream": stream, **extra}, stream=stream)


async def send(
    backend: OllamaBackend, req: InferenceRequest, model: str = DEVICE_MODEL
) -> Upstream:
    async with asyncio.timeout(10):
        return await backend.send(req, model, TIMEOUTS)


async def read_stream(upstream: Upstream) -> list[Any]:
    """The SSE events of a streamed answer: JSON documents, and "[DONE]"."""
    data = b""
    async with asyncio.timeout(10):
        async for chunk in upstream.chunks():
            assert chunk, "no empty chunks"
            data += chunk
    upstream.close()
    out: list[Any] = []
    for block in data.split(b"\n\n"):
        if block:
            text = block.removeprefix(b"data: ")
            out.append("[DONE]" if text == b"[DONE]" else orjson.loads(text))
    return out


async def test_probe_lists_models_and_version(backend: OllamaBackend, ollama: FakeOllama) -> None:
    result = await backend.probe()
    assert result.kind == "ollama"
    assert result.models == ollama.behaviour.models
    assert result.version == ollama.behaviour.version


async def test_chat_answer_is_an_openai_chat_completion(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    upstream = await send(backend, chat(temperature=0.1, max_tokens=100, stop="\n"))
    assert upstream.status == 200
    completion = ChatCompletion.model_validate_json(await upstream.read())
    assert completion.model == "my-alias"
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2
    sent = ollama.last
    assert sent.path == "/api/chat"
    assert sent.body["model"] == DEVICE_MODEL
    assert sent.body["stream"] is False
    assert sent.body["options"] == {"temperature": 0.1, "num_predict": 100, "stop": ["\n"]}


async def test_chat_answer_keeps_ollamas_creation_time(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.created_at = "2023-08-04T08:52:19.385406455-07:00"
    completion = ChatCompletion.model_validate_json(await (await send(backend, chat())).read())
    assert completion.created == calendar.timegm((2023, 8, 4, 15, 52, 19))


async def test_max_tokens_reached_is_finish_reason_length(backend: OllamaBackend) -> None:
    completion = ChatCompletion.model_validate_json(
        await (await send(backend, chat(max_tokens=2))).read()
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2


async def test_chat_stream_is_openai_chunks_then_done(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    upstream = await send(backend, chat(stream=True))
    assert upstream.status == 200
    assert upstream.content_type == "text/event-stream"
    out = await read_stream(upstream)
    assert out[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in out[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.model for c in chunks} == {"my-alias"}
    assert len({c.id for c in chunks}) == 1
    assert ollama.last.body["stream"] is True


async def test_chat_stream_with_usage_and_lines_split_across_reads(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.split_lines = True
    upstream = await send(backend, chat(stream=True, stream_options={"include_usage": True}))
    out = await read_stream(upstream)
    chunks = [ChatCompletionChunk.model_validate(e) for e in out[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    usage = chunks[-1].usage
    assert usage is not None
    assert chunks[-1].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens) == (2, ollama.behaviour.chunks)


async def test_tool_calls_come_back_in_openai_shape(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.tool_calls = [
        {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    completion = ChatCompletion.model_validate_json(
        await (await send(backend, chat(tools=tools))).read()
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert orjson.loads(call.function.arguments) == {"city": "Tokyo"}
    assert ollama.last.body["tools"] == tools

    out = await read_stream(await send(backend, chat(stream=True, tools=tools)))
    chunks = [ChatCompletionChunk.model_validate(e) for e in out[:-1]]
    deltas = [d for c in chunks for d in c.choices[0].delta.tool_calls or []]
    assert [d.function.name for d in deltas if d.function] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_completion_plain_and_streamed(backend: OllamaBackend, ollama: FakeOllama) -> None:
    payload = {"model": "my-alias", "prompt": "Why is the sky", "suffix": "!", "seed": 3}
    upstream = await send(backend, request(Operation.COMPLETION, payload))
    completion = Completion.model_validate_json(await upstream.read())
    assert completion.choices[0].text == REPLY
    assert completion.model == "my-alias"
    assert ollama.last.path == "/api/generate"
    assert ollama.last.body == {
        "model": DEVICE_MODEL,
        "prompt": "Why is the sky",
        "stream": False,
        "suffix": "!",
        "raw": False,
        "options": {"seed": 3},
    }

    streamed = request(Operation.COMPLETION, {**payload, "stream": True}, stream=True)
    out = await read_stream(await send(backend, streamed))
    assert out[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in out[:-1]) == REPLY
    final = Completion.model_validate(out[-2])
    assert final.choices[0].finish_reason == "stop"


async def test_embeddings(backend: OllamaBackend, ollama: FakeOllama) -> None:
    payload = {"model": "my-embedder", "input": ["one fish", "two fish"], "dimensions": 4}
    upstream = await send(backend, request(Operation.EMBEDDING, payload), "all-minilm:latest")
    result = CreateEmbeddingResponse.model_validate_json(await upstream.read())
    assert result.model == "my-embedder"
    assert [len(d.embedding) for d in result.data] == [4, 4]
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 4
    assert ollama.last.path == "/api/embed"
    assert ollama.last.body["truncate"] is True

    as_base64 = request(Operation.EMBEDDING, {**payload, "encoding_format": "base64"})
    doc = orjson.loads(await (await send(backend, as_base64, "all-minilm:latest")).read())
    decoded = [list(struct.unpack("<4f", base64.b64decode(d["embedding"]))) for d in doc["data"]]
    # The fake's values are multiples of 1/128: exact in float32.
    assert decoded == [d.embedding for d in result.data]


async def test_unknown_model_is_an_openai_404(backend: OllamaBackend) -> None:
    for stream in (False, True):
        upstream = await send(backend, chat(stream=stream), "no-such-model")
        assert upstream.status == 404
        error = orjson.loads(await upstream.read())["error"]
        assert error["code"] == "model_not_found"
        assert "no-such-model" in error["message"]
        upstream.close()


@pytest.mark.parametrize("status", [400, 500, 503])
async def test_ollama_errors_keep_their_status_with_openai_bodies(
    backend: OllamaBackend, ollama: FakeOllama, status: int
) -> None:
    ollama.behaviour.fail_status = status
    upstream = await send(backend, chat(stream=True))
    assert upstream.status == status
    error = orjson.loads(await upstream.read())["error"]
    assert error["message"] == ollama.behaviour.fail_message
    assert set(error) == {"message", "type", "param", "code"}


async def test_requests_ollama_cannot_serve_are_refused_without_calling_it(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    payload = {"model": "my-alias", "prompt": [1, 2, 3]}
    upstream = await send(backend, request(Operation.COMPLETION, payload))
    assert upstream.status == 400
    error = orjson.loads(await upstream.read())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "prompt"
    assert ollama.requests == []


async def test_an_error_line_mid_stream_becomes_an_error_event(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.error_after = 2
    out = await read_stream(await send(backend, chat(stream=True)))
    assert out[-1] == "[DONE]"
    assert out[-2]["error"]["message"] == ollama.behaviour.error_message
    assert all("choices" in e for e in out[:-2])


async def test_a_broken_stream_raises_device_unreachable(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.break_stream_after = 2
    upstream = await send(backend, chat(stream=True))
    with pytest.raises(DeviceUnreachable):
        await read_stream(upstream)


async def test_a_stopped_server_is_unreachable(backend: OllamaBackend, ollama: FakeOllama) -> None:
    await ollama.stop()
    with pytest.raises(DeviceUnreachable):
        await send(backend, chat())
