"""The real engines the suite runs behave like OpenAI-compatible servers.

These tests talk to the engines directly with the official `openai` SDK, so
a failure here means the test infrastructure (generated models, server
helper, fixtures) is broken, not sparkplane.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.engines.fixtures import MINILM_ALIAS, TINY_ALIAS, TINY_SPEC, ServerFactory
from tests.engines.llama_server import EngineError, LlamaServer

MINILM_DIM = 384


@contextmanager
def client_for(server: LlamaServer) -> Iterator[openai.OpenAI]:
    """An SDK client aimed straight at one engine; no retries, so failures show at once."""
    with openai.OpenAI(
        base_url=server.base_url, api_key="unused", max_retries=0, timeout=30
    ) as client:
        yield client


def cosine(a: list[float], b: list[float]) -> float:
    va, vb = np.asarray(a), np.asarray(b)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def test_models_lists_the_alias(llama_engine: LlamaServer) -> None:
    with client_for(llama_engine) as client:
        ids = [model.id for model in client.models.list()]
    assert ids == [TINY_ALIAS]


def test_chat_returns_a_message_and_usage(llama_engine: LlamaServer) -> None:
    with client_for(llama_engine) as client:
        reply = client.chat.completions.create(
            model=TINY_ALIAS,
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
        )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"length", "stop"}
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 1 <= reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_stream_yields_several_chunks_and_ends(llama_engine: LlamaServer) -> None:
    with client_for(llama_engine) as client:
        stream = client.chat.completions.create(
            model=TINY_ALIAS,
            messages=[{"role": "user", "content": "Count to five."}],
            max_tokens=8,
            stream=True,
        )
        chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) >= 3
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices[0].finish_reason in {"length", "stop"}
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


@pytest.mark.parametrize("max_tokens", [1, 5, 16])
def test_completion_stops_at_max_tokens(llama_engine: LlamaServer, max_tokens: int) -> None:
    with client_for(llama_engine) as client:
        reply = client.completions.create(
            model=TINY_ALIAS, prompt="the world", max_tokens=max_tokens, temperature=0
        )
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= max_tokens
    # The tiny model practically never emits </s>, so it runs into the limit.
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == max_tokens
    assert reply.choices[0].text


def test_greedy_completion_is_repeatable(llama_engine: LlamaServer) -> None:
    with client_for(llama_engine) as client:
        texts = {
            client.completions.create(
                model=TINY_ALIAS, prompt="hello model", max_tokens=6, temperature=0
            )
            .choices[0]
            .text
            for _ in range(2)
        }
    assert len(texts) == 1


def test_minilm_embeddings_rank_similar_sentences_higher(embedding_engine: LlamaServer) -> None:
    guitar = "A man is playing a guitar."
    similar = "Someone plays an acoustic guitar."
    unrelated = "The stock market fell sharply today."
    with client_for(embedding_engine) as client:
        reply = client.embeddings.create(model=MINILM_ALIAS, input=[guitar, similar, unrelated])
    vectors = [item.embedding for item in sorted(reply.data, key=lambda item: item.index)]
    assert [len(v) for v in vectors] == [MINILM_DIM] * 3
    related_score = cosine(vectors[0], vectors[1])
    unrelated_score = cosine(vectors[0], vectors[2])
    assert related_score > 0.6
    assert related_score > unrelated_score + 0.3
    assert reply.usage.prompt_tokens > 0


def test_tiny_llama_embeddings_have_the_hidden_size(llama_engine: LlamaServer) -> None:
    with client_for(llama_engine) as client:
        reply = client.embeddings.create(model=TINY_ALIAS, input=["hello world", "the fleet"])
    first, second = (item.embedding for item in reply.data)
    assert len(first) == len(second) == TINY_SPEC.n_embd
    assert first != second


def test_killed_engine_refuses_then_restarts_on_same_port(
    llama_engine_pair: tuple[LlamaServer, LlamaServer],
) -> None:
    victim, survivor = llama_engine_pair
    port = victim.port
    victim.stop(kill=True)
    assert not victim.is_running()
    with client_for(victim) as client, pytest.raises(openai.APIConnectionError):
        client.models.list()
    with client_for(survivor) as client:
        assert [m.id for m in client.models.list()] == [TINY_ALIAS]

    victim.restart()
    assert victim.port == port
    with client_for(victim) as client:
        reply = client.completions.create(model=TINY_ALIAS, prompt="back", max_tokens=2)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2


def test_pair_servers_are_independent(llama_engine_pair: tuple[LlamaServer, LlamaServer]) -> None:
    first, second = llama_engine_pair
    assert first.port != second.port
    assert first.pid != second.pid
    for server in (first, second):
        with client_for(server) as client:
            assert [m.id for m in client.models.list()] == [TINY_ALIAS]


def test_api_key_is_enforced(tiny_llama_gguf: Path, llama_server_factory: ServerFactory) -> None:
    server = llama_server_factory(tiny_llama_gguf, TINY_ALIAS, api_key="s3cret")
    with client_for(server) as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
    with openai.OpenAI(base_url=server.base_url, api_key="s3cret", max_retries=0) as client:
        assert [m.id for m in client.models.list()] == [TINY_ALIAS]


def test_unloadable_model_fails_with_the_engine_log(
    tmp_path: Path, llama_server_factory: ServerFactory
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF this is not a model")
    with pytest.raises(EngineError, match="exited with code") as failure:
        llama_server_factory(broken, "broken", startup_timeout=30)
    assert "broken.gguf" in str(failure.value)
