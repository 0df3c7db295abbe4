"""Failover and the ends of a job: a device killed mid-job, a late result from a
device that comes back, ComfyUI's execution_error (final), interrupt and queue
delete reaching the device that holds the job."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from sparkplane.db.models import utcnow
from tests.conftest import SettingsFactory
from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI, Fault, txt2img_prompt, with_models
from tests.fakes.comfyui_conformance.flow import CHAIN
from tests.fakes.comfyui_conformance.support import text
from tests.support.comfy import ComfyClient, comfy_gateway, fleet

SLOW_STEPS = 0.25  # seconds per KSampler step on a speed-1 device


def sdxl(speed: float = 1.0) -> FakeComfyConfig:
    return with_models(FakeComfyConfig(speed=speed), ["sdxl.safetensors"], step_seconds=SLOW_STEPS)


def holder(fakes: list[FakeComfyUI]) -> FakeComfyUI:
    return next(f for f in fakes if f.stats.accepted)


async def test_a_device_killed_mid_job_hands_the_job_to_another(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    async with fleet([sdxl(), sdxl()]) as fakes, comfy_gateway(make_settings(), fakes) as gw:
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        prompt_id = await client.queue(txt2img_prompt("sdxl.safetensors", steps=8))
        await ws.wait_for(text("progress", prompt_id=prompt_id))
        first = holder(fakes)
        await first.kill()
        await ws.wait_for(text("executing", node=None, prompt_id=prompt_id), within_s=30)
        other = next(f for f in fakes if f is not first)
        assert len(other.stats.jobs) == 1
        assert other.stats.jobs[0].status_str == "success"
        entry = (await client.history(prompt_id))[prompt_id]
        assert entry["status"]["status_str"] == "success"
        assert len(await client.images(prompt_id)) == 1
        job = await gw.runtime.comfy.store.get(prompt_id, "")
        assert job is not None
        attempts = await gw.runtime.comfy.store.attempts(job.id)
        assert [a.outcome for a in attempts] == ["lost", "success"]
        # The client's socket saw the job start twice, under the same prompt_id throughout.
        starts = [f for f in ws.frames if text("execution_start", prompt_id=prompt_id)(f)]
        assert len(starts) == 2
        await ws.close()


async def test_a_late_result_from_a_given_up_attempt_is_ignored(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    # The slow device's attempt is given up (its lease ran out, as if this process had
    # stalled); the job runs again on the fast one; then the slow one finishes too.
    # A long cool-down: on a busy machine the health loop could otherwise close the
    # tripped breaker before the retry is placed, and the retry would go back to "slow".
    settings = make_settings(job_lease_s=600, breaker_cooldown_s=60)
    async with (
        fleet([sdxl(speed=0.5), sdxl(speed=4.0)]) as fakes,
        comfy_gateway(settings, fakes, ["slow", "fast"]) as gw,
    ):
        slow = fakes[0]
        gw.runtime.fleet.by_name("fast").inflight += 10  # type: ignore[union-attr]
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        prompt_id = await client.queue(txt2img_prompt("sdxl.safetensors", steps=6))
        await ws.wait_for(text("progress", prompt_id=prompt_id))
        assert slow.stats.accepted
        gw.runtime.fleet.by_name("fast").inflight -= 10  # type: ignore[union-attr]
        # Seen as unhealthy for a moment: the retry cannot pick up where it was.
        gw.runtime.fleet.by_name("slow").breaker.trip(time.monotonic())  # type: ignore[union-attr]
        store = gw.runtime.comfy.store
        assert await store.reap(utcnow() + timedelta(seconds=3600))
        gw.runtime.comfy.worker.wake()
        await ws.wait_for(text("executing", node=None, prompt_id=prompt_id), within_s=30)
        await slow.wait_idle(30)
        assert [j.status_str for j in slow.stats.jobs] == ["success"]  # it did finish
        job = await store.get(prompt_id, "")
        assert job is not None
        assert job.device == "fast"
        attempts = await store.attempts(job.id)
        assert [(a.device, a.outcome) for a in attempts] == [
            ("slow", "lease_expired"),
            ("fast", "success"),
        ]
        await asyncio.sleep(1.0)
        done = [f for f in ws.frames if text("executing", node=None)(f)]
        assert len(done) == 1  # the client heard the end once
        artifacts = await gw.runtime.comfy.artifacts.artifacts(job.id)
        assert len(artifacts) == 1
        assert "/a2/" in artifacts[0].path
        await ws.close()


async def test_execution_error_is_final_and_relayed_as_sent(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    broken = sdxl(speed=8)
    broken.faults.append(Fault("error", node_class="KSampler", message="CUDA error: boom"))
    async with fleet([broken]) as fakes, comfy_gateway(make_settings(), fakes) as gw:
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        prompt_id = await client.run(ws, txt2img_prompt("sdxl.safetensors"))
        error = next(f for f in ws.frames if text("execution_error")(f))["message"]["data"]
        assert error["prompt_id"] == prompt_id
        assert error["exception_type"] == "RuntimeError"
        assert error["exception_message"].startswith("CUDA error: boom")
        assert error["node_type"] == "KSampler"
        assert isinstance(error["traceback"], list)
        assert error["traceback"]
        assert len(fakes[0].stats.jobs) == 1  # not retried
        entry = (await client.history(prompt_id))[prompt_id]
        assert entry["status"]["status_str"] == "error"
        assert entry["status"]["messages"][-1][0] == "execution_error"
        assert entry["status"]["messages"][-1][1]["prompt_id"] == prompt_id
        job = await gw.runtime.comfy.store.get(prompt_id, "")
        assert job is not None
        assert job.status.value == "error"
        await ws.close()


async def test_interrupt_reaches_the_device_holding_the_job(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    async with fleet([sdxl(), sdxl()]) as fakes, comfy_gateway(make_settings(), fakes) as gw:
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        prompt_id = await client.queue(txt2img_prompt("sdxl.safetensors", steps=40))
        await ws.wait_for(text("progress", prompt_id=prompt_id))
        async with session.post(gw.url + "/interrupt", json={"prompt_id": prompt_id}) as r:
            assert (r.status, await r.read()) == (200, b"")
        await ws.wait_for(text("execution_interrupted", prompt_id=prompt_id))
        await ws.wait_for(text("executing", node=None, prompt_id=prompt_id))
        device = holder(fakes)
        job = await gw.runtime.comfy.store.get(prompt_id, "")
        assert job is not None
        assert device.stats.interrupts == [{"prompt_id": job.device_prompt_id}]
        entry = (await client.history(prompt_id))[prompt_id]
        assert entry["status"]["messages"][-1][0] == "execution_interrupted"
        assert job.status.value == "interrupted"
        await ws.close()


async def test_queue_delete_withdraws_a_job_the_device_holds_pending(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    async with fleet([sdxl()]) as fakes, comfy_gateway(make_settings(), fakes) as gw:
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        running = await client.queue(txt2img_prompt("sdxl.safetensors", steps=12))
        waiting = await client.queue(CHAIN)
        await ws.wait_for(text("progress", prompt_id=running))
        assert len(fakes[0].stats.accepted) == 2  # both are on the device
        _, queue = await client.get("/queue")
        assert [i[1] for i in queue["queue_running"]] == [running]
        assert [i[1] for i in queue["queue_pending"]] == [waiting]
        async with session.post(gw.url + "/queue", json={"delete": [waiting, running]}) as r:
            assert r.status == 200
        await ws.wait_for(text("executing", node=None, prompt_id=running), within_s=30)
        await fakes[0].wait_idle()
        assert len(fakes[0].stats.jobs) == 1  # the deleted one never ran there
        assert await client.history(waiting) == {}
        assert await client.get("/queue") == (200, {"queue_running": [], "queue_pending": []})
        await ws.close()


@pytest.mark.slow
async def test_a_device_that_stops_answering_or_drops_the_socket_hands_the_job_over(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    frozen, failing = sdxl(), sdxl()
    frozen.faults.append(Fault("freeze", node_class="KSampler", at_step=2))
    failing.faults.append(Fault("http_error", node_class="KSampler", at_step=2, http_status=503))
    async with (
        fleet([frozen, failing, sdxl(speed=2.0)]) as fakes,
        comfy_gateway(make_settings(), fakes, ["frozen", "failing", "good"]) as gw,
    ):
        rt = gw.runtime
        rt.fleet.by_name("good").inflight += 10  # type: ignore[union-attr]
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        first = await client.queue(txt2img_prompt("sdxl.safetensors", steps=4))
        second = await client.queue(txt2img_prompt("sdxl.safetensors", steps=5))
        for prompt_id in (first, second):
            await ws.wait_for(text("progress", prompt_id=prompt_id))
        rt.fleet.by_name("good").inflight -= 10  # type: ignore[union-attr]
        for prompt_id in (first, second):
            await ws.wait_for(text("executing", node=None, prompt_id=prompt_id), within_s=60)
            job = await rt.comfy.store.get(prompt_id, "")
            assert job is not None
            assert job.status.value == "success"
            assert job.device == "good"
            attempts = await rt.comfy.store.attempts(job.id)
            assert [a.outcome for a in attempts] == ["lost", "success"]
        assert {a.device for p in (first, second) for a in await _attempts(gw, p)} == {
            "frozen",
            "failing",
            "good",
        }
        await ws.close()


async def _attempts(gw: Any, prompt_id: str) -> list[Any]:
    job = await gw.runtime.comfy.store.get(prompt_id, "")
    return list(await gw.runtime.comfy.store.attempts(job.id))


async def test_a_stalled_attempt_does_not_stop_the_attempt_that_resumed_it(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    # The lease runs out while the process lives (a stalled database, say): the job is
    # claimed again, finds its prompt still running on the device and follows it; the
    # stale attempt then learns it lost the job and must leave the device alone.
    async with (
        fleet([sdxl()]) as fakes,
        comfy_gateway(make_settings(job_lease_s=1.5), fakes) as gw,
    ):
        store = gw.runtime.comfy.store
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        prompt_id = await client.queue(txt2img_prompt("sdxl.safetensors", steps=10))
        await ws.wait_for(text("progress", prompt_id=prompt_id))
        assert await store.reap(utcnow() + timedelta(seconds=60))
        gw.runtime.comfy.worker.wake()
        await ws.wait_for(text("executing", node=None, prompt_id=prompt_id), within_s=30)
        job = await store.get(prompt_id, "")
        assert job is not None
        assert job.status.value == "success"
        assert [a.outcome for a in await store.attempts(job.id)] == ["lease_expired", "success"]
        assert fakes[0].stats.interrupts == []
        assert [j.status_str for j in fakes[0].stats.jobs] == ["success"]
        await ws.close()


@pytest.mark.slow
async def test_attempts_are_bounded_and_the_failure_is_told_and_recorded(
    make_settings: SettingsFactory, session: aiohttp.ClientSession
) -> None:
    doomed = sdxl(speed=4.0)
    doomed.faults.append(Fault("die", node_class="KSampler", times=None))
    async with (
        fleet([doomed]) as fakes,
        comfy_gateway(make_settings(comfy_max_attempts=2), fakes) as gw,
    ):
        client = ComfyClient(session, gw.url)
        ws = await client.connect()
        prompt_id = await client.queue(txt2img_prompt("sdxl.safetensors"))
        for _ in range(2):  # it dies on every attempt; bring it back each time
            for _ in range(200):
                if not fakes[0].alive:
                    break
                await asyncio.sleep(0.05)
            await fakes[0].restart()
        await ws.wait_for(text("executing", node=None, prompt_id=prompt_id), within_s=60)
        error = next(f for f in ws.frames if text("execution_error")(f))["message"]["data"]
        assert error["exception_type"] == "sparkplane.JobFailed"
        assert error["prompt_id"] == prompt_id
        entry = (await client.history(prompt_id))[prompt_id]
        assert entry["status"]["status_str"] == "error"
        job = await gw.runtime.comfy.store.get(prompt_id, "")
        assert job is not None
        assert [a.outcome for a in await gw.runtime.comfy.store.attempts(job.id)] == [
            "lost",
            "lost",
        ]
        await ws.close()
