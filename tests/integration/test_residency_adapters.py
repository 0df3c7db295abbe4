"""The adapters' ResidencyControl against fake engines over real HTTP: what
residency() reports, and what load() and unload() make the engine do."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from sparkplane.backends.base import InferenceRequest, Operation, Timeouts
from sparkplane.backends.http import new_session
from sparkplane.backends.ollama import OllamaBackend
from sparkplane.backends.residency import ResidencyControl
from sparkplane.errors import UpstreamError, UpstreamTimeout
from tests.fakes.ollama import FakeOllama, OllamaBehaviour
from tests.fakes.ollama_memory import MemoryKnobs

GB = 1_000_000_000
TIMEOUTS = Timeouts(connect=2, first_byte=5, idle=5, response=10)
LLAMA, MINI = "llama3.2:latest", "all-minilm:latest"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session() as s:
        yield s


@pytest.fixture
async def ollama() -> AsyncIterator[FakeOllama]:
    knobs = MemoryKnobs(sizes={LLAMA: 3 * GB, MINI: GB})
    async with FakeOllama(OllamaBehaviour(memory=knobs)) as fake:
        yield fake


@pytest.fixture
def backend(ollama: FakeOllama, session: aiohttp.ClientSession) -> OllamaBackend:
    return OllamaBackend(ollama.url, session, probe_timeout=2)


def chat(model: str = "llama3.2", stream: bool = False) -> InferenceRequest:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return InferenceRequest(Operation.CHAT, model, orjson.dumps(payload), stream)


# -- Ollama --------------------------------------------------------------------


async def test_ollama_is_a_residency_control(backend: OllamaBackend) -> None:
    assert isinstance(backend, ResidencyControl)


async def test_ollama_residency_lists_what_the_engine_holds(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    assert (await backend.residency()).loaded == ()
    await ollama.memory.load(MINI, 300)
    residency = await backend.residency()
    assert residency.names() == {MINI}
    (held,) = residency.loaded
    assert (held.bytes, held.device_bytes) == (GB, GB)
    assert held.expires_at is not None


async def test_ollama_load_makes_the_model_resident_for_good(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    await backend.load("llama3.2", timeout=5)
    assert set(ollama.memory.resident) == {LLAMA}
    assert ollama.last.body == {"model": "llama3.2", "keep_alive": -1}
    assert [e.kind for e in ollama.memory.events] == ["load"]
    (held,) = (await backend.residency()).loaded
    assert held.name == LLAMA
    assert held.bytes == 3 * GB
    assert held.expires_at is not None
    assert int(held.expires_at[:4]) > 2200


async def test_ollama_load_returns_once_the_model_is_in_memory(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.memory.load_delay_s = 0.3
    started = time.monotonic()
    await backend.load("llama3.2", timeout=5)
    assert time.monotonic() - started >= 0.3
    assert LLAMA in ollama.memory.resident


async def test_ollama_requests_for_a_loaded_model_keep_it_pinned(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    # Ollama resets a model's expiry on every request: each one repeats keep_alive.
    await backend.load("llama3.2", timeout=5)
    upstream = await backend.send(chat(), LLAMA, TIMEOUTS)
    assert upstream.status == 200
    assert ollama.last.body["keep_alive"] == -1
    assert ollama.memory.resident[LLAMA].expires_at > time.time() + 100 * 365 * 86400


async def test_ollama_unload_frees_the_model(backend: OllamaBackend, ollama: FakeOllama) -> None:
    await backend.load("llama3.2", timeout=5)
    await backend.load("all-minilm", timeout=5)
    await backend.unload("llama3.2", timeout=5)
    assert ollama.last.body == {"model": "llama3.2", "keep_alive": 0}
    assert (await backend.residency()).names() == {MINI}
    assert [(e.kind, e.model) for e in ollama.memory.events][-1] == ("unload", LLAMA)


async def test_ollama_unload_waits_for_the_request_in_flight(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.chunk_delay_s = 0.1
    await backend.load("llama3.2", timeout=5)
    upstream = await backend.send(chat(stream=True), LLAMA, TIMEOUTS)
    unloading = asyncio.create_task(backend.unload("llama3.2", timeout=5))
    await asyncio.sleep(0.05)
    assert not unloading.done()
    assert LLAMA in ollama.memory.resident
    body = b"".join([chunk async for chunk in upstream.chunks()])
    assert b"[DONE]" in body
    await asyncio.wait_for(unloading, 5)
    assert LLAMA not in ollama.memory.resident
    (run,) = ollama.memory.runs
    assert run.model == LLAMA
    assert run.undisturbed


async def test_ollama_unload_of_a_model_not_loaded_is_quiet(backend: OllamaBackend) -> None:
    await backend.unload("llama3.2", timeout=5)
    assert (await backend.residency()).loaded == ()


async def test_ollama_error_reaches_the_caller_with_its_message(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.fail_status = 500
    ollama.behaviour.fail_message = "llama runner process has terminated: signal: killed"
    with pytest.raises(UpstreamError, match="llama runner process has terminated") as caught:
        await backend.load("llama3.2", timeout=5)
    assert not isinstance(caught.value, UpstreamTimeout)
    ollama.behaviour.fail_status = None
    with pytest.raises(UpstreamError, match="not found"):
        await backend.load("no-such-model", timeout=5)


async def test_ollama_hang_becomes_a_timeout_within_the_limit(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.hang = True
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await backend.load("llama3.2", timeout=0.3)
    assert time.monotonic() - started < 1.5


async def test_ollama_stopped_is_unreachable(backend: OllamaBackend, ollama: FakeOllama) -> None:
    await ollama.stop()
    with pytest.raises(UpstreamError):
        await backend.residency()
    with pytest.raises(UpstreamError):
        await backend.load("llama3.2", timeout=2)


# -- the fake Ollama's memory (what the scheduler's live tests rely on) ---------


async def test_fake_ollama_loads_on_first_inference_after_the_load_delay(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.memory.load_delay_s = 0.2
    started = time.monotonic()
    upstream = await backend.send(chat(), LLAMA, TIMEOUTS)
    assert upstream.status == 200
    assert time.monotonic() - started >= 0.2
    assert set(ollama.memory.resident) == {LLAMA}
    # Not loaded by sparkplane: Ollama's own 5-minute default applies.
    assert "keep_alive" not in ollama.last.body
    (held,) = (await backend.residency()).loaded
    assert held.expires_at is not None
    assert int(held.expires_at[:4]) < 2200


async def test_fake_ollama_evicts_the_least_recently_used_idle_model(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.models.append("qwen3:latest")
    ollama.behaviour.memory.sizes["qwen3:latest"] = 2 * GB
    ollama.behaviour.memory.capacity_bytes = 5 * GB
    await backend.load("llama3.2", timeout=5)  # 3 GB
    await backend.load("all-minilm", timeout=5)  # 1 GB
    await backend.send(chat(), LLAMA, TIMEOUTS)  # llama is now the most recently used
    await backend.load("qwen3", timeout=5)  # 2 GB: something must go
    assert (await backend.residency()).names() == {LLAMA, "qwen3:latest"}
    assert [(e.kind, e.model) for e in ollama.memory.events][-2] == ("evict", MINI)


async def test_fake_ollama_refuses_a_load_nothing_can_make_room_for(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.memory.capacity_bytes = 2 * GB
    with pytest.raises(UpstreamError, match="more system memory"):
        await backend.load("llama3.2", timeout=5)
    ollama.behaviour.memory.capacity_bytes = 3 * GB
    ollama.behaviour.chunk_delay_s = 0.1
    await backend.load("all-minilm", timeout=5)
    busy = await backend.send(chat("all-minilm", stream=True), MINI, TIMEOUTS)
    with pytest.raises(UpstreamError, match="make room"):
        await backend.load("llama3.2", timeout=5)
    await busy.read()
    assert all(run.undisturbed for run in ollama.memory.runs)


async def test_fake_ollama_honours_the_loaded_model_limit(
    backend: OllamaBackend, ollama: FakeOllama
) -> None:
    ollama.behaviour.memory.max_loaded = 1
    await backend.load("llama3.2", timeout=5)
    await backend.load("all-minilm", timeout=5)
    assert (await backend.residency()).names() == {MINI}


async def test_fake_ollama_expires_models_like_ollama(
    ollama: FakeOllama, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        ollama.url + "/api/generate", json={"model": "llama3.2", "keep_alive": "100ms"}
    ) as response:
        assert (await response.json())["done_reason"] == "load"
    await asyncio.sleep(0.2)
    async with session.get(ollama.url + "/api/ps") as response:
        assert await response.json() == {"models": []}
    assert [e.kind for e in ollama.memory.events] == ["load", "expire"]


async def test_fake_ollama_refuses_a_duration_without_unit(
    ollama: FakeOllama, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        ollama.url + "/api/generate", json={"model": "llama3.2", "keep_alive": "-1"}
    ) as response:
        assert response.status == 400
        assert "missing unit" in (await response.json())["error"]


async def test_fake_ollama_chat_without_messages_loads_and_unloads(
    ollama: FakeOllama, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        ollama.url + "/api/chat", json={"model": "llama3.2", "messages": []}
    ) as response:
        doc = await response.json()
    assert doc["done_reason"] == "load"
    assert doc["message"] == {"role": "assistant", "content": ""}
    async with session.post(
        ollama.url + "/api/chat", json={"model": "llama3.2", "keep_alive": 0}
    ) as response:
        assert (await response.json())["done_reason"] == "unload"
    assert ollama.memory.resident == {}
