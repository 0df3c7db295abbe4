"""The fake's own knobs: timing, node sets, faults, kill/restart, GC-like stalls."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI, Fault, txt2img_prompt, with_models
from tests.fakes.comfyui.images import decode_png
from tests.fakes.comfyui_conformance.flow import chain, connect, history, post_prompt, run
from tests.fakes.comfyui_conformance.support import done, text

CLIENT = "c0ffee00-0000-4000-8000-000000000001"
LONG = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 8, "color": 5},
    },
    "3": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
}


async def timed_run(session: Any, fake: FakeComfyUI, prompt: dict[str, Any]) -> float:
    ws = await connect(session, fake, CLIENT)
    began = time.monotonic()
    await run(session, fake, ws, {"prompt": prompt, "client_id": CLIENT})
    await ws.close()
    return time.monotonic() - began


async def test_speed_divides_node_times(comfy_fake_factory: Any, session: Any) -> None:
    slow = await comfy_fake_factory(FakeComfyConfig(node_seconds={"ImageInvert": 0.3}))
    fast = await comfy_fake_factory(FakeComfyConfig(node_seconds={"ImageInvert": 0.3}, speed=3.0))
    slow_s = await timed_run(session, slow, chain())
    fast_s = await timed_run(session, fast, chain())
    assert slow_s >= 0.3
    assert fast_s < slow_s - 0.1


async def test_device_specific_nodes_and_models(comfy_fake_factory: Any, session: Any) -> None:
    big = await comfy_fake_factory(
        with_models(FakeComfyConfig(), ["sdxl.safetensors"], ["a.safetensors"])
    )
    small = await comfy_fake_factory(FakeComfyConfig())
    big_info = await (await session.get(big.url + "/object_info")).json()
    small_info = await (await session.get(small.url + "/object_info")).json()
    assert {"KSampler", "CheckpointLoaderSimple", "LoraLoader"} <= set(big_info) - set(small_info)
    assert big_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "sdxl.safetensors"
    ]
    assert await (await session.get(big.url + "/models/checkpoints")).json() == ["sdxl.safetensors"]
    assert (await session.get(small.url + "/models/nope")).status == 404
    rejected = await session.post(
        small.url + "/prompt", json={"prompt": txt2img_prompt("sdxl.safetensors")}
    )
    assert (await rejected.json())["error"]["type"] == "invalid_prompt"

    ws = await connect(session, big, CLIENT)
    body = {"prompt": txt2img_prompt("sdxl.safetensors", steps=5, size=96), "client_id": CLIENT}
    answer, frames = await run(session, big, ws, body)
    steps = [f["message"]["data"]["value"] for f in frames if text("progress")(f)]
    assert steps == [1, 2, 3, 4, 5]
    image = (await history(session, big, answer["prompt_id"]))[answer["prompt_id"]]["outputs"]["9"]
    saved = big.folders.output / image["images"][0]["filename"]
    assert decode_png(saved.read_bytes()).shape == (96, 96, 3)
    # Same checkpoint next time: the loader's output comes from the cache.
    _, frames = await run(
        session,
        big,
        ws,
        body | {"prompt": txt2img_prompt("sdxl.safetensors", text="a dog", steps=5, size=96)},
    )
    cached = next(f for f in frames if text("execution_cached")(f))["message"]["data"]["nodes"]
    assert {"4", "5", "7"} <= set(cached)
    await ws.close()


async def test_error_fault_gives_execution_error(comfy_fake_factory: Any, session: Any) -> None:
    fault = Fault("error", node_class="ImageInvert", exception_type="RuntimeError", message="boom")
    fake = await comfy_fake_factory(FakeComfyConfig(faults=[fault]))
    ws = await connect(session, fake, CLIENT)
    answer, frames = await run(session, fake, ws, {"prompt": chain(), "client_id": CLIENT})
    error = next(f for f in frames if text("execution_error")(f))["message"]["data"]
    assert (error["node_id"], error["node_type"], error["executed"]) == ("2", "ImageInvert", ["1"])
    assert (error["exception_type"], error["exception_message"]) == ("RuntimeError", "boom\n")
    assert error["current_inputs"]["image"][0].startswith("tensor(")
    entry = (await history(session, fake, answer["prompt_id"]))[answer["prompt_id"]]
    assert entry["status"]["status_str"] == "error"
    # times=1: the next run succeeds (node 1 comes from the cache).
    _, frames = await run(session, fake, ws, {"prompt": chain(), "client_id": CLIENT})
    assert any(text("execution_success")(f) for f in frames)
    await ws.close()


async def test_oom_fault_carries_comfyui_tips(comfy_fake_factory: Any, session: Any) -> None:
    fake = await comfy_fake_factory(FakeComfyConfig(faults=[Fault("oom", node_class="SaveImage")]))
    ws = await connect(session, fake, CLIENT)
    _, frames = await run(session, fake, ws, {"prompt": chain(), "client_id": CLIENT})
    error = next(f for f in frames if text("execution_error")(f))["message"]["data"]
    assert error["exception_type"] == "torch.OutOfMemoryError"
    assert "This error means you ran out of memory on your GPU." in error["exception_message"]
    await ws.close()


async def test_interruptible_hang_ends_on_interrupt(comfy_fake_factory: Any, session: Any) -> None:
    fault = Fault("hang", node_class="ImageInvert", interruptible=True)
    fake = await comfy_fake_factory(FakeComfyConfig(faults=[fault]))
    ws = await connect(session, fake, CLIENT)
    answer = await post_prompt(session, fake, {"prompt": chain(), "client_id": CLIENT})
    await ws.wait_for(text("executing", node="2"))
    await asyncio.sleep(0.2)
    queue = await (await session.get(fake.url + "/queue")).json()
    assert [item[1] for item in queue["queue_running"]] == [answer["prompt_id"]]
    await session.post(fake.url + "/interrupt")
    end = await ws.wait_for(done(answer["prompt_id"]))
    assert text("executing")(ws.frames[end])
    assert any(text("execution_interrupted", node_id="2")(f) for f in ws.frames)
    await ws.close()


async def test_die_mid_job_then_restart(comfy_fake_factory: Any, session: Any) -> None:
    fault = Fault("die", node_class="SaveImageWebsocket", at_step=3)
    fake = await comfy_fake_factory(FakeComfyConfig(faults=[fault]))
    port = fake.port
    ws = await connect(session, fake, CLIENT)
    await post_prompt(session, fake, {"prompt": LONG, "client_id": CLIENT})
    await ws.wait_closed(5)  # the server reset the socket
    assert sum(1 for f in ws.frames if text("progress")(f)) == 2
    with pytest.raises(aiohttp.ClientConnectionError):
        await session.get(fake.url + "/queue")
    assert fake.stats.jobs_executed == 0

    await fake.restart()
    assert fake.port == port
    assert await (await session.get(fake.url + "/queue")).json() == {
        "queue_running": [],
        "queue_pending": [],
    }
    assert await (await session.get(fake.url + "/history")).json() == {}
    assert fake.stats.starts == 2
    answer = await post_prompt(session, fake, {"prompt": chain()})
    assert answer["number"] == 0


async def test_freeze_stops_answering(comfy_fake: Any, session: Any) -> None:
    comfy_fake.freeze()
    with pytest.raises(TimeoutError):
        await session.get(comfy_fake.url + "/queue", timeout=aiohttp.ClientTimeout(total=0.3))


async def test_http_error_mode_answers_5xx_and_closes_sockets(
    comfy_fake: Any, session: Any
) -> None:
    ws = await connect(session, comfy_fake, CLIENT)
    await comfy_fake.set_http_error(503)
    await ws.wait_closed(5)
    assert (await session.get(comfy_fake.url + "/system_stats")).status == 503
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await session.ws_connect(comfy_fake.ws_url(CLIENT))
    await comfy_fake.set_http_error(None)
    assert (await session.get(comfy_fake.url + "/system_stats")).status == 200


async def test_gc_pause_delays_the_first_prompt_only(comfy_fake_factory: Any, session: Any) -> None:
    fake = await comfy_fake_factory(FakeComfyConfig(gc_pause_s=0.4))
    first = await timed_run(session, fake, chain())
    second = await timed_run(session, fake, chain(n1={"color": 9}))
    assert first >= 0.4
    assert second < 0.3


async def test_recorded_first_prompt_delay_can_be_reproduced(
    fx: Any, comfy_fake_factory: Any, session: Any
) -> None:
    latency = fx("latency")["run_1"]
    pause = latency["first_prompt_after_server_start"]["done_ms"] / 1000
    typical = latency["uncached_64x64"]["post_to_executing_null"]["median_ms"] / 1000
    fake = await comfy_fake_factory(FakeComfyConfig(gc_pause_s=pause))
    first = await timed_run(session, fake, chain())
    later = sorted([await timed_run(session, fake, chain(n1={"color": c})) for c in (1, 2, 3)])
    assert first >= pause
    # Recorded: ~5 ms once the pause is over; compare relative to the first run so that a
    # loaded machine slows both alike.
    assert later[1] < first - pause / 2
    assert typical < pause / 10


async def test_frame_latency_delays_frames(comfy_fake_factory: Any, session: Any) -> None:
    fake = await comfy_fake_factory(FakeComfyConfig(frame_latency_s=0.3))
    assert await timed_run(session, fake, chain()) >= 0.3


async def test_free_memory_empties_the_cache(comfy_fake: Any, session: Any) -> None:
    ws = await connect(session, comfy_fake, CLIENT)
    body = {"prompt": chain(), "client_id": CLIENT}
    await run(session, comfy_fake, ws, body)
    await session.post(comfy_fake.url + "/free", json={"unload_models": True, "free_memory": True})
    await asyncio.sleep(0.05)
    _, frames = await run(session, comfy_fake, ws, body)
    cached = next(f for f in frames if text("execution_cached")(f))["message"]["data"]["nodes"]
    assert cached == []
    assert [job.cached for job in comfy_fake.stats.jobs] == [(), ()]
    await ws.close()


REPO_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_standalone_module_serves(session: Any, tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.comfyui",
        "--port",
        str(port),
        "--base-dir",
        str(tmp_path),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f":{port}" in line.decode()
        stats = await (await session.get(f"http://127.0.0.1:{port}/system_stats")).json()
        assert stats["system"]["comfyui_version"] == "0.3.64"
        view = await session.get(f"http://127.0.0.1:{port}/view?filename=example.png&type=input")
        assert view.status == 200
    finally:
        process.terminate()
        await process.wait()
