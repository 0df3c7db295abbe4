"""The fake's model memory (shaped, not recorded): /system_stats stays the recording
until a job loads a model file, and the recorded /free puts it back."""

from __future__ import annotations

from typing import Any

from tests.fakes.comfyui import FakeComfyConfig, txt2img_prompt, with_models
from tests.fakes.comfyui.config import recorded_system_stats
from tests.support.eventually import eventually

SDXL = "sdxl.safetensors"
SIZE = 6_000_000_000


async def run_job(fake: Any, session: Any, checkpoint: str = SDXL) -> None:
    done = fake.stats.jobs_executed
    answer = await session.post(fake.url + "/prompt", json={"prompt": txt2img_prompt(checkpoint)})
    assert answer.status == 200, await answer.text()
    await eventually(lambda: fake.stats.jobs_executed > done)


async def stats(fake: Any, session: Any) -> dict[str, Any]:
    answer = await session.get(fake.url + "/system_stats")
    body: dict[str, Any] = await answer.json()
    return body


async def test_a_loaded_checkpoint_takes_its_bytes_until_free(
    fx: Any, comfy_fake_factory: Any, session: Any
) -> None:
    config = with_models(FakeComfyConfig(model_bytes={SDXL: SIZE}), [SDXL])
    fake = await comfy_fake_factory(config)
    assert await stats(fake, session) == recorded_system_stats()
    await run_job(fake, session)
    loaded = await stats(fake, session)
    device, base = loaded["devices"][0], recorded_system_stats()
    assert device["vram_free"] == base["devices"][0]["vram_free"] - SIZE
    # The recorded server is a CPU device: its memory is the host's.
    assert loaded["system"]["ram_free"] == base["system"]["ram_free"] - SIZE
    recording = fx("free")["request"]
    answer = await session.post(
        fake.url + "/free", json=recording["body"], headers=recording["headers"]
    )
    assert (answer.status, await answer.read()) == (200, b"")
    await eventually(lambda: not fake.state.resident)  # the worker acts on /free when idle
    assert await stats(fake, session) == base


async def test_files_without_a_size_take_nothing(comfy_fake_factory: Any, session: Any) -> None:
    fake = await comfy_fake_factory(with_models(FakeComfyConfig(), [SDXL]))
    await run_job(fake, session)
    assert await stats(fake, session) == recorded_system_stats()
