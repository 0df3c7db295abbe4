"""The gateway end to end against fake OpenAI-compatible engines: routing,
retries, streaming, errors and headers as a client sees them."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.conftest import SettingsFactory
from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.gateway import Gateway, running_gateway

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


async def _add(gw: Gateway, engine: FakeOpenAIEngine, name: str, **extra: object) -> None:
    r = await gw.client.post("/api/devices", json={"url": engine.url, "name": name, **extra})
    assert r.status_code == 201, r.text


async def test_chat_goes_through_and_names_the_device(make_settings: SettingsFactory) -> None:
    async with FakeOpenAIEngine() as engine, running_gateway(make_settings()) as gw:
        await _add(gw, engine, "box1")
        r = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == engine.behaviour.reply
        assert r.headers["x-sparkplane-device"] == "box1"
        assert r.headers["x-sparkplane-attempts"] == "1"
        assert engine.requests[-1]["messages"] == CHAT["messages"]


async def test_openai_sdk_streams_chunk_by_chunk(make_settings: SettingsFactory) -> None:
    behaviour = EngineBehaviour(reply="one two three four five six", chunks=6, chunk_delay_s=0.05)
    async with FakeOpenAIEngine(behaviour) as engine, running_gateway(make_settings()) as gw:
        await _add(gw, engine, "box1")
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused")
        arrivals: list[float] = []
        text = ""
        loop = asyncio.get_running_loop()
        stream = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "count"}], stream=True
        )
        async for chunk in stream:
            arrivals.append(loop.time())
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
        await client.close()
        assert text == behaviour.reply
        # Chunks arrive spread over time, not in one burst at the end.
        assert arrivals[-1] - arrivals[0] >= 0.2


async def test_retry_moves_to_a_healthy_device(make_settings: SettingsFactory) -> None:
    bad = FakeOpenAIEngine(EngineBehaviour(fail_status=500), name="bad")
    good = FakeOpenAIEngine(name="good")
    async with bad, good, running_gateway(make_settings()) as gw:
        await _add(gw, bad, "bad", priority=10)
        await _add(gw, good, "good")
        r = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200
        assert r.headers["x-sparkplane-device"] == "good"
        assert r.headers["x-sparkplane-attempts"] == "2"
        assert len(bad.requests) == 1


async def test_unknown_model_is_404_in_openai_format(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings()) as gw:
        r = await gw.client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b'{"model": "fake-model", "messages": [', 400, None),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
        (b'{"model": "fake-model", "messages": []}', 400, "messages"),
        (b'{"model": "fake-model", "messages": [{"role": "robot"}]}', 400, "messages.0.role"),
        (b"[1, 2]", 400, None),
    ],
)
async def test_bad_input_gets_400_and_server_stays_healthy(
    make_settings: SettingsFactory, body: bytes, status: int, param: str | None
) -> None:
    async with running_gateway(make_settings()) as gw:
        r = await gw.client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == status
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] == param
        assert (await gw.client.get("/healthz")).status_code == 200


async def test_oversize_body_is_413(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings(max_body_bytes=4096)) as gw:
        big = {"model": "fake-model", "messages": [{"role": "user", "content": "x" * 10_000}]}
        r = await gw.client.post("/v1/chat/completions", json=big)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"

        async def chunked():  # no content-length: the limit must hold while reading
            yield b'{"model": "fake-model", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}]}'

        r = await gw.client.post(
            "/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert (await gw.client.get("/healthz")).status_code == 200


async def test_no_healthy_device_is_503(make_settings: SettingsFactory) -> None:
    engine = FakeOpenAIEngine()
    async with running_gateway(make_settings(breaker_failures=1, breaker_cooldown_s=60)) as gw:
        async with engine:
            await _add(gw, engine, "box1")
        # The engine is gone: the health loop opens the breaker.
        for _ in range(50):
            if gw.runtime.fleet.by_name("box1").health == "unhealthy":  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
        r = await gw.client.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "no_healthy_device"


async def test_devices_persist_across_restart(
    make_settings: SettingsFactory, database_url: str
) -> None:
    settings = make_settings(database_url=database_url)
    async with FakeOpenAIEngine() as engine:
        async with running_gateway(settings) as gw:
            await _add(gw, engine, "box1", priority=7)
        async with running_gateway(settings) as gw:
            r = await gw.client.get("/api/devices/box1")
            assert r.status_code == 200
            assert r.json()["priority"] == 7
            r = await gw.client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 200
            assert r.headers["x-sparkplane-device"] == "box1"
