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
from sparkplane.backends.comfyui import ComfyUIBackend
from sparkplane.backends.http import new_session
from sparkplane.backends.ollama import OllamaBackend
from sparkplane.backends.openai_compat import OpenAICompatBackend
from sparkplane.backends.openai_residency import Controls
from sparkplane.backends.residency import ResidencyControl, UnsupportedControl
from sparkplane.errors import UpstreamError, UpstreamTimeout
from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI, gpu_system_stats, txt2img_prompt
from tests.fakes.comfyui import with_models as comfy_with_models
from tests.fakes.comfyui.config import Fault
from tests.fakes.comfyui.recorded import fixtures_dir
from tests.fakes.comfyui.recorded import load as recorded
from tests.fakes.ollama import FakeOllama, OllamaBehaviour
from tests.fakes.ollama_memory import MemoryKnobs
from tests.fakes.openai_engine import EngineBehaviour, FakeOpenAIEngine
from tests.support.eventually import eventually

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


# -- ComfyUI -------------------------------------------------------------------

SDXL, SDXL_BYTES = "sdxl.safetensors", 7_000_000_000
VRAM_FREE = 24_000_000_000


@pytest.fixture
async def comfy() -> AsyncIterator[FakeComfyUI]:
    config = FakeComfyConfig(system_stats=gpu_system_stats(), model_bytes={SDXL: SDXL_BYTES})
    async with FakeComfyUI(comfy_with_models(config, [SDXL])) as fake:
        yield fake


@pytest.fixture
def comfy_backend(comfy: FakeComfyUI, session: aiohttp.ClientSession) -> ComfyUIBackend:
    return ComfyUIBackend(comfy.url, session, probe_timeout=2)


async def run_comfy_job(comfy: FakeComfyUI, backend: ComfyUIBackend) -> None:
    done = comfy.stats.jobs_executed
    status, _ = await backend.submit(txt2img_prompt(SDXL), "job-1", "client-1", {})
    assert status == 200
    await eventually(lambda: comfy.stats.jobs_executed > done)


async def test_comfyui_residency_reports_the_device_memory(
    comfy_backend: ComfyUIBackend,
) -> None:
    assert isinstance(comfy_backend, ResidencyControl)
    residency = await comfy_backend.residency()
    assert residency.loaded == ()
    assert residency.total_bytes == 25_757_220_864
    assert residency.free_bytes == VRAM_FREE
    assert not residency.unified
    assert residency.detail["ram_free"] == 60_000_000_000
    assert residency.detail["queue_running"] == 0


async def test_comfyui_free_memory_drops_while_a_model_is_loaded_and_unload_frees_it(
    comfy_backend: ComfyUIBackend, comfy: FakeComfyUI
) -> None:
    await run_comfy_job(comfy, comfy_backend)
    assert (await comfy_backend.residency()).free_bytes == VRAM_FREE - SDXL_BYTES
    await comfy_backend.unload(SDXL, timeout=5)
    assert (await comfy_backend.residency()).free_bytes == VRAM_FREE
    assert comfy.stats.frees == [{"unload_models": True, "free_memory": True}]


async def test_comfyui_unload_sends_the_recorded_request(
    comfy_backend: ComfyUIBackend, comfy: FakeComfyUI
) -> None:
    if fixtures_dir() is None:
        pytest.skip("recorded ComfyUI fixtures are absent")
    await comfy_backend.unload("anything", timeout=5)
    assert comfy.stats.frees == [recorded("free")["request"]["body"]]


async def test_comfyui_unload_waits_for_the_running_prompt(
    comfy_backend: ComfyUIBackend, comfy: FakeComfyUI
) -> None:
    comfy.inject(Fault("hang", node_class="KSampler"))
    await comfy_backend.submit(txt2img_prompt(SDXL), "job-1", "client-1", {})
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await comfy_backend.unload(SDXL, timeout=0.5)
    assert time.monotonic() - started < 1.5


async def test_comfyui_cannot_load_on_request(comfy_backend: ComfyUIBackend) -> None:
    with pytest.raises(UnsupportedControl):
        await comfy_backend.load(SDXL, timeout=5)


async def test_comfyui_refusing_free_is_an_upstream_error(
    comfy_backend: ComfyUIBackend, comfy: FakeComfyUI
) -> None:
    assert comfy.state is not None
    comfy.state.http_error_status = 500  # what an "http_error" fault sets
    with pytest.raises(UpstreamError, match="500"):
        await comfy_backend.unload(SDXL, timeout=5)


# -- OpenAI-compatible engines -------------------------------------------------


async def test_router_mode_loads_and_unloads_through_its_own_endpoints(
    session: aiohttp.ClientSession,
) -> None:
    behaviour = EngineBehaviour(models=["a", "b"], controls="router", load_delay_s=0.2)
    async with FakeOpenAIEngine(behaviour) as engine:
        backend = OpenAICompatBackend(engine.url, session)
        assert await backend.controls() is Controls.ROUTER
        assert (await backend.residency()).loaded == ()
        started = time.monotonic()
        await backend.load("a", timeout=5)
        assert time.monotonic() - started >= 0.2  # returned once loaded, not on the ack
        assert (await backend.residency()).names() == {"a"}
        await backend.unload("a", timeout=5)
        assert (await backend.residency()).names() == set()
        assert engine.controls_log == ["load a", "unload a"]


async def test_router_mode_load_failure_and_timeout(session: aiohttp.ClientSession) -> None:
    behaviour = EngineBehaviour(models=["a", "b"], controls="router", fail_load={"b"})
    async with FakeOpenAIEngine(behaviour) as engine:
        backend = OpenAICompatBackend(engine.url, session)
        with pytest.raises(UpstreamError, match="exit code 1"):
            await backend.load("b", timeout=5)
        engine.behaviour.load_delay_s = 5
        with pytest.raises(UpstreamTimeout):
            await backend.load("a", timeout=0.3)


async def test_vllm_sleep_and_wake(session: aiohttp.ClientSession) -> None:
    async with FakeOpenAIEngine(EngineBehaviour(models=["qwen"], controls="vllm")) as engine:
        backend = OpenAICompatBackend(engine.url, session)
        assert await backend.controls() is Controls.VLLM_SLEEP
        residency = await backend.residency()
        assert residency.names() == {"qwen"}
        assert residency.detail["kv_cache_usage"] == 0.25
        await backend.unload("qwen", timeout=5)
        assert (await backend.residency()).loaded == ()
        await backend.load("qwen", timeout=5)
        assert (await backend.residency()).names() == {"qwen"}
        assert engine.controls_log == ["sleep level=1", "wake_up"]


async def test_an_engine_without_controls_lists_every_model_as_resident(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeOpenAIEngine(EngineBehaviour(models=["x", "y"])) as engine:
        backend = OpenAICompatBackend(engine.url, session)
        assert await backend.controls() is Controls.NONE
        assert (await backend.residency()).names() == {"x", "y"}
        with pytest.raises(UnsupportedControl):
            await backend.load("x", timeout=5)
        with pytest.raises(UnsupportedControl):
            await backend.unload("x", timeout=5)
