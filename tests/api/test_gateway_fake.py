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


async def test_client_disconnect_cancels_the_upstream_stream(
    make_settings: SettingsFactory,
) -> None:
    behaviour = EngineBehaviour(reply=" ".join(["word"] * 40), chunks=40, chunk_delay_s=0.1)
    async with FakeOpenAIEngine(behaviour) as engine, running_gateway(make_settings()) as gw:
        await _add(gw, engine, "box1")
        async with gw.client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
        ) as r:
            async for _ in r.aiter_bytes():
                break  # the client goes away after the first chunk
        for _ in range(40):
            if engine.cancelled:
                break
            await asyncio.sleep(0.05)
        assert engine.cancelled == 1
        assert gw.runtime.fleet.by_name("box1").inflight == 0  # type: ignore[union-attr]


async def test_stream_broken_midway_ends_with_an_error_event(
    make_settings: SettingsFactory,
) -> None:
    behaviour = EngineBehaviour(chunks=4, break_stream_after=2)
    async with FakeOpenAIEngine(behaviour) as engine, running_gateway(make_settings()) as gw:
        await _add(gw, engine, "box1")
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        stream = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "x"}], stream=True
        )
        received = 0

        async def consume() -> None:
            nonlocal received
            async for _ in stream:
                received += 1

        with pytest.raises(openai.APIError, match="device dropped"):
            await consume()
        await client.close()
        assert received == 2  # what arrived before the break reached the client


async def test_silent_device_times_out_with_504_then_retries_elsewhere(
    make_settings: SettingsFactory,
) -> None:
    slow = FakeOpenAIEngine(EngineBehaviour(hang=True), name="slow")
    fast = FakeOpenAIEngine(name="fast")
    settings = make_settings(first_byte_timeout_s=0.3, request_timeout_s=0.3, max_attempts=1)
    async with slow, running_gateway(settings) as gw:
        await _add(gw, slow, "slow", priority=5)
        r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "upstream_timeout"
    settings = make_settings(first_byte_timeout_s=0.3, max_attempts=2)
    async with slow, fast, running_gateway(settings) as gw:
        await _add(gw, fast, "fast")
        r = await gw.client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 200
        assert r.headers["x-sparkplane-device"] == "fast"
        assert r.headers["x-sparkplane-attempts"] == "2"
        assert r.text.rstrip().endswith("data: [DONE]")


async def test_off_prem_device_only_when_allowed_and_nothing_local(
    make_settings: SettingsFactory,
) -> None:
    cloud = FakeOpenAIEngine(EngineBehaviour(api_key="sk-cloud"), name="cloud")
    local = FakeOpenAIEngine(name="local")
    async with cloud, local:
        async with running_gateway(make_settings()) as gw:
            await _add(gw, cloud, "cloud", off_prem=True, api_key="sk-cloud")
            r = await gw.client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "policy_forbids"
            assert cloud.requests == []
        async with running_gateway(make_settings(allow_off_prem=True)) as gw:
            r = await gw.client.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 200
            assert r.headers["x-sparkplane-device"] == "cloud"
            await _add(gw, local, "local")
            r = await gw.client.post("/v1/chat/completions", json=CHAT)
            assert r.headers["x-sparkplane-device"] == "local"
            listing = (await gw.client.get("/api/devices")).text
            assert "sk-cloud" not in listing


async def test_alias_routes_one_name_to_differently_named_models(
    make_settings: SettingsFactory,
) -> None:
    a = FakeOpenAIEngine(EngineBehaviour(models=["meta-llama/Llama-3.1-8B-Instruct"]), name="a")
    b = FakeOpenAIEngine(EngineBehaviour(models=["llama3.1-8b-q4"]), name="b")
    aliases = {"llama3.1-8b": ["meta-llama/Llama-3.1-8B-Instruct", "openai:llama3.1-8b-q4"]}
    async with a, b, running_gateway(make_settings(aliases=aliases)) as gw:
        await _add(gw, a, "a")
        await _add(gw, b, "b")
        models = (await gw.client.get("/v1/models")).json()["data"]
        assert [(m["id"], m["devices"]) for m in models] == [("llama3.1-8b", ["a", "b"])]
        seen = set()
        for _ in range(6):
            r = await gw.client.post("/v1/chat/completions", json={**CHAT, "model": "llama3.1-8b"})
            assert r.status_code == 200
            seen.add(r.headers["x-sparkplane-device"])
        assert seen == {"a", "b"}
        # Each engine was asked for the model under its own name.
        assert {q["model"] for q in a.requests} == {"meta-llama/Llama-3.1-8B-Instruct"}
        assert {q["model"] for q in b.requests} == {"llama3.1-8b-q4"}
