"""sparkplane in front of real llama.cpp engines, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import openai
import pytest

from tests.conftest import SettingsFactory
from tests.engines.fixtures import MINILM_ALIAS, TINY_ALIAS
from tests.engines.llama_server import LlamaServer
from tests.support.gateway import Gateway, running_gateway

PROMPT = [{"role": "user", "content": "Tell me about GPUs."}]


async def _register(gw: Gateway, name: str, engine: LlamaServer) -> None:
    r = await gw.client.post("/api/devices", json={"url": engine.url, "name": name})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "openai"


def _client(gw: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


async def test_chat_completions_and_embeddings_through_sparkplane(
    make_settings: SettingsFactory, llama_engine: LlamaServer, embedding_engine: LlamaServer
) -> None:
    async with running_gateway(make_settings()) as gw:
        await _register(gw, "llama", llama_engine)
        await _register(gw, "minilm", embedding_engine)
        client = _client(gw)

        models = {m.id for m in (await client.models.list()).data}
        assert {TINY_ALIAS, MINILM_ALIAS} <= models

        chat = await client.chat.completions.create(model=TINY_ALIAS, messages=PROMPT, max_tokens=8)
        assert chat.choices[0].message.content
        assert chat.usage is not None
        assert chat.usage.completion_tokens == 8

        pieces: list[str] = []
        stream = await client.chat.completions.create(
            model=TINY_ALIAS, messages=PROMPT, max_tokens=12, stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        assert len(pieces) >= 3

        text = await client.completions.create(model=TINY_ALIAS, prompt="Once upon", max_tokens=5)
        assert text.choices[0].text
        assert text.usage is not None
        assert text.usage.completion_tokens == 5

        sentences = [
            "A man is playing a guitar.",
            "Someone plays an acoustic guitar.",
            "The stock market fell sharply today.",
        ]
        emb = await client.embeddings.create(model=MINILM_ALIAS, input=sentences)
        vectors = [d.embedding for d in emb.data]
        assert all(len(v) == 384 for v in vectors)
        assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.3
        await client.close()


async def test_two_engines_share_load(
    make_settings: SettingsFactory, llama_engine_pair: tuple[LlamaServer, LlamaServer]
) -> None:
    a, b = llama_engine_pair
    async with running_gateway(make_settings()) as gw:
        await _register(gw, "a", a)
        await _register(gw, "b", b)
        client = _client(gw)

        async def one() -> str:
            raw = await client.chat.completions.with_raw_response.create(
                model=TINY_ALIAS, messages=PROMPT, max_tokens=16
            )
            raw.parse()
            return raw.headers["x-sparkplane-device"]

        served = Counter(await asyncio.gather(*(one() for _ in range(24))))
        await client.close()
        assert set(served) == {"a", "b"}
        assert min(served.values()) >= 6, served


async def test_a_killed_engine_is_routed_around_and_comes_back(
    make_settings: SettingsFactory, llama_engine_pair: tuple[LlamaServer, LlamaServer]
) -> None:
    a, b = llama_engine_pair
    settings = make_settings(breaker_failures=2, breaker_cooldown_s=0.5, health_interval_s=0.2)
    async with running_gateway(settings) as gw:
        await _register(gw, "a", a)
        await _register(gw, "b", b)
        client = _client(gw)
        results: list[str] = []
        errors: list[BaseException] = []
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model=TINY_ALIAS, messages=PROMPT, max_tokens=16
                    )
                    raw.parse()
                    results.append(raw.headers["x-sparkplane-device"])
                except openai.APIError as exc:
                    errors.append(exc)

        workers = [asyncio.create_task(worker()) for _ in range(4)]
        await asyncio.sleep(1.0)
        a.stop(kill=True)  # a crash, mid-run
        killed_at = len(results)
        await asyncio.sleep(2.0)
        device_a = gw.runtime.fleet.by_name("a")
        assert device_a is not None
        assert device_a.health == "unhealthy"
        assert gw.runtime.fleet.by_name("b").health == "healthy"  # type: ignore[union-attr]
        after_kill = results[killed_at + 4 :]  # requests started after the kill
        assert after_kill
        assert set(after_kill) == {"b"}

        await asyncio.to_thread(a.restart)
        for _ in range(50):
            if device_a.health == "healthy":
                break
            await asyncio.sleep(0.1)
        assert device_a.health == "healthy"
        back_at = len(results)
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.gather(*workers)
        await client.close()

        assert errors == []
        assert "a" in results[back_at:]  # it takes traffic again


async def test_metrics_count_requests_per_device(
    make_settings: SettingsFactory, llama_engine: LlamaServer
) -> None:
    async with running_gateway(make_settings()) as gw:
        await _register(gw, "llama", llama_engine)
        client = _client(gw)
        for _ in range(3):
            await client.chat.completions.create(model=TINY_ALIAS, messages=PROMPT, max_tokens=4)
        await client.close()
        text = (await gw.client.get("/metrics")).text
        assert (
            'sparkplane_requests_total{device="llama",model="tiny-llama",status="200"} 3.0' in text
        )
        assert 'sparkplane_device_circuit_state{device="llama"} 0.0' in text
        assert 'sparkplane_device_inflight{device="llama"} 0.0' in text
        assert "sparkplane_request_duration_seconds_bucket" in text


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


pytestmark = pytest.mark.engine
